/**
 * The training loop as a plain function with the policy injected (STYLE habit 11), following HF
 * `Trainer._inner_training_loop`: gradient accumulation (the update uses the mean of the micro-batch
 * gradients, as HF's loss / gradient_accumulation_steps), clipping by global norm, AdamW, a schedule
 * stepped once per update, evaluation and saving every N steps or each epoch, best-checkpoint keeping,
 * early stopping (HF `EarlyStoppingCallback`), and metrics as JSON lines (HF `log_history` records).
 *
 * Determinism: dropout masks come from one seeded stream saved in every checkpoint; each epoch's data
 * order comes from a stream derived from (seed, epoch), so a resumed run reads exactly the batches the
 * uninterrupted one would have. A non-finite loss or gradient stops training before the update is applied.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../backend/rng.js';
import { ConfigError, MakemostError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { bestMetricKey, stepsOf, validate, type ResolvedTrainingArgs, type TrainingArgs } from './args.js';
export type { ResolvedTrainingArgs, TrainingArgs } from './args.js';
import type { TrainerState } from './checkpoint.js';
import { jsonLinesFile, Progress, WindowMean, type MetricsRecord, type MetricsSink } from './metrics.js';
import { AdamW } from './optim/adamw.js';
import { clipGradNorm, globalGradNorm } from './optim/clip.js';
import { getSchedule, warmupSteps } from './schedules.js';

/** Mean loss of one micro-batch; called inside the gradient tape. */
export type LossFn<M, B> = (model: M, batch: B, ctx: { training: true; rng: Rng }) => tf.Scalar;

/** Turns the dataset into batches, epoch by epoch, from any position (so a run can resume). */
export interface BatchFactory<D, B> {
  /** Batches in one epoch of `data`; needed when the run length comes from num_train_epochs. */
  count?(data: D): number;
  /** Epoch `epoch`'s batches, skipping the first `start`; any shuffling draws from `rng` alone. */
  iterate(data: D, epoch: number, start: number, rng: Rng): Iterable<B> | AsyncIterable<B>;
}

/** What `onStep` reports after each optimizer update. */
export interface StepInfo {
  step: number;
  maxSteps: number;
  /** Fractional epochs done. */
  epoch: number;
  /** Mean loss over the update's micro-batches. */
  loss: number;
  /** Learning rate of the first parameter group in this update. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Seconds since this call of train() started. */
  elapsed: number;
  /** Present when `countTokens` is given. */
  tokensPerSecond?: number;
  /** Seconds left at the current pace. */
  eta?: number;
}

/** Observers (the CLI draws its progress bar from these); they cannot change the run. */
export interface TrainCallbacks {
  onStep?(info: StepInfo): void;
  onLog?(record: MetricsRecord): void;
  onEvaluate?(metrics: MetricsRecord, info: { step: number; isBest: boolean }): void;
  onSave?(dir: string, step: number): void;
  onEpochEnd?(epoch: number, step: number): void;
}

/** The injected policy and plumbing of {@link train}. */
export interface TrainOptions<M, D, B> {
  loss: LossFn<M, B>;
  batches: BatchFactory<D, B>;
  /** Evaluation metrics (e.g. {loss, accuracy}); logged with an `eval_` prefix, as HF. */
  evaluate?: (model: M, info: { step: number; epoch: number }) => Promise<Record<string, number>> | Record<string, number>;
  callbacks?: TrainCallbacks;
  /** Stop cleanly after the current update (a checkpoint is written when saving is on). */
  signal?: AbortSignal;
  /** A sink, or a path to append JSON lines to. */
  metrics?: MetricsSink | string;
  /** Tokens in a batch, for tokens/s. */
  countTokens?: (batch: B) => number;
  /** Extra files for each checkpoint folder (e.g. a LoRA adapter). */
  exportModel?: (model: M, dir: string) => Promise<void> | void;
  /** Milliseconds clock (default `performance.now`). */
  now?: () => number;
}

