/**
 * `makemost eval` and `makemost merge-lora`. Evaluation reports the loss `finetune` reports (same data
 * handling, same batches, same MLM masks for a seed), plus the sliding-window perplexity of a causal LM
 * (HF's fixed-length-models method, window --block-size, --stride) or the pseudo-perplexity of a masked
 * LM, or accuracy and F1 of a classifier. A folder holding only a PEFT adapter is evaluated on its base
 * model (adapter_config.json's base_model_name_or_path, or --base). Merging folds a LoRA adapter into
 * its base (PEFT `merge_and_unload`) and saves a plain HF model folder with the tokenizer files.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { openCheckpoint, readConfig, readJsonFile } from '../io/hf_folder.js';
import type { CausalLM, EncoderModel, ModelDims } from '../models/types.js';
import type { PreTrainedModel } from '../models/pretrained_model.js';
import type { Module } from '../nn/module.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';
import { lmSequences, TokenCache, resolveLabelSpace, type KnownLabels, type LabelSpace, type TextExample } from '../training/data.js';
import { evalBatches } from '../training/data_batches.js';
import { pseudoPerplexity, slidingWindowPerplexity } from '../training/eval.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadLora } from '../training/lora/peft.js';
import { mergeLora } from '../training/lora/apply.js';
import { batchOptionsFor, blockSizeFor, checkOutputDir, copyTokenizerFiles, datasetFor, evaluateTask, knownLabels, loadClassifier, loadForTask, loadTokenizer, parseTask, readExamples, TOKENIZER_FILES, type CliTask, type DataFlags } from './finetune_common.js';

/** Flags of `eval`. */
export interface EvalFlags extends DataFlags {
  data: string;
  task: string;
  /** Sliding-window step for causal-LM perplexity (default half the window). */
  stride?: number;
  seed: number;
  /** Base model of an adapter folder (default: adapter_config.json's base_model_name_or_path). */
  base?: string;
}

/** What `eval` prints (snake_case JSON fields). */
export interface EvalResult {
  model: string;
  task: CliTask;
  /** Mean loss: per example (classification) or per scored token (LM, MLM), as finetune's eval_loss. */
  loss: number;
  examples?: number;
  accuracy?: number;
  f1?: number;
  /** LM: sliding-window perplexity, its window, stride and scored tokens. */
  perplexity?: number;
  window?: number;
  stride?: number;
  scored_tokens?: number;
  /** MLM: tokens masked for the loss, and the pseudo-perplexity (every token masked in turn). */
  masked_tokens?: number;
  pseudo_perplexity?: number;
}

const isAdapterOnly = (dir: string) => fs.existsSync(join(dir, ADAPTER_CONFIG)) && !fs.existsSync(join(dir, 'config.json'));

function adapterBase(adapter: string, base?: string): string {
  if (base) return base;
  const cfg = readJsonFile(join(adapter, ADAPTER_CONFIG), 'adapter config') as { base_model_name_or_path?: unknown };
  const b = cfg.base_model_name_or_path;
  if (typeof b !== 'string' || !fs.existsSync(join(b, 'config.json'))) {
    throw new ConfigError(`the adapter in ${adapter} names base model ${JSON.stringify(b ?? null)}, which is not a model folder here`, 'pass the base model folder with --base');
  }
  return b;
}

function hasTokenizer(dir: string): boolean {
  return TOKENIZER_FILES.some((f) => fs.existsSync(join(dir, f)));
}

/** Labels an adapter was trained with: its training_args.json, else LABEL_i for the head's size. */
function adapterLabels(adapter: string): KnownLabels {
  const argsPath = join(adapter, 'training_args.json');
  if (fs.existsSync(argsPath)) {
    const info = readJsonFile(argsPath, 'training arguments') as { labels?: { id2label: Record<string, string>; label2id: Record<string, number> } | null };
    if (info.labels) return { numLabels: Object.keys(info.labels.id2label).length, id2label: info.labels.id2label, label2id: info.labels.label2id, fixed: true };
  }
  const src = openCheckpoint(join(adapter, ADAPTER_WEIGHTS));
  try {
    const head = src.keys().find((k) => /\.(classifier(\.out_proj)?|score)\.weight$/.test(k));
    if (!head) throw new CheckpointError(`the classification adapter in ${adapter} holds no head weights (classifier / score)`, 'train the adapter with the classification head in modules_to_save (makemost finetune does)');
    const n = src.shape(head)[0];
    const id2label = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), `LABEL_${i}`]));
    return { numLabels: n, id2label, label2id: Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)])), fixed: true };
  } finally {
    src.close();
  }
}

/** The label space of a head whose labels are known, whatever data it will see. */
function spaceOf(known: KnownLabels): LabelSpace {
  const regression = known.numLabels === 1;
  return { kind: regression ? 'regression' : 'int', problemType: regression ? 'regression' : 'single_label_classification', numLabels: known.numLabels, id2label: known.id2label, label2id: known.label2id };
}

/** Load the model of `dir` for a task; an adapter-only folder is put on its base model. */
async function loadEvalModel(dir: string, task: CliTask, examples: readonly TextExample[], tok: PreTrainedTokenizer, base?: string): Promise<{ model: Module; space?: LabelSpace }> {
  if (isAdapterOnly(dir)) {
    const baseDir = adapterBase(dir, base);
    const space = task === 'classification' ? resolveLabelSpace(examples, adapterLabels(dir)) : undefined;
    const model = space ? (await loadClassifier(baseDir, space, { seed: 0, padTokenId: tok.padTokenId })).model : await loadForTask(baseDir, task as Exclude<CliTask, 'classification'>);
    try {
      await loadLora(model, dir);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, space };
  }
  if (task !== 'classification') return { model: await loadForTask(dir, task) };
  const known = knownLabels(dir);
  if (!known?.fixed) throw new ConfigError(`${dir} has no trained classification head (config.json's architectures name no *ForSequenceClassification)`, 'evaluate a folder written by makemost finetune --task classification');
  const space = resolveLabelSpace(examples, known);
  return { model: (await loadClassifier(dir, space, { seed: 0 })).model, space };
}

