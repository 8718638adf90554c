/**
 * Trains the default decoder LM `models/makemost-gpt-tiny` with makemost's own Trainer on the Debian corpus
 * (scripts/data/build_corpus.ts) and tokenizer (scripts/train_tokenizer.ts): packed blocks with EOS between
 * documents, AdamW, cosine schedule, for a wall-time budget (steps are sized from a short timing probe, and
 * the run stops cleanly at a hard deadline). Writes the HF folder with tokenizer files, generation_config.json,
 * held-out text, unigram counts for the baseline, eval_results.json and the model card.
 *
 *   node dist/scripts/train_defaults.js [--minutes 20] [--out models/makemost-gpt-tiny]
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/types.js';
import type { PreTrainedModel } from '../src/models/pretrained_model.js';
import { AutoTokenizer } from '../src/tokenizers/files.js';
import { lmDataset, TokenCache, type TextExample } from '../src/training/data.js';
import { batchFactory, countTokens, evalBatches, type Batch, type BatchOptions } from '../src/training/data_batches.js';
import { evaluateCausalLm, slidingWindowPerplexity } from '../src/training/eval.js';
import { causalLmLoss } from '../src/training/losses.js';
import { optimizerFromArgs, train, type LossFn, type TrainingArgs } from '../src/training/trainer.js';
import type { Module } from '../src/nn/module.js';
import { heldoutMargin, writeModelCard, type CardFacts } from './model_card.js';
import { flag, readDocs, startEngine, unigramNll } from './script_common.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const corpus = resolve(flag(argv, '--corpus', '.cache/corpus'));
  const tokDir = resolve(flag(argv, '--tokenizer', '.cache/tokenizer'));
  const out = resolve(flag(argv, '--out', 'models/makemost-gpt-tiny'));
  const work = resolve(flag(argv, '--work', '.cache/train-gpt'));
  const minutes = Number(flag(argv, '--minutes', '20'));
  const seed = Number(flag(argv, '--seed', '42'));
  const batchSize = Number(flag(argv, '--batch-size', '16'));
  const lr = Number(flag(argv, '--lr', '2e-3'));
  const blockSize = 128;
  const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  const backend = await startEngine();
  const t0 = performance.now();
  const tok = await AutoTokenizer.fromPretrained(tokDir);
  const eos = tok.eosTokenId!;
  const vocab = tok.vocabSize ?? Object.keys((JSON.parse(readFileSync(join(tokDir, 'tokenizer.json'), 'utf8')) as { model: { vocab: object } }).model.vocab).length;
  const config = {
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: vocab, n_positions: blockSize, n_ctx: blockSize, n_embd: 128, n_layer: 4, n_head: 4,
    n_inner: null, activation_function: 'gelu_new', resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, layer_norm_epsilon: 1e-5, initializer_range: 0.02,
    bos_token_id: eos, eos_token_id: eos, tie_word_embeddings: true,
  };
  const trainDocs = readDocs(join(corpus, 'train.jsonl'));
  const valDocs = readDocs(join(corpus, 'validation.jsonl'));
  const testDocs = readDocs(join(corpus, 'test.jsonl'));
  const cache = new TokenCache(tok);
  const asEx = (d: { text: string }[]): TextExample[] => d.map((x, i) => ({ text: x.text, where: `line ${i + 1}` }));
  const trainData = lmDataset(asEx(trainDocs), cache, { blockSize, packing: true, eosId: eos });
  const valData = lmDataset(asEx(valDocs), cache, { blockSize, packing: true, eosId: eos });
  const trainTokens = trainData.rows.length * blockSize;
  log(`tokenised in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${trainData.rows.length} train blocks (${trainTokens} tokens), ${valData.rows.length} validation blocks; backend ${backend}`);

  const counts = new Array<number>(vocab).fill(0);
  for (const r of trainData.rows) for (const id of r.ids) counts[id]++;
  const valTargets = valData.rows.flatMap((r) => r.ids.slice(1));
  const unigramVal = unigramNll(counts, valTargets);

  const bopts: BatchOptions = { kind: 'lm', batchSize, padId: eos, bucket: false };
  const valBatches: Batch[] = evalBatches(valData, { ...bopts, batchSize: 32 });
  const trainProbe = { rows: trainData.rows.slice(0, valData.rows.length) };
  const trainEvalBatches: Batch[] = evalBatches(trainProbe, { ...bopts, batchSize: 32 });
  const loss = causalLmLoss as unknown as LossFn<Module, Batch>;
  const baseArgs: TrainingArgs = { seed, learning_rate: lr, weight_decay: 0.1, adam_beta2: 0.99, max_grad_norm: 1, lr_scheduler_type: 'cosine', logging_steps: 50 };

  // Timing probe on a throwaway model: sizes max_steps so the cosine schedule ends within the budget.
  const probe = buildModel(config, 'causal-lm', seed + 1).model;
  const probeOpt = optimizerFromArgs(probe, { ...baseArgs, max_steps: 6 });
  const times: number[] = [];
  await train(probe, probeOpt, trainData, { ...baseArgs, max_steps: 6 }, { loss, batches: batchFactory(bopts), callbacks: { onStep: (s) => times.push(s.elapsed) } });
  probeOpt.dispose();
  probe.dispose();
  const secPerStep = (times[5] - times[1]) / 4;
  const budget = minutes * 60;
  const maxSteps = Math.max(10, Math.floor((budget * 0.93) / secPerStep));
  log(`probe: ${secPerStep.toFixed(3)} s/step -> max_steps ${maxSteps} (${(maxSteps * batchSize * blockSize / trainTokens).toFixed(2)} epochs)`);

  const { model } = buildModel(config, 'causal-lm', seed);
  const params = model.numParameters();
  const args: TrainingArgs = { ...baseArgs, max_steps: maxSteps, warmup_steps: Math.min(200, Math.floor(maxSteps / 10)) };
  const optimizer = optimizerFromArgs(model, args);
  const stop = new AbortController();
  const deadline = setTimeout(() => stop.abort(), budget * 1.1 * 1000);
  mkdirSync(work, { recursive: true });
  const tTrain = performance.now();
  let lastLoss = NaN;
  const result = await train(model, optimizer, trainData, args, {
    loss, batches: batchFactory(bopts), countTokens, signal: stop.signal, metrics: join(work, 'metrics.jsonl'),
    callbacks: { onLog: (r) => { if (typeof r.loss === 'number') { lastLoss = r.loss; log(`step ${r.step}/${maxSteps} loss ${r.loss.toFixed(4)} lr ${Number(r.learning_rate).toExponential(2)}`); } } },
  });
  clearTimeout(deadline);
  const trainSeconds = (performance.now() - tTrain) / 1000;
  optimizer.dispose();
  const lm = model as unknown as CausalLM;
  const val = await evaluateCausalLm(lm, valBatches);
  const trainEval = await evaluateCausalLm(lm, trainEvalBatches);
  log(`trained ${result.globalStep} steps in ${trainSeconds.toFixed(0)} s; eval loss ${val.loss.toFixed(4)} (ppl ${val.perplexity.toFixed(2)}), unigram ppl ${Math.exp(unigramVal).toFixed(2)}`);

  // Held-out text: WordNet glosses of the test split (WordNet's license allows redistribution with its notice).
  const held: string[] = [];
  let bytes = 0;
  for (const d of testDocs) {
    if (!d.source.startsWith('wordnet/') || d.text.includes('\n')) continue;
    if (bytes + d.text.length > 6000) break;
    held.push(d.text);
    bytes += d.text.length + 1;
  }
  const heldText = held.join('\n') + '\n';
  const heldIds = held.flatMap((t) => [...tok.encode(t).ids, eos]);
  const heldModel = await slidingWindowPerplexity(lm, heldIds, { maxLength: blockSize, stride: blockSize / 2 });
  const heldUnigram = Math.exp(unigramNll(counts, heldIds.slice(1)));

  mkdirSync(out, { recursive: true });
  await (model as unknown as PreTrainedModel).save(out);
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(tokDir, f), join(out, f));
  writeFileSync(join(out, 'generation_config.json'), JSON.stringify({ bos_token_id: eos, eos_token_id: eos, pad_token_id: eos, max_new_tokens: 40, repetition_penalty: 1.3, no_repeat_ngram_size: 3 }, null, 2) + '\n');
  writeFileSync(join(out, 'heldout.txt'), heldText);
  writeFileSync(join(out, 'unigram_counts.json'), JSON.stringify({ description: 'token counts over the packed training blocks; baseline = add-one-smoothed unigram', counts }) + '\n');
  const facts: CardFacts = {
    params, config: { n_layer: 4, n_embd: 128, n_head: 4, n_positions: blockSize, vocab_size: vocab },
    manifest: JSON.parse(readFileSync(join(corpus, 'manifest.json'), 'utf8')) as CardFacts['manifest'],
    trainTokens, valTokens: val.tokens, steps: result.globalStep, maxSteps, batchSize, blockSize, lr, stoppedBy: result.stoppedBy,
    tokensSeen: result.globalStep * batchSize * blockSize, trainLossLogged: lastLoss, trainEval: trainEval.loss, valLoss: val.loss, unigramValNll: unigramVal,
    heldoutModelPpl: heldModel.perplexity, heldoutUnigramPpl: heldUnigram, heldoutTokens: heldModel.tokens, heldoutBytes: Buffer.byteLength(heldText),
    trainSeconds, totalSeconds: (performance.now() - t0) / 1000, backend, command: `node dist/scripts/train_defaults.js ${argv.join(' ')}`.trim(), seed,
  };
  writeFileSync(join(out, 'eval_results.json'), JSON.stringify({ ...facts, manifest: undefined, heldout_margin: heldoutMargin(facts) }, null, 2) + '\n');
  writeModelCard(join(out, 'README.md'), facts);
  log(`saved ${out}; held-out ppl ${heldModel.perplexity.toFixed(2)} vs unigram ${heldUnigram.toFixed(2)}`);
}

await main();