/** How a run ended. */
export interface TrainResult {
  globalStep: number;
  epoch: number;
  stoppedBy: 'max_steps' | 'early_stopping' | 'signal';
  /** Mean loss over this call's updates. */
  trainLoss: number;
  bestMetric?: number;
  bestCheckpoint?: string;
  lastCheckpoint?: string;
  logHistory: MetricsRecord[];
}

/** Batches already built, held in an array: one epoch is the array, reshuffled per epoch when asked. */
export function arrayBatches<B>(opts: { shuffle?: boolean } = {}): BatchFactory<readonly B[], B> {
  return {
    count: (data) => data.length,
    *iterate(data, _epoch, start, rng) {
      const order = data.map((_, i) => i);
      if (opts.shuffle) {
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
      }
      for (let i = start; i < order.length; i++) yield data[order[i]];
    },
  };
}

/** The loss or the gradients became NaN or infinite; nothing was updated or saved with them. */
export class NonFiniteLossError extends MakemostError {}

function epochRng(seed: number, epoch: number): Rng {
  return new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) | 0);
}

// Explicit args must agree with the optimizer they describe (no option silently ignored).
function checkOptimizer(raw: TrainingArgs, opt: AdamW): void {
  const bad: string[] = [];
  if (raw.learning_rate !== undefined && opt.groups.some((g) => g.lr !== raw.learning_rate)) bad.push(`learning_rate=${raw.learning_rate} but the groups have lr ${opt.groups.map((g) => g.lr).join(', ')}`);
  if (raw.weight_decay !== undefined && Math.max(...opt.groups.map((g) => g.weightDecay)) !== raw.weight_decay) bad.push(`weight_decay=${raw.weight_decay} but the groups have ${opt.groups.map((g) => g.weightDecay).join(', ')}`);
  if (raw.adam_beta1 !== undefined && raw.adam_beta1 !== opt.betas[0]) bad.push(`adam_beta1=${raw.adam_beta1} but the optimizer has ${opt.betas[0]}`);
  if (raw.adam_beta2 !== undefined && raw.adam_beta2 !== opt.betas[1]) bad.push(`adam_beta2=${raw.adam_beta2} but the optimizer has ${opt.betas[1]}`);
  if (raw.adam_epsilon !== undefined && raw.adam_epsilon !== opt.eps) bad.push(`adam_epsilon=${raw.adam_epsilon} but the optimizer has ${opt.eps}`);
  if (bad.length) throw new ConfigError(`training arguments contradict the optimizer passed to train():\n  ${bad.join('\n  ')}`, 'build the optimizer with optimizerFromArgs(model, args), or drop these fields from args');
}

/** HF Trainer's default optimizer for `args`: AdamW with decay and no-decay groups, plus optional name rules. */
export function optimizerFromArgs(model: Module, args: TrainingArgs, rules: { decay?: (name: string) => boolean; lrScale?: (name: string) => number } = {}): AdamW {
  const a = validate(args);
  return AdamW.forModel(model, { lr: a.learning_rate, weightDecay: a.weight_decay, betas: [a.adam_beta1, a.adam_beta2], eps: a.adam_epsilon, ...rules });
}

/**
 * Train `model` with `optimizer` on `data`. The model's trainable parameters (flag `trainable`) are
 * updated; frozen ones are never touched. Resolves when max_steps / num_train_epochs are done, early
 * stopping triggers, or `signal` aborts; throws {@link NonFiniteLossError} on NaN/inf.
 */
