/**
 * What `finetune`, `eval` and `merge-lora` share: the task names of the CLI and the model class each
 * loads, the tokenizer (GPT-2's missing pad token falls back to EOS, as HF users set it), data files to
 * tokenised datasets and batches, a checkpoint loaded under a classification head whose labels come
 * from the data (HF `from_pretrained(dir, num_labels=…, id2label=…)`: head weights the checkpoint lacks
 * are drawn from the config's initializer_range), task evaluation, tokenizer files copied with a model,
 * and the output-folder check made before any work starts.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { openCheckpoint, readConfig } from '../io/hf_folder.js';
import type { SequenceClassifier } from '../models/classification.js';
import { renamedSource } from '../models/common.js';
import { fromPretrained } from '../models/pretrained.js';
import { architectureFor, buildModel, type Task } from '../models/registry.js';
import type { CausalLM, EncoderModel } from '../models/types.js';
import { AutoTokenizer } from '../tokenizers/files.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';
import { classificationDataset, lmDataset, mlmDataset, resolveLabelSpace, selectExamples, type ColumnMap, type KnownLabels, type LabelSpace, type TextExample, type TokenCache, type TokenDataset } from '../training/data.js';
import type { Batch, BatchOptions } from '../training/data_batches.js';
import { readDataFile, type DataFormat } from '../training/data_formats.js';
import { evaluateCausalLm, evaluateClassifier, evaluateMaskedLm } from '../training/eval.js';
import type { Module } from '../nn/module.js';

/** The tasks of the CLI. */
export type CliTask = 'classification' | 'lm' | 'mlm';
export const CLI_TASKS: readonly CliTask[] = ['classification', 'lm', 'mlm'];

/** The model class each task loads. */
export const MODEL_TASK: Record<CliTask, Task> = { classification: 'sequence-classification', lm: 'causal-lm', mlm: 'masked-lm' };

/** Check a --task value. */
export function parseTask(v: string): CliTask {
  if (!(CLI_TASKS as readonly string[]).includes(v)) throw new ConfigError(`unknown task '${v}'`, `use one of: ${CLI_TASKS.join(', ')}`);
  return v as CliTask;
}

/** Data options shared by the commands (commander's camelCase flags). */
export interface DataFlags {
  textColumn?: string;
  textPairColumn?: string;
  labelColumn?: string;
  format?: DataFormat;
  /** Plain text: the whole file is one example. */
  wholeFile?: boolean;
  /** LM: pack texts into blocks (default true). */
  packing?: boolean;
  blockSize?: number;
  batchSize: number;
  /** MLM masking rate (default 0.15). */
  mlmProbability?: number;
}

/** The tokenizer of a model folder, with a pad token (EOS when the files name none). */
export async function loadTokenizer(dir: string): Promise<PreTrainedTokenizer> {
  const tok = await AutoTokenizer.fromPretrained(dir);
  if (tok.padTokenId === undefined) {
    if (tok.eosToken === undefined) throw new ConfigError(`the tokenizer in ${dir} has neither a pad token nor an EOS token`, 'set "pad_token" in tokenizer_config.json');
    tok.padToken = tok.eosToken;
  }
  return tok;
}

/** Read a data file's examples (with labels for classification). */
export async function readExamples(path: string, task: CliTask, flags: DataFlags): Promise<TextExample[]> {
  const formats = ['jsonl', 'json', 'csv', 'tsv', 'text', 'parquet'];
  if (flags.format !== undefined && !formats.includes(flags.format)) throw new ConfigError(`unknown data format '${flags.format}'`, `use one of: ${formats.join(', ')}`);
  const table = await readDataFile(path, { format: flags.format, textMode: flags.wholeFile ? 'file' : 'line' });
  const map: ColumnMap = { text: flags.textColumn, textPair: flags.textPairColumn, label: flags.labelColumn };
  if (task !== 'classification' && flags.labelColumn !== undefined) throw new ConfigError(`--label-column is set, but task '${task}' uses no labels`, 'drop --label-column, or use --task classification');
  return selectExamples(table, map, { labels: task === 'classification' });
}

