/**
 * `makemost finetune`: load a checkpoint for a task (a classification head on any base or LM checkpoint,
 * a causal LM, a masked LM), prepare a finetuning mode, and train with HF Trainer's semantics — a
 * progress bar (loss, tokens/s, ETA), metrics as JSON lines, resumable checkpoints, the loss curve as SVG
 * — then save the result as an HF folder with the tokenizer files, or, in LoRA mode, as a PEFT adapter.
 * Ctrl-C stops after the current update and keeps a checkpoint; the output folder is checked (writable,
 * free, not holding an earlier run) before anything is loaded, so a bad folder costs nothing.
 */
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { Command } from 'commander';
import { ConfigError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { ModelDims } from '../models/types.js';
import type { PreTrainedModel } from '../models/pretrained_model.js';
import { splitTrainValidation, TokenCache, labelIds, type LabelSpace, type TextExample } from '../training/data.js';
import { batchFactory, countTokens, evalBatches, type Batch } from '../training/data_batches.js';
import { causalLmLoss, classificationLoss, maskedLmLoss } from '../training/losses.js';
import { saveLora } from '../training/lora/peft.js';
import { parseJsonLines, type MetricsRecord } from '../training/metrics.js';
import { formatFinetuneMode, parseFinetuneMode, prepareFinetune } from '../training/modes.js';
import type { AdamW } from '../training/optim/adamw.js';
import { lossCurveSvg } from '../training/plot.js';
import type { ScheduleType } from '../training/schedules.js';
import { optimizerFromArgs, train, type LossFn, type StepInfo, type TrainingArgs } from '../training/trainer.js';
import { formatEval, runEval, runMergeLora, type EvalFlags } from './evaluate.js';
import { intAtLeast, number } from './args.js';
import { batchOptionsFor, blockSizeFor, checkOutputDir, copyTokenizerFiles, datasetFor, evaluateTask, labelSpaceFor, loadClassifier, loadForTask, loadTokenizer, parseTask, readExamples, type CliTask, type DataFlags } from './finetune_common.js';

/** Flags of `finetune` (commander's camelCase). */
export interface FinetuneFlags extends DataFlags {
  data: string;
  validation?: string;
  validationSplit?: number;
  task: string;
  mode: string;
  out: string;
  epochs?: number;
  maxSteps?: number;
  lr: number;
  warmupRatio?: number;
  warmupSteps?: number;
  weightDecay?: number;
  gradAccum?: number;
  maxGradNorm?: number;
  lrScheduler?: string;
  loggingSteps: number;
  evalSteps?: number;
  saveSteps?: number;
  saveTotalLimit?: number;
  seed: number;
  resume?: boolean;
  numLabels?: number;
  /** No progress output. */
  quiet?: boolean;
}

/** What a run did (printed as JSON with --json). */
export interface FinetuneResult {
  output_dir: string;
  task: CliTask;
  mode: string;
  stopped_by: 'max_steps' | 'early_stopping' | 'signal';
  global_step: number;
  train_loss: number;
  /** Final evaluation on the validation data (eval_-prefixed, as HF's eval_results.json). */
  eval?: Record<string, number>;
  /** What the folder holds: a full model, a PEFT adapter, or nothing new (interrupted). */
  saved: 'model' | 'adapter' | null;
  last_checkpoint?: string;
}

/** Where messages go. */
export interface FinetuneIO {
  log: (line: string) => void;
  signal?: AbortSignal;
}

const LOSS: Record<CliTask, LossFn<Module, Batch>> = {
  classification: classificationLoss as unknown as LossFn<Module, Batch>,
  lm: causalLmLoss as unknown as LossFn<Module, Batch>,
  mlm: maskedLmLoss as unknown as LossFn<Module, Batch>,
};

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path);
}