export async function train<M extends Module, D, B>(model: M, optimizer: AdamW, data: D, args: TrainingArgs, opts: TrainOptions<M, D, B>): Promise<TrainResult> {
  const a: ResolvedTrainingArgs = validate(args);
  checkOptimizer(args, optimizer);
  if (a.eval_strategy !== 'no' && !opts.evaluate) throw new ConfigError(`eval_strategy is '${a.eval_strategy}' but train() got no evaluate function`, 'pass evaluate, or set eval_strategy: \'no\'');
  const ck = a.output_dir || a.resume_from_checkpoint ? await import('./checkpoint.js') : undefined;
  const GAS = a.gradient_accumulation_steps;
  const perEpoch = opts.batches.count?.(data);
  if (perEpoch === 0) throw new ConfigError('the training data gives no batches', 'check the data file and its column mapping');
  let maxSteps = a.max_steps;
  if (maxSteps <= 0) {
    if (perEpoch === undefined) throw new ConfigError('num_train_epochs needs the number of batches per epoch', 'give the batch factory a count(), or set max_steps');
    maxSteps = Math.ceil(a.num_train_epochs * Math.ceil(perEpoch / GAS));
  }
  const warmup = warmupSteps(maxSteps, a.warmup_steps, a.warmup_ratio);
  const schedule = getSchedule(a.lr_scheduler_type, { warmupSteps: warmup, totalSteps: maxSteps });
  const every = { log: stepsOf(a.logging_steps, maxSteps), eval: stepsOf(a.eval_steps, maxSteps), save: stepsOf(a.save_steps, maxSteps) };
  const trajectory = {
    seed: a.seed, gradient_accumulation_steps: GAS, max_steps: maxSteps, lr_scheduler_type: a.lr_scheduler_type, warmup_steps: warmup,
    max_grad_norm: a.max_grad_norm, betas: optimizer.betas, eps: optimizer.eps, groups: optimizer.groups.map((g) => [g.name, g.lr, g.weightDecay, g.params.length]),
  };
  const sink: MetricsSink | undefined = typeof opts.metrics === 'string' ? jsonLinesFile(opts.metrics) : opts.metrics;
  const cb = opts.callbacks ?? {};
  const wantsBest = a.load_best_model_at_end || a.early_stopping_patience !== undefined || a.save_strategy === 'best';

  let state: TrainerState = {
    global_step: 0, epoch: 0, epoch_index: 0, batch_in_epoch: 0, rng_state: new Rng(a.seed).state(), max_steps: maxSteps,
    early_stopping_counter: 0, log_history: [], trajectory,
  };
  let lastCheckpoint: string | undefined;
  if (a.resume_from_checkpoint && ck) {
    const dir = a.resume_from_checkpoint === true ? ck.latestCheckpoint(a.output_dir!) : a.resume_from_checkpoint;
    if (!dir) throw new ConfigError(`resume_from_checkpoint is true but '${a.output_dir}' holds no checkpoint-* folder`, 'start without resume_from_checkpoint, or point it at a checkpoint folder');
    // Checked before anything is loaded, so a refused resume leaves the model as it was.
    const before = ck.readTrainerState(dir).trajectory;
    const now = trajectory as Record<string, unknown>;
    const diff = Object.keys(now).filter((k) => JSON.stringify(now[k]) !== JSON.stringify(before[k]));
    if (diff.length) throw new ConfigError(`cannot resume exactly from '${dir}': ${diff.map((k) => `${k} was ${JSON.stringify(before[k])}, now ${JSON.stringify(now[k])}`).join('; ')}`, 'resume with the arguments and optimizer of the original run, or start a new run from the saved weights');
    state = ck.resume(dir, model, optimizer);
    lastCheckpoint = dir;
  }
  const rng = Rng.fromState(state.rng_state);
  const progress = new Progress(maxSteps, state.global_step, opts.now ?? (() => performance.now()));
  const window = new WindowMean();
  const runLoss = new WindowMean();
  let bestStep = -1;
  let lastSaved = -1;
  let updates = 0;
  let stoppedBy: TrainResult['stoppedBy'] | undefined;
  const epochNow = (s = state) => (perEpoch ? s.epoch_index + s.batch_in_epoch / perEpoch : s.epoch_index);

  const emit = async (record: MetricsRecord) => {
    state.log_history.push(record);
    await sink?.(record);
    cb.onLog?.(record);
  };

  const save = async () => {
    if (!ck || a.save_strategy === 'no' || lastSaved === state.global_step) return;
    state.rng_state = rng.state();
    state.epoch = epochNow();
    if (bestStep === state.global_step) state.best_model_checkpoint = ck.checkpointDir(a.output_dir!, state.global_step);
    lastCheckpoint = await ck.saveCheckpoint(a.output_dir!, { model, optimizer, state, exportModel: opts.exportModel as ((m: Module, d: string) => Promise<void> | void) | undefined });
    lastSaved = state.global_step;
    if (a.save_total_limit !== undefined) ck.rotateCheckpoints(a.output_dir!, a.save_total_limit, state.best_model_checkpoint);
    cb.onSave?.(lastCheckpoint, state.global_step);
  };

  const evaluate = async () => {
    const raw = await opts.evaluate!(model, { step: state.global_step, epoch: epochNow() });
    const metrics: MetricsRecord = {};
    for (const [k, v] of Object.entries(raw)) metrics[k.startsWith('eval_') ? k : `eval_${k}`] = v;
    let isBest = false;
    if (wantsBest) {
      const key = bestMetricKey(a);
      const v = metrics[key];
      if (typeof v !== 'number') throw new ConfigError(`metric_for_best_model '${a.metric_for_best_model ?? 'loss'}' is not among the evaluation metrics (${Object.keys(metrics).join(', ')})`, 'return it from evaluate(), or set metric_for_best_model to one of these');
      const better = (x: number, ref: number) => (a.greater_is_better ? x > ref : x < ref);
      if (state.best_metric === undefined || better(v, state.best_metric)) {
        state.best_metric = v;
        bestStep = state.global_step;
        isBest = true;
      }
      const ref = state.early_stopping_best;
      if (ref === undefined || (better(v, ref) && Math.abs(v - ref) > a.early_stopping_threshold)) {
        state.early_stopping_best = v;
        state.early_stopping_counter = 0;
      } else state.early_stopping_counter += 1;
    }
    await emit({ ...metrics, epoch: epochNow(), step: state.global_step });
    cb.onEvaluate?.(metrics, { step: state.global_step, isBest });
    if (a.save_strategy === 'best' && isBest) await save();
    if (a.early_stopping_patience !== undefined && state.early_stopping_counter >= a.early_stopping_patience) stoppedBy ??= 'early_stopping';
  };

  const nonFinite = (what: string, value: number): never => {
    const keep = lastCheckpoint ? `the last good checkpoint is '${lastCheckpoint}'` : 'no checkpoint was saved before it';
    throw new NonFiniteLossError(`training stopped: the ${what} is ${value} at update ${state.global_step + 1} (epoch ${state.epoch_index}, batch ${state.batch_in_epoch}); nothing was updated with it, and ${keep}`, 'lower learning_rate, set max_grad_norm, or look for broken examples (empty sequences, every label masked) in that batch');
  };

  let acc: Map<string, tf.Tensor> | undefined;
  let nMicro = 0;
  let microLoss = 0;
  let tokens = 0;
  const dropAcc = () => {
    if (acc) tf.dispose([...acc.values()]);
    acc = undefined;
    nMicro = 0;
    microLoss = 0;
    tokens = 0;
  };

  const microStep = async (batch: B) => {
    const named = [...model.namedParameters()].filter(([, v]) => v.trainable);
    if (!named.length) throw new ConfigError('the model has no trainable parameters', 'check the finetuning mode: every parameter is frozen');
    const nameOf = new Map(named.map(([n, v]) => [v.name, n]));
    const { value, grads } = tf.variableGrads(() => opts.loss(model, batch, { training: true, rng }), named.map(([, v]) => v));
    const lossValue = (await value.data())[0];
    value.dispose();
    const got = Object.entries(grads).filter((e): e is [string, tf.Tensor] => e[1] !== null);
    if (!Number.isFinite(lossValue)) {
      tf.dispose(got.map(([, g]) => g));
      dropAcc();
      nonFinite('loss', lossValue);
    }
    acc ??= new Map();
    for (const [varName, g] of got) {
      const n = nameOf.get(varName)!;
      const old = acc.get(n);
      if (old) {
        acc.set(n, tf.add(old, g));
        tf.dispose([old, g]);
      } else acc.set(n, g);
    }
    nMicro += 1;
    microLoss += lossValue;
    tokens += opts.countTokens?.(batch) ?? 0;
  };

  const update = async (batchIndex: number) => {
    let grads = acc!;
    if (nMicro > 1) {
      const mean = new Map([...grads].map(([n, g]) => [n, tf.div(g, nMicro)]));
      tf.dispose([...grads.values()]);
      grads = mean;
    }
    acc = grads;
    const clipped = a.max_grad_norm > 0 ? clipGradNorm(grads, a.max_grad_norm) : { totalNorm: globalGradNorm(grads), grads };
    acc = clipped.grads;
    if (!Number.isFinite(clipped.totalNorm)) {
      dropAcc();
      nonFinite('gradient norm', clipped.totalNorm);
    }
    const lrFactor = schedule(state.global_step);
    optimizer.step(clipped.grads, lrFactor);
    const loss = microLoss / nMicro;
    const tokenCount = tokens;
    dropAcc();
    state.global_step += 1;
    state.batch_in_epoch = batchIndex;
    updates += 1;
    const step = state.global_step;
    window.add(loss);
    runLoss.add(loss);
    const lr = optimizer.groups.length ? optimizer.groups[0].lr * lrFactor : 0;
    const p = progress.update(tokenCount);
    cb.onStep?.({ step, maxSteps, epoch: epochNow(), loss, lr, gradNorm: clipped.totalNorm, ...p });
    if (step % every.log === 0 || (a.logging_first_step && step === 1)) {
      await emit({ loss: window.take(), grad_norm: clipped.totalNorm, learning_rate: lr, epoch: epochNow(), step });
    }
    if (a.eval_strategy === 'steps' && step % every.eval === 0) await evaluate();
    if (step >= maxSteps) stoppedBy ??= 'max_steps';
    // HF saves on the step grid and, with the 'steps' strategy, at the last step too.
    if (a.save_strategy === 'steps' && (step % every.save === 0 || stoppedBy === 'max_steps')) await save();
    if (opts.signal?.aborted) stoppedBy ??= 'signal';
  };

  const endEpoch = async () => {
    cb.onEpochEnd?.(state.epoch_index, state.global_step);
    state.epoch_index += 1;
    state.batch_in_epoch = 0;
    if (a.eval_strategy === 'epoch') await evaluate();
    if (a.save_strategy === 'epoch') await save();
  };

  if (opts.signal?.aborted) stoppedBy = 'signal';
  try {
    while (!stoppedBy && state.global_step < maxSteps) {
      const start = state.batch_in_epoch;
      let batchIndex = start;
      for await (const batch of opts.batches.iterate(data, state.epoch_index, start, epochRng(a.seed, state.epoch_index))) {
        await microStep(batch);
        batchIndex += 1;
        if (nMicro === GAS) await update(batchIndex);
        if (stoppedBy) break;
      }
      if (!stoppedBy && nMicro > 0) await update(batchIndex);
      if (batchIndex === 0) throw new ConfigError(`the training data gave no batches in epoch ${state.epoch_index}`, 'check the data file and its column mapping');
      const finished = !stoppedBy || (stoppedBy === 'max_steps' && perEpoch !== undefined && batchIndex >= perEpoch);
      if (finished) await endEpoch();
    }
    if (stoppedBy === 'signal' && updates > 0) await save();
  } finally {
    dropAcc();
  }
  if (a.load_best_model_at_end && state.best_model_checkpoint && ck) ck.loadWeights(state.best_model_checkpoint, model);
  const trainLoss = runLoss.take();
  await emit({ train_runtime: progress.elapsed(), train_loss: trainLoss, epoch: epochNow(), step: state.global_step });
  return {
    globalStep: state.global_step, epoch: epochNow(), stoppedBy: stoppedBy ?? 'max_steps', trainLoss,
    bestMetric: state.best_metric, bestCheckpoint: state.best_model_checkpoint, lastCheckpoint, logHistory: state.log_history,
  };
}