/** Evaluate the model in `dir` on a data file. */
export async function runEval(dir: string, f: EvalFlags): Promise<EvalResult> {
  const task = parseTask(f.task);
  const adapterOnly = isAdapterOnly(dir);
  const tok = await loadTokenizer(adapterOnly && !hasTokenizer(dir) ? adapterBase(dir, f.base) : dir);
  const examples = await readExamples(f.data, task, f);
  const { model, space } = await loadEvalModel(dir, task, examples, tok, f.base);
  try {
    const dims = (model as unknown as { dims(): ModelDims }).dims();
    const blockSize = blockSizeFor(task, { dims: () => dims }, tok, f.blockSize);
    const cache = new TokenCache(tok);
    const data = datasetFor(task, examples, cache, { space, blockSize, packing: f.packing });
    const batches = evalBatches(data, batchOptionsFor(task, tok, dims.vocab, f), f.seed);
    const metrics = await evaluateTask(task, model, batches);
    const res: EvalResult = { model: dir, task, loss: metrics.loss };
    if (task === 'classification') {
      res.examples = data.rows.length;
      if (metrics.accuracy !== undefined) res.accuracy = metrics.accuracy;
      if (metrics.f1 !== undefined) res.f1 = metrics.f1;
    } else if (task === 'lm') {
      const stride = f.stride ?? Math.max(1, Math.floor(blockSize / 2));
      const stream = lmSequences(examples, cache, tok.eosTokenId).flat();
      const sw = await slidingWindowPerplexity(model as unknown as CausalLM, stream, { maxLength: Math.min(blockSize, stream.length), stride: Math.min(stride, blockSize, stream.length) });
      Object.assign(res, { perplexity: sw.perplexity, window: Math.min(blockSize, stream.length), stride: Math.min(stride, blockSize, stream.length), scored_tokens: sw.tokens });
    } else {
      res.masked_tokens = batches.reduce((s, b) => s + b.tokenLabels!.flat().filter((y) => y !== -100).length, 0);
      const rows = data.rows.map((r) => r.ids);
      const types = data.rows.every((r) => r.typeIds) ? data.rows.map((r) => r.typeIds!) : undefined;
      const pp = await pseudoPerplexity(model as unknown as EncoderModel, rows, { maskTokenId: tok.maskTokenId!, specialIds: tok.allSpecialIds, batchSize: f.batchSize, tokenTypeIds: types });
      Object.assign(res, { pseudo_perplexity: pp.pseudoPerplexity, scored_tokens: pp.tokens });
    }
    return res;
  } finally {
    model.dispose();
  }
}

/** Lines for the eval result. */
export function formatEval(r: EvalResult): string {
  return Object.entries(r).map(([k, v]) => `${k.padEnd(18)} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(6) : String(v)}`).join('\n');
}

/** The task an adapter was trained for: adapter_config's task_type, --task, or the base's class. */
function mergeTask(base: string, adapter: string, flag?: string): CliTask {
  if (flag) return parseTask(flag);
  const t = (readJsonFile(join(adapter, ADAPTER_CONFIG), 'adapter config') as { task_type?: unknown }).task_type;
  if (t === 'SEQ_CLS') return 'classification';
  if (t === 'CAUSAL_LM') return 'lm';
  const arch = readConfig(base).architectures;
  const names = Array.isArray(arch) ? arch.map(String) : [];
  if (names.some((n) => n.endsWith('ForMaskedLM'))) return 'mlm';
  if (names.some((n) => n.endsWith('ForCausalLM') || n.endsWith('LMHeadModel'))) return 'lm';
  throw new ConfigError(`cannot tell which head the adapter in ${adapter} belongs to (task_type ${JSON.stringify(t ?? null)})`, 'pass --task classification|lm|mlm');
}

/** What `merge-lora` did. */
export interface MergeResult {
  output_dir: string;
  task: CliTask;
  base: string;
  adapter: string;
  merged_layers: number;
}

/** Fold the LoRA adapter in `adapter` into the model in `base`; save an HF folder to `out`. */
export async function runMergeLora(base: string, adapter: string, f: { out: string; task?: string }): Promise<MergeResult> {
  if (!fs.existsSync(join(adapter, ADAPTER_CONFIG))) throw new CheckpointError(`no ${ADAPTER_CONFIG} in '${adapter}'`, 'pass the folder written by makemost finetune --mode lora (or PEFT\'s save_pretrained)');
  const task = mergeTask(base, adapter, f.task);
  checkOutputDir(f.out);
  const tokDir = hasTokenizer(adapter) ? adapter : base;
  const tok = hasTokenizer(tokDir) ? await loadTokenizer(tokDir) : undefined;
  const model = task === 'classification'
    ? (await loadClassifier(base, spaceOf(adapterLabels(adapter)), { seed: 0, padTokenId: tok?.padTokenId })).model
    : await loadForTask(base, task);
  try {
    const state = await loadLora(model, adapter);
    const merged = state.layers.size;
    mergeLora(model);
    await (model as PreTrainedModel).save(f.out);
    if (tok) copyTokenizerFiles(tokDir, f.out);
    return { output_dir: f.out, task, base, adapter, merged_layers: merged };
  } finally {
    model.dispose();
  }
}