function clock(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Progress on stderr: a bar on a terminal, otherwise one line per logged record. */
function progress(io: FinetuneIO, quiet: boolean): { onStep(s: StepInfo): void; onLog(r: MetricsRecord): void; stop(): void } {
  if (quiet) return { onStep() {}, onLog() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({ format: ' {bar} {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_text}{eval}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
    let started = false;
    let evalText = '';
    return {
      onStep(s) {
        const payload = { loss: s.loss.toFixed(4), tps: s.tokensPerSecond ? Math.round(s.tokensPerSecond) : '?', eta_text: clock(s.eta), eval: evalText };
        if (!started) bar.start(s.maxSteps, s.step - 1, payload);
        started = true;
        bar.update(s.step, payload);
      },
      onLog(r) {
        if (typeof r.eval_loss === 'number') evalText = ` | eval loss ${r.eval_loss.toFixed(4)}`;
      },
      stop: () => bar.stop(),
    };
  }
  let last: StepInfo | undefined;
  return {
    onStep(s) {
      last = s;
    },
    onLog(r) {
      const metrics = Object.entries(r).filter(([k, v]) => k !== 'step' && k !== 'epoch' && typeof v === 'number').map(([k, v]) => `${k} ${Number((v as number).toPrecision(5))}`);
      const pace = last && typeof r.loss === 'number' ? ` | ${last.tokensPerSecond ? Math.round(last.tokensPerSecond) : '?'} tok/s | ETA ${clock(last.eta)}` : '';
      io.log(`step ${r.step}${last ? `/${last.maxSteps}` : ''} | ${metrics.join(' | ')}${pace}`);
    },
    stop() {},
  };
}

function trainingArgs(f: FinetuneFlags, hasValidation: boolean): TrainingArgs {
  if (f.evalSteps !== undefined && !hasValidation) throw new ConfigError('--eval-steps needs validation data', 'pass --validation <file> or --validation-split <ratio>');
  return {
    output_dir: f.out, seed: f.seed, learning_rate: f.lr, weight_decay: f.weightDecay, warmup_ratio: f.warmupRatio, warmup_steps: f.warmupSteps,
    num_train_epochs: f.epochs, max_steps: f.maxSteps, gradient_accumulation_steps: f.gradAccum, max_grad_norm: f.maxGradNorm,
    lr_scheduler_type: f.lrScheduler as ScheduleType | undefined, logging_steps: f.loggingSteps,
    eval_strategy: f.evalSteps !== undefined ? 'steps' : undefined, eval_steps: f.evalSteps,
    save_steps: f.saveSteps, save_total_limit: f.saveTotalLimit, resume_from_checkpoint: f.resume ? true : undefined,
  };
}

async function readSplits(f: FinetuneFlags, task: CliTask): Promise<{ train: TextExample[]; validation?: TextExample[] }> {
  if (f.validation !== undefined && f.validationSplit !== undefined) throw new ConfigError('both --validation and --validation-split are given', 'use a validation file, or split the training file, not both');
  const train = await readExamples(f.data, task, f);
  if (f.validation !== undefined) return { train, validation: await readExamples(f.validation, task, f) };
  if (f.validationSplit !== undefined) return splitTrainValidation(train, f.validationSplit, f.seed);
  return { train };
}

/** Run `finetune` on the model folder `dir`; resolves when training ends or is interrupted. */
export async function runFinetune(dir: string, f: FinetuneFlags, io: FinetuneIO): Promise<FinetuneResult> {
  const task = parseTask(f.task);
  const mode = parseFinetuneMode(f.mode);
  const out = f.out;
  checkOutputDir(out, { resume: f.resume });
  const tok = await loadTokenizer(dir);
  const { train: trainEx, validation: valEx } = await readSplits(f, task);
  const args = trainingArgs(f, valEx !== undefined);
  let space: LabelSpace | undefined;
  let model: Module;
  if (task === 'classification') {
    space = labelSpaceFor(dir, trainEx, f.numLabels);
    if (valEx) labelIds(valEx, space); // fails on a bad validation label before the model loads
    const loaded = await loadClassifier(dir, space, { seed: f.seed, padTokenId: tok.padTokenId });
    model = loaded.model;
    if (loaded.initialised.length) io.log(`newly initialised (not in the checkpoint): ${loaded.initialised.join(', ')}`);
  } else {
    model = await loadForTask(dir, task);
  }
  let optimizer: AdamW | undefined;
  try {
    const dims = (model as unknown as { dims(): ModelDims }).dims();
    const blockSize = blockSizeFor(task, { dims: () => dims }, tok, f.blockSize);
    const cache = new TokenCache(tok);
    const trainData = datasetFor(task, trainEx, cache, { space, blockSize, packing: f.packing });
    const valData = valEx ? datasetFor(task, valEx, cache, { space, blockSize, packing: f.packing }) : undefined;
    const bopts = batchOptionsFor(task, tok, dims.vocab, f);
    const valBatches = valData ? evalBatches(valData, bopts, f.seed) : undefined;
    const setup = prepareFinetune(model, mode, { seed: f.seed });
    const trainable = [...model.namedParameters()].filter(([, v]) => v.trainable).reduce((s, [, v]) => s + v.size, 0);
    const all = model.numParameters();
    // One checkpoint (weights + two moments per trainable value) and the final model or adapter, in float32.
    checkOutputDir(out, { resume: f.resume, neededBytes: 4 * (all + 2 * trainable + (setup.lora ? trainable : all)) + 1e6 });
    optimizer = optimizerFromArgs(model, args, { lrScale: setup.lrScale });
    io.log(`${task} on ${trainData.rows.length} rows${valData ? ` (${valData.rows.length} for validation)` : ''}, block size ${blockSize}, mode ${formatFinetuneMode(mode)}: ${trainable.toLocaleString('en-US')} of ${all.toLocaleString('en-US')} parameters trainable`);
    const bar = progress(io, !!f.quiet);
    const lora = setup.lora;
    const adapterOpts = { baseModelNameOrPath: resolve(dir) };
    let result;
    try {
      result = await train(model, optimizer, trainData, args, {
        loss: LOSS[task], batches: batchFactory(bopts), countTokens, signal: io.signal, metrics: join(out, 'metrics.jsonl'),
        evaluate: valBatches ? (m) => evaluateTask(task, m, valBatches) : undefined,
        exportModel: lora ? (m, d) => saveLora(m, d, adapterOpts) : undefined,
        callbacks: { onStep: bar.onStep, onLog: bar.onLog },
      });
    } catch (e) {
      // A diverged or failed run still leaves the curve of what it logged, beside its last checkpoint.
      try {
        writeAtomic(join(out, 'loss_curve.svg'), lossCurveSvg(parseJsonLines(fs.readFileSync(join(out, 'metrics.jsonl'), 'utf8')), { title: `${task} · ${formatFinetuneMode(mode)} · ${dir} (failed)` }));
      } catch {
        // nothing logged, or the folder is unwritable: the original error is what matters
      }
      throw e;
    } finally {
      bar.stop();
    }
    const history = result.logHistory.slice();
    const res: FinetuneResult = { output_dir: out, task, mode: formatFinetuneMode(mode), stopped_by: result.stoppedBy, global_step: result.globalStep, train_loss: result.trainLoss, saved: null, last_checkpoint: result.lastCheckpoint };
    const info = { base_model: resolve(dir), task, mode: res.mode, block_size: blockSize, batch_size: f.batchSize, seed: f.seed, data: f.data, validation: f.validation ?? null, validation_split: f.validationSplit ?? null, labels: space ? { id2label: space.id2label, label2id: space.label2id, problem_type: space.problemType } : null, training_args: args };
    if (result.stoppedBy !== 'signal') {
      if (valBatches) {
        const metrics = Object.fromEntries(Object.entries(await evaluateTask(task, model, valBatches)).map(([k, v]) => [`eval_${k}`, v]));
        res.eval = metrics;
        const record = { ...metrics, epoch: result.epoch, step: result.globalStep };
        history.push(record);
        fs.appendFileSync(join(out, 'metrics.jsonl'), JSON.stringify(record) + '\n');
        writeAtomic(join(out, 'eval_results.json'), JSON.stringify(record, null, 2) + '\n');
      }
      if (lora) await saveLora(model, out, adapterOpts);
      else await (model as PreTrainedModel).save(out);
      copyTokenizerFiles(dir, out);
      writeAtomic(join(out, 'training_args.json'), JSON.stringify(info, null, 2) + '\n');
      res.saved = lora ? 'adapter' : 'model';
    }
    writeAtomic(join(out, 'loss_curve.svg'), lossCurveSvg(history, { title: `${task} · ${res.mode} · ${dir}` }));
    return res;
  } finally {
    optimizer?.dispose();
    model.dispose();
  }
}

/** The summary printed after a run. */
export function formatFinetune(r: FinetuneResult): string {
  const lines = [`stopped by ${r.stopped_by} at step ${r.global_step}; mean training loss ${r.train_loss.toFixed(4)}`];
  if (r.eval) lines.push(`evaluation: ${Object.entries(r.eval).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
  if (r.saved) lines.push(`saved the ${r.saved === 'adapter' ? 'LoRA adapter (PEFT format)' : 'model (HF format)'} with its tokenizer to ${r.output_dir}; loss curve: ${join(r.output_dir, 'loss_curve.svg')}`);
  else lines.push(r.last_checkpoint ? `interrupted: the last checkpoint is ${r.last_checkpoint}; continue with --resume` : 'interrupted before the first update: nothing was saved');
  return lines.join('\n');
}



function dataOptions(c: Command, defaultBatch: number): Command {
  return c
    .option('--text-column <name>', 'column holding the text (default: text)')
    .option('--text-pair-column <name>', 'column holding the second text of a pair (classification, MLM)')
    .option('--label-column <name>', 'column holding the label (classification; default: label)')
    .option('--format <format>', 'data format when the extension does not say: jsonl, json, csv, tsv, text, parquet')
    .option('--whole-file', 'plain text: the whole file is one example (default: one per line)')
    .option('--no-packing', 'LM: one padded row per text instead of packed blocks')
    .option('--block-size <n>', 'tokens per row: LM block, or truncation length (default: the model context, at most 1024 for LM and 512 otherwise)', intAtLeast(2))
    .option('--batch-size <n>', 'rows per batch', intAtLeast(1), defaultBatch)
    .option('--mlm-probability <p>', 'MLM: share of tokens masked (default 0.15)', number)
    .option('--json', 'print the result as JSON');
}

/** Register `finetune`, `eval` and `merge-lora` on the program; `signal` fires on Ctrl-C. */
export function addTrainingCommands(p: Command, interrupt: () => AbortSignal): void {
  const print = (json: boolean | undefined, value: unknown, text: () => string) => process.stdout.write((json ? JSON.stringify(value, null, 2) : text()) + '\n');
  dataOptions(p.command('finetune')
    .description('finetune a model folder on a data file and save it as an HF folder (or a PEFT adapter in LoRA mode)')
    .argument('<dir>', 'Hugging Face model folder to start from')
    .requiredOption('--data <file>', 'training data: .jsonl, .json, .csv, .tsv, .txt or .parquet')
    .option('--validation <file>', 'validation data (evaluated at the end, and every --eval-steps)')
    .option('--validation-split <ratio>', 'hold out this share of --data for validation (seeded)', number)
    .requiredOption('--task <task>', 'classification | lm | mlm')
    .option('--mode <mode>', 'full | last-layer | freeze-lower:K | llrd:0.9 | reinit-top:K | bitfit | lora[:r=8,alpha=16,dropout=0.05,targets=c_attn+c_proj]', 'full')
    .requiredOption('--out <dir>', 'output folder (must be new or empty unless --resume)')
    .option('--epochs <n>', 'training epochs (default 3; may be fractional)', number)
    .option('--max-steps <n>', 'optimizer updates; overrides --epochs', intAtLeast(1))
    .option('--lr <rate>', 'peak learning rate', number, 5e-5)
    .option('--warmup-ratio <r>', 'share of the updates spent warming up', number)
    .option('--warmup-steps <n>', 'updates spent warming up', intAtLeast(0))
    .option('--weight-decay <w>', 'AdamW decoupled weight decay (not on biases and norms)', number)
    .option('--grad-accum <n>', 'micro-batches per update', intAtLeast(1))
    .option('--max-grad-norm <x>', 'clip gradients to this global norm (0: off; default 1)', number)
    .option('--lr-scheduler <type>', 'linear (default), cosine, constant, constant_with_warmup')
    .option('--logging-steps <n>', 'write a metrics line every n updates', intAtLeast(1), 10)
    .option('--eval-steps <n>', 'evaluate on the validation data every n updates', intAtLeast(1))
    .option('--save-steps <n>', 'write a resumable checkpoint every n updates (default 500, and at the end)', intAtLeast(1))
    .option('--save-total-limit <n>', 'keep at most n checkpoints', intAtLeast(1))
    .option('--num-labels <n>', 'classification: number of classes when labels are ids (default: the largest + 1)', intAtLeast(1))
    .option('--seed <n>', 'seed of the data order, dropout, masks and new weights', intAtLeast(0), 42)
    .option('--resume', 'continue the run in --out from its latest checkpoint')
    .option('--quiet', 'no progress output'), 8)
    .action(async (dir: string, o: FinetuneFlags & { json?: boolean }) => {
      const r = await runFinetune(dir, o, { log: (s) => process.stderr.write(s + '\n'), signal: interrupt() });
      print(o.json, r, () => formatFinetune(r));
      if (r.stopped_by === 'signal') process.exitCode = 130;
    });

  dataOptions(p.command('eval')
    .description('loss of a model on a data file, with perplexity (LM, sliding window), pseudo-perplexity (MLM) or accuracy and F1 (classification)')
    .argument('<dir>', 'model folder, or a LoRA adapter folder written by finetune')
    .requiredOption('--data <file>', 'evaluation data')
    .requiredOption('--task <task>', 'classification | lm | mlm')
    .option('--stride <n>', 'LM: sliding-window step (default: half the window)', intAtLeast(1))
    .option('--seed <n>', 'seed of the MLM masks for the loss', intAtLeast(0), 42)
    .option('--base <dir>', 'base model of an adapter folder (default: the one its adapter_config.json names)'), 8)
    .action(async (dir: string, o: EvalFlags & { json?: boolean }) => {
      const r = await runEval(dir, o);
      print(o.json, r, () => formatEval(r));
    });

  p.command('merge-lora')
    .description('fold a LoRA adapter (PEFT format) into its base model and save a plain HF model folder')
    .argument('<base>', 'base model folder')
    .argument('<adapter>', 'adapter folder (adapter_config.json + adapter_model.safetensors)')
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .option('--task <task>', 'classification | lm | mlm (default: from the adapter and base)')
    .option('--json', 'print the result as JSON')
    .action(async (base: string, adapter: string, o: { out: string; task?: string; json?: boolean }) => {
      const r = await runMergeLora(base, adapter, o);
      print(o.json, r, () => `merged ${r.merged_layers} adapted layers of ${adapter} into ${base}; saved to ${r.output_dir}`);
    });
}