/** Longest sequence the model and tokenizer allow, capped (1024 for LM, 512 otherwise), or the flag's value checked. */
export function blockSizeFor(task: CliTask, model: { dims(): { maxPositions: number } }, tok: PreTrainedTokenizer, flag?: number): number {
  const limit = Math.min(model.dims().maxPositions, tok.modelMaxLength);
  if (flag !== undefined) {
    if (flag > model.dims().maxPositions) throw new ConfigError(`--block-size ${flag} exceeds the model's ${model.dims().maxPositions} positions`, `use at most ${model.dims().maxPositions}`);
    return flag;
  }
  return Math.min(limit, task === 'lm' ? 1024 : 512);
}

/** The label space a checkpoint already has: fixed when it was saved as a sequence classifier. */
export function knownLabels(dir: string): KnownLabels | undefined {
  const raw = readConfig(dir);
  const arch = Array.isArray(raw.architectures) ? raw.architectures.map(String) : [];
  if (raw.id2label === undefined || raw.id2label === null) return undefined;
  const id2label = Object.fromEntries(Object.entries(raw.id2label as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
  const label2id = (raw.label2id as Record<string, number> | undefined) ?? Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)]));
  return { numLabels: Object.keys(id2label).length, id2label, label2id, fixed: arch.some((a) => a.endsWith('ForSequenceClassification')) };
}

/** Resolve the labels of a run from its training examples and the checkpoint. */
export function labelSpaceFor(dir: string, train: readonly TextExample[], numLabels?: number): LabelSpace {
  return resolveLabelSpace(train, knownLabels(dir), { numLabels });
}

// The head (and BERT's pooler, which masked-LM checkpoints lack) may be new; the body must be there.
const HEAD = /^(classifier|score)\.|(^|\.)pooler\./;

/**
 * Load a checkpoint under a sequence-classification head with the given labels. Weights the checkpoint
 * lacks for the head and pooler are drawn (seeded), as HF initialises them; anything else missing fails.
 */
export async function loadClassifier(dir: string, space: LabelSpace, opts: { seed: number; padTokenId?: number }): Promise<{ model: SequenceClassifier; initialised: string[] }> {
  const raw = readConfig(dir);
  const arch = architectureFor(raw, join(dir, 'config.json'));
  const { num_labels: _n, ...rest } = raw;
  const cfg: Record<string, unknown> = { ...rest, id2label: space.id2label, label2id: space.label2id, problem_type: space.problemType };
  if (cfg.pad_token_id === undefined && opts.padTokenId !== undefined) cfg.pad_token_id = opts.padTokenId;
  const { model, config } = buildModel(cfg, 'sequence-classification', opts.seed);
  const src = openCheckpoint(dir);
  try {
    const report = model.loadStateDict(renamedSource(src, arch.keyMapper(config, 'sequence-classification')), { strict: false, origin: dir });
    const body = report.missing.filter((k) => !HEAD.test(k));
    if (body.length) throw new CheckpointError(`${dir} lacks ${body.length} weight(s) of the model body: ${body.slice(0, 8).join(', ')}${body.length > 8 ? ', …' : ''}`, 'pass a checkpoint of this architecture (config.json must match the weights)');
    return { model: model as unknown as SequenceClassifier, initialised: report.missing };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    src.close();
  }
}

/** Load the model of a non-classification task. */
export async function loadForTask(dir: string, task: Exclude<CliTask, 'classification'>): Promise<Module> {
  return fromPretrained(dir, MODEL_TASK[task]);
}

/** Tokenise examples into the task's dataset. */
export function datasetFor(task: CliTask, examples: readonly TextExample[], cache: TokenCache, opts: { space?: LabelSpace; blockSize: number; packing?: boolean }): TokenDataset {
  if (task === 'classification') return classificationDataset(examples, cache, opts.space!, { maxLength: opts.blockSize });
  if (task === 'mlm') return mlmDataset(examples, cache, { maxLength: opts.blockSize });
  return lmDataset(examples, cache, { blockSize: opts.blockSize, packing: opts.packing, eosId: cache.tokenizer.eosTokenId });
}

