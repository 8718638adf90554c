/**
 * Trains the default masked LM `models/makemost-bert-tiny` (RoBERTa architecture) with makemost's own
 * Trainer on the Debian corpus (scripts/data/build_corpus.ts), with the RoBERTa-style tokenizer derived
 * from the byte-level BPE (scripts/mlm_tokenizer.ts). Follows scripts/train_defaults.ts: HF run_mlm's
 * line-by-line data and 80/10/10 masking (src/training/data.ts, data_batches.ts), AdamW, cosine schedule,
 * and a wall-time budget for the whole script (steps sized from a timing probe; training stops before
 * the step that would cross its share of the budget). Writes the HF folder with tokenizer files,
 * held-out text, unigram counts, eval_results.json and the model card.
 *
 *   node dist/scripts/train_mlm_default.js [--minutes 20] [--out models/makemost-bert-tiny]
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { fillMask, formatFillMask } from '../src/cli/score.js';
import { ConfigError } from '../src/errors.js';
import { buildModel } from '../src/models/registry.js';
import type { RobertaForMaskedLM } from '../src/models/bert/heads.js';
import type { EncoderModel } from '../src/models/types.js';
import type { PreTrainedModel } from '../src/models/pretrained_model.js';
import type { Module } from '../src/nn/module.js';
import { AutoTokenizer } from '../src/tokenizers/files.js';
import { mlmDataset, TokenCache, type TextExample } from '../src/training/data.js';
import { batchFactory, countTokens, evalBatches, type Batch, type BatchOptions } from '../src/training/data_batches.js';
import { evaluateMaskedLm } from '../src/training/eval.js';
import { maskedLmLoss } from '../src/training/losses.js';
import { optimizerFromArgs, train, type LossFn, type TrainingArgs } from '../src/training/trainer.js';
import { HELDOUT_MASK_RULE, HELDOUT_MASK_SETS, heldoutBatches, scoredTargets } from './mlm_heldout.js';
import { flag, readDocs, startEngine, unigramNll } from './script_common.js';
import { writeRobertaTokenizer } from './mlm_tokenizer.js';
import { heldoutMargin } from './model_card.js';
import { writeMlmModelCard, type MlmCardFacts } from './model_card_mlm.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const corpus = resolve(flag(argv, '--corpus', '.cache/corpus'));
  const bpeDir = resolve(flag(argv, '--tokenizer', '.cache/tokenizer'));
  const out = resolve(flag(argv, '--out', 'models/makemost-bert-tiny'));
  const work = resolve(flag(argv, '--work', '.cache/train-bert'));
  const minutes = Number(flag(argv, '--minutes', '20'));
  const seed = Number(flag(argv, '--seed', '42'));
  const batchSize = Number(flag(argv, '--batch-size', '48'));
  const lr = Number(flag(argv, '--lr', '2e-3'));
  const example = flag(argv, '--example', 'The <mask> is a small animal.');
  const mlmProbability = 0.15;
  const blockSize = 128;
  const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  const t0 = performance.now();
  const backend = await startEngine();
  const tokDir = join(work, 'tokenizer');
  writeRobertaTokenizer(bpeDir, tokDir, { modelMaxLength: blockSize });
  const tok = await AutoTokenizer.fromPretrained(tokDir);
  const [maskId, padId] = [tok.maskTokenId!, tok.padTokenId!];
  const vocab = tok.length;
  const specialIds = tok.allSpecialIds;
  const config = {
    model_type: 'roberta', architectures: ['RobertaForMaskedLM'], vocab_size: vocab, hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 4,
    intermediate_size: 512, hidden_act: 'gelu', hidden_dropout_prob: 0, attention_probs_dropout_prob: 0,
    // RoBERTa numbers positions padding_idx+1 … padding_idx+T, so the table needs T + pad + 1 rows (514 for 512).
    max_position_embeddings: blockSize + padId + 1, type_vocab_size: 1, initializer_range: 0.02, layer_norm_eps: 1e-5,
    pad_token_id: padId, bos_token_id: tok.bosTokenId!, eos_token_id: tok.eosTokenId!, position_embedding_type: 'absolute', tie_word_embeddings: true,
  };
  const trainDocs = readDocs(join(corpus, 'train.jsonl'));
  const valDocs = readDocs(join(corpus, 'validation.jsonl'));
  const testDocs = readDocs(join(corpus, 'test.jsonl'));
  const cache = new TokenCache(tok);
  // HF run_mlm --line_by_line: one example per document, `<s> text </s>`, truncated to the block. Packing documents into
  // full blocks (run_mlm's default) left a 4-layer model at the unigram level on masked held-out words after 9 minutes.
  const asEx = (d: { text: string }[]): TextExample[] => d.map((x, i) => ({ text: x.text, where: `line ${i + 1}` }));
  const trainData = mlmDataset(asEx(trainDocs), cache, { maxLength: blockSize });
  const valData = mlmDataset(asEx(valDocs), cache, { maxLength: blockSize });
  const trainTokens = trainData.rows.reduce((a, r) => a + r.ids.length, 0);
  log(`tokenised in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${trainData.rows.length} train documents (${trainTokens} tokens), ${valData.rows.length} validation documents; backend ${backend}`);

  // Unigram counts of the tokens masking can choose (specials never are), for the baselines.
  const special = new Set(specialIds);
  const counts = new Array<number>(vocab).fill(0);
  for (const r of trainData.rows) for (const id of r.ids) if (!special.has(id)) counts[id]++;

  const bopts: BatchOptions = { kind: 'mlm', batchSize, padId, bucket: true, mlm: { maskTokenId: maskId, vocabSize: vocab, specialIds, probability: mlmProbability } };
  const valBatches: Batch[] = evalBatches(valData, { ...bopts, batchSize: 32 }, seed);
  // The corpus files are sorted by source, so the train sample takes every k-th document rather than the first ones.
  const stride = Math.floor(trainData.rows.length / valData.rows.length);
  const trainSample = trainData.rows.filter((_, i) => i % stride === 0).slice(0, valData.rows.length);
  const trainEvalBatches: Batch[] = evalBatches({ rows: trainSample }, { ...bopts, batchSize: 32 }, seed);
  const unigramVal = unigramNll(counts, scoredTargets(valBatches));
  const loss = maskedLmLoss as unknown as LossFn<Module, Batch>;
  const baseArgs: TrainingArgs = {
    seed, learning_rate: lr, weight_decay: 0.01, adam_beta2: 0.98, adam_epsilon: 1e-6, max_grad_norm: 1, lr_scheduler_type: 'cosine', logging_steps: 10,
  };

  // Timing probe on a throwaway model. Batches differ in length, so time is modelled per token and scaled to the mean batch.
  const probe = buildModel(config, 'masked-lm', seed + 1).model;
  const probeOpt = optimizerFromArgs(probe, { ...baseArgs, max_steps: 10 });
  const probeSteps: { elapsed: number; tokens: number }[] = [];
  let probeTokens = 0;
  const countProbe = (b: Batch) => { const k = countTokens(b); probeTokens += k; return k; };
  await train(probe, probeOpt, trainData, { ...baseArgs, max_steps: 10 }, { loss, batches: batchFactory(bopts), countTokens: countProbe, callbacks: { onStep: (s) => probeSteps.push({ elapsed: s.elapsed, tokens: probeTokens }) } });
  probeOpt.dispose();
  probe.dispose();
  const [p1, pN] = [probeSteps[1], probeSteps[probeSteps.length - 1]];
  const secPerToken = (pN.elapsed - p1.elapsed) / (pN.tokens - p1.tokens);
  const secPerStep = secPerToken * batchSize * (trainTokens / trainData.rows.length);
  // The budget covers the whole script: what is left after setup, minus evaluation (forward only: measured at about a
  // fifth of a training step per token, over padded batches and the held-out passes; a quarter is reserved) and saving.
  const evalTokens = [...valBatches, ...trainEvalBatches].reduce((a, b) => a + b.inputIds.length * b.inputIds[0].length, 0) + 20000;
  const reserve = 5 + (evalTokens * secPerToken) / 4;
  const budget = minutes * 60 - (performance.now() - t0) / 1000 - reserve;
  if (!(budget > 0)) throw new ConfigError(`--minutes ${minutes} leaves no time to train: setup took ${((performance.now() - t0) / 1000).toFixed(0)} s and evaluation needs about ${reserve.toFixed(0)} s`, 'give a larger --minutes');
  const maxSteps = Math.max(10, Math.floor((budget * 0.95) / secPerStep));
  log(`probe: ${secPerStep.toFixed(3)} s per mean batch -> ${budget.toFixed(0)} s of training, max_steps ${maxSteps} (${((maxSteps * batchSize) / trainData.rows.length).toFixed(2)} epochs)`);

  const { model } = buildModel(config, 'masked-lm', seed);
  const params = model.numParameters();
  // The decoder bias starts at the smoothed unigram log-probabilities, so the untrained model already scores the baseline:
  // Adam moves a bias about lr per step, and a short budget would spend its steps learning word frequencies.
  const total = counts.reduce((a, c) => a + c, 0) + vocab;
  const logPrior = tf.tensor1d(counts.map((c) => Math.log((c + 1) / total)));
  (model as unknown as RobertaForMaskedLM).lm_head.bias.assign(logPrior);
  logPrior.dispose();
  const args: TrainingArgs = { ...baseArgs, max_steps: maxSteps, logging_steps: Math.max(1, Math.min(50, Math.floor(maxSteps / 10))), warmup_steps: Math.min(200, Math.floor(maxSteps / 10)) };
  const optimizer = optimizerFromArgs(model, args);
  // Hard deadline, checked after every update: stop before the step that would end past the budget.
  const stop = new AbortController();
  let prevElapsed = 0;
  let tokensSeen = 0;
  const onStep = (s: { elapsed: number }) => {
    if (s.elapsed + (s.elapsed - prevElapsed) > budget) stop.abort();
    prevElapsed = s.elapsed;
  };
  writeFileSync(join(work, 'metrics.jsonl'), ''); // the trainer appends; one run per file
  const tTrain = performance.now();
  let lastLoss = NaN;
  const result = await train(model, optimizer, trainData, args, {
    loss, batches: batchFactory(bopts), countTokens: (b) => { const k = countTokens(b); tokensSeen += k; return k; }, signal: stop.signal, metrics: join(work, 'metrics.jsonl'),
    callbacks: { onStep, onLog: (r) => { if (typeof r.loss === 'number') { lastLoss = r.loss; log(`step ${r.step}/${maxSteps} loss ${r.loss.toFixed(4)} lr ${Number(r.learning_rate).toExponential(2)}`); } } },
  });
  const trainSeconds = (performance.now() - tTrain) / 1000;
  optimizer.dispose();
  const mlm = model as unknown as EncoderModel;
  const val = await evaluateMaskedLm(mlm, valBatches);
  const trainEval = await evaluateMaskedLm(mlm, trainEvalBatches);
  log(`trained ${result.globalStep} steps in ${trainSeconds.toFixed(0)} s; validation masked loss ${val.loss.toFixed(4)} (ppl ${val.perplexity.toFixed(2)}), unigram ppl ${Math.exp(unigramVal).toFixed(2)}`);

  // Held-out text: WordNet glosses of the test split that fit one block (the license allows redistribution with its notice).
  const held: string[] = [];
  let bytes = 0;
  for (const d of testDocs) {
    if (!d.source.startsWith('wordnet/') || d.text.includes('\n') || tok.encode(d.text).ids.length > blockSize) continue;
    if (bytes + d.text.length > 6000) break;
    held.push(d.text);
    bytes += d.text.length + 1;
  }
  const heldText = held.join('\n') + '\n';
  const heldB = heldoutBatches(held.map((t) => tok.encode(t).ids), { maskId, padId, specialIds, batchSize: 32 });
  const heldModel = await evaluateMaskedLm(mlm, heldB);
  const heldUnigram = Math.exp(unigramNll(counts, scoredTargets(heldB)));

  mkdirSync(out, { recursive: true });
  await (model as unknown as PreTrainedModel).save(out);
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(tokDir, f), join(out, f));
  writeFileSync(join(out, 'heldout.txt'), heldText);
  writeFileSync(join(out, 'unigram_counts.json'), JSON.stringify({ description: 'counts of the non-special tokens of the training documents; baseline = add-one-smoothed unigram over all vocab_size ids', counts }) + '\n');
  const filled = await fillMask(out, example, 5);
  const facts: MlmCardFacts = {
    params, config: { num_hidden_layers: 4, hidden_size: 128, num_attention_heads: 4, intermediate_size: 512, max_position_embeddings: config.max_position_embeddings, vocab_size: vocab, pad_token_id: padId },
    manifest: JSON.parse(readFileSync(join(corpus, 'manifest.json'), 'utf8')) as MlmCardFacts['manifest'], maskTokenId: maskId,
    trainTokens, trainDocuments: trainData.rows.length, steps: result.globalStep, maxSteps, batchSize, blockSize, lr, mlmProbability, stoppedBy: result.stoppedBy,
    tokensSeen, trainLossLogged: lastLoss, trainEval: trainEval.loss, valLoss: val.loss, valMasked: val.tokens, unigramValNll: unigramVal,
    heldoutModelPpl: heldModel.perplexity, heldoutUnigramPpl: heldUnigram, heldoutTokens: heldModel.tokens, heldoutLines: held.length, heldoutBytes: Buffer.byteLength(heldText),
    heldoutMaskRule: HELDOUT_MASK_RULE, trainSeconds, totalSeconds: (performance.now() - t0) / 1000, backend,
    command: `node dist/scripts/train_mlm_default.js ${argv.join(' ')}`.trim(), seed, fillMask: { text: example, output: formatFillMask(filled) },
  };
  const margin = heldoutMargin(facts);
  writeFileSync(join(out, 'eval_results.json'), JSON.stringify({ ...facts, manifest: undefined, heldout_mask_sets: HELDOUT_MASK_SETS, heldout_margin: margin }, null, 2) + '\n');
  writeMlmModelCard(join(out, 'README.md'), facts, margin);
  log(`saved ${out}; held-out masked-token ppl ${heldModel.perplexity.toFixed(2)} vs unigram ${heldUnigram.toFixed(2)} (margin ${margin})\n${facts.fillMask.output}`);
}

await main();