/** Batch options of a task for this tokenizer and model. */
export function batchOptionsFor(task: CliTask, tok: PreTrainedTokenizer, vocab: number, flags: DataFlags): BatchOptions {
  const opts: BatchOptions = { kind: task, batchSize: flags.batchSize, padId: tok.padTokenId! };
  if (task === 'mlm') {
    const maskTokenId = tok.maskTokenId;
    if (maskTokenId === undefined) throw new ConfigError('the tokenizer has no mask token, which masked-LM training needs', 'use a BERT/RoBERTa tokenizer, or set "mask_token" in tokenizer_config.json');
    opts.mlm = { maskTokenId, vocabSize: Math.min(vocab, tok.length), specialIds: tok.allSpecialIds, probability: flags.mlmProbability };
  }
  return opts;
}

/** Evaluation loss and metrics of a task over fixed batches (keys without the eval_ prefix). */
export async function evaluateTask(task: CliTask, model: Module, batches: readonly Batch[]): Promise<Record<string, number>> {
  if (task === 'classification') {
    const r = await evaluateClassifier(model as unknown as SequenceClassifier, batches);
    const out: Record<string, number> = { loss: r.loss };
    if (r.accuracy !== undefined) out.accuracy = r.accuracy;
    if (r.f1 !== undefined) out.f1 = r.f1;
    return out;
  }
  const r = task === 'lm' ? await evaluateCausalLm(model as unknown as CausalLM, batches) : await evaluateMaskedLm(model as unknown as EncoderModel, batches);
  return { loss: r.loss, perplexity: r.perplexity };
}

/** Tokenizer files a model folder may hold (transformers' save_pretrained names). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt', 'vocab.txt', 'tokenizer.model'];

/** Copy the tokenizer files of `from` into `to` (each written to a temporary name, then renamed). */
export function copyTokenizerFiles(from: string, to: string): string[] {
  const copied: string[] = [];
  for (const f of TOKENIZER_FILES) {
    const src = join(from, f);
    if (!fs.existsSync(src)) continue;
    const tmp = join(to, `.${f}.${process.pid}.tmp`);
    try {
      fs.copyFileSync(src, tmp);
      fs.renameSync(tmp, join(to, f));
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw new CheckpointError(`cannot copy ${src} to ${to}: ${(e as Error).message}`, 'check that the output folder is writable and has free space');
    }
    copied.push(f);
  }
  return copied;
}

/** Files that mark a folder as holding a model, an adapter or a run. */
const RUN_FILES = /^(config\.json|model\.safetensors|adapter_config\.json|adapter_model\.safetensors|metrics\.jsonl|checkpoint-\d+)$/;

/**
 * Make sure `dir` can take the run's output before anything is computed: it is (or can be created as) a
 * folder, a file can be written in it, it holds no earlier model or run (unless resuming), and it has
 * the free space `neededBytes` asks for. Nothing already in the folder is changed.
 */
export function checkOutputDir(dir: string, opts: { resume?: boolean; neededBytes?: number; freeBytes?: (dir: string) => number } = {}): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new CheckpointError(`the output path '${dir}' is a file, not a folder`, 'pass a folder for --out');
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`cannot create the output folder '${dir}': ${(e as Error).message}`, 'choose a folder you can write to');
  }
  const probe = join(dir, `.makemost-write-test-${process.pid}`);
  try {
    fs.writeFileSync(probe, 'ok');
  } catch (e) {
    throw new CheckpointError(`the output folder '${dir}' is not writable: ${(e as Error).message}`, 'choose a folder you can write to, with free space');
  } finally {
    fs.rmSync(probe, { force: true });
  }
  const earlier = fs.readdirSync(dir).filter((f) => RUN_FILES.test(f)).sort();
  if (!opts.resume && earlier.length) {
    throw new CheckpointError(`the output folder '${dir}' already holds an earlier model or run (${earlier.slice(0, 6).join(', ')}${earlier.length > 6 ? ', …' : ''}); nothing was changed`, 'pass --resume to continue that run, or choose another --out folder');
  }
  if (opts.neededBytes !== undefined) {
    const free = (opts.freeBytes ?? freeBytes)(dir);
    if (free < opts.neededBytes) {
      const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
      throw new CheckpointError(`the output folder '${dir}' has ${mb(free)} free, but the run needs about ${mb(opts.neededBytes)} (a checkpoint with optimizer state, and the final model)`, 'free some space, or choose a folder on another disk');
    }
  }
}

/** Bytes available to this user on the file system holding `dir`. */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}
