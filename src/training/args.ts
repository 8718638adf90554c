/**
 * Training options with HF `TrainingArguments` names and defaults (plus `early_stopping_patience` /
 * `early_stopping_threshold` from HF's `EarlyStoppingCallback`). `validate()` fills the defaults and
 * rejects unknown fields, wrong types and contradictions, naming the field (STYLE habit 5: no option is
 * silently ignored). Batch sizes are not here: batching belongs to the batch factory handed to `train`.
 */
import { ConfigError } from '../errors.js';
import { SCHEDULE_TYPES, type ScheduleType } from './schedules.js';

/** When evaluation or saving happens (HF `IntervalStrategy`; saving also has 'best'). */
export type IntervalStrategy = 'no' | 'steps' | 'epoch';

/** Every option, after defaults. */
export interface ResolvedTrainingArgs {
  /** Checkpoints go to `<output_dir>/checkpoint-<step>`; absent: nothing is saved. */
  output_dir?: string;
  /** Seeds dropout masks and the data order (default 42). */
  seed: number;
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  /** Clip gradients to this global norm; 0 disables (default 1). */
  max_grad_norm: number;
  /** Used when max_steps <= 0; may be fractional (default 3). */
  num_train_epochs: number;
  /** Total optimizer updates; overrides num_train_epochs when > 0 (default -1). */
  max_steps: number;
  lr_scheduler_type: ScheduleType;
  warmup_steps: number;
  warmup_ratio: number;
  gradient_accumulation_steps: number;
  /** Log every N updates (a fraction < 1: of the total); default 500. */
  logging_steps: number;
  logging_first_step: boolean;
  eval_strategy: IntervalStrategy;
  /** Default: logging_steps. */
  eval_steps: number;
  /** Default 'steps' with an output_dir, 'no' without. */
  save_strategy: IntervalStrategy | 'best';
  save_steps: number;
  /** Keep at most this many checkpoints (the best one always survives). */
  save_total_limit?: number;
  load_best_model_at_end: boolean;
  /** Key of the evaluation metrics, with or without `eval_` (default 'loss' when needed). */
  metric_for_best_model?: string;
  /** Default: false for metrics ending in 'loss', else true. */
  greater_is_better?: boolean;
  /** Stop after this many evaluations without improvement. */
  early_stopping_patience?: number;
  /** Minimum improvement that counts (default 0). */
  early_stopping_threshold: number;
  /** A checkpoint folder, or true for the latest one in output_dir. */
  resume_from_checkpoint?: string | boolean;
}

/** Options as a caller writes them: any subset. */
export type TrainingArgs = Partial<ResolvedTrainingArgs>;

const DEFAULTS = {
  seed: 42, learning_rate: 5e-5, weight_decay: 0, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8,
  max_grad_norm: 1, num_train_epochs: 3, max_steps: -1, lr_scheduler_type: 'linear' as ScheduleType,
  warmup_steps: 0, warmup_ratio: 0, gradient_accumulation_steps: 1, logging_steps: 500,
  logging_first_step: false, eval_strategy: 'no' as IntervalStrategy, save_steps: 500,
  load_best_model_at_end: false, early_stopping_threshold: 0,
};

type Kind = 'number' | 'int' | 'bool' | 'string' | 'strategy' | 'save' | 'schedule' | 'resume';
const FIELDS: Record<keyof ResolvedTrainingArgs, Kind> = {
  output_dir: 'string', seed: 'int', learning_rate: 'number', weight_decay: 'number', adam_beta1: 'number',
  adam_beta2: 'number', adam_epsilon: 'number', max_grad_norm: 'number', num_train_epochs: 'number',
  max_steps: 'int', lr_scheduler_type: 'schedule', warmup_steps: 'int', warmup_ratio: 'number',
  gradient_accumulation_steps: 'int', logging_steps: 'number', logging_first_step: 'bool',
  eval_strategy: 'strategy', eval_steps: 'number', save_strategy: 'save', save_steps: 'number',
  save_total_limit: 'int', load_best_model_at_end: 'bool', metric_for_best_model: 'string',
  greater_is_better: 'bool', early_stopping_patience: 'int', early_stopping_threshold: 'number',
  resume_from_checkpoint: 'resume',
};

// HF fields a user may reasonably pass that we do not implement, with what to do instead.
const NOT_HERE: Record<string, string> = {
  per_device_train_batch_size: 'batch size belongs to the batch factory passed to train() (the data options)',
  per_device_eval_batch_size: 'batch size belongs to the evaluation function passed to train()',
  evaluation_strategy: "HF renamed it: use 'eval_strategy'",
  fp16: 'training computes in float32 only', bf16: 'training computes in float32 only',
  optim: 'only AdamW is implemented; pass your optimizer object to train()',
  lr_scheduler_kwargs: 'the schedules take no extra arguments (cosine uses num_cycles 0.5)',
};

function fail(field: string, problem: string, hint?: string): never {
  throw new ConfigError(`training argument '${field}': ${problem}`, hint);
}

function checkType(field: string, kind: Kind, v: unknown): void {
  const ok = {
    number: () => typeof v === 'number' && Number.isFinite(v),
    int: () => Number.isInteger(v),
    bool: () => typeof v === 'boolean',
    string: () => typeof v === 'string' && v.length > 0,
    strategy: () => v === 'no' || v === 'steps' || v === 'epoch',
    save: () => v === 'no' || v === 'steps' || v === 'epoch' || v === 'best',
    schedule: () => (SCHEDULE_TYPES as readonly unknown[]).includes(v),
    resume: () => typeof v === 'boolean' || (typeof v === 'string' && v.length > 0),
  }[kind]();
  if (ok) return;
  const expected = {
    number: 'a finite number', int: 'an integer', bool: 'true or false', string: 'a non-empty string',
    strategy: "'no', 'steps' or 'epoch'", save: "'no', 'steps', 'epoch' or 'best'",
    schedule: SCHEDULE_TYPES.map((s) => `'${s}'`).join(', '), resume: 'a checkpoint folder or true',
  }[kind];
  fail(field, `expected ${expected}, found ${JSON.stringify(v)}`, kind === 'schedule' ? 'other HF schedulers (polynomial, cosine_with_restarts, …) are not implemented' : undefined);
}

/** The `eval_`-prefixed metric key HF compares (`metric_for_best_model` 'accuracy' → 'eval_accuracy'). */
export function bestMetricKey(args: ResolvedTrainingArgs): string {
  const m = args.metric_for_best_model ?? 'loss';
  return m.startsWith('eval_') ? m : `eval_${m}`;
}

/** Fill defaults; reject unknown fields, bad values and contradictions, naming each field. */
export function validate(args: TrainingArgs | Record<string, unknown>): ResolvedTrainingArgs {
  const raw = args as Record<string, unknown>;
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    if (k in NOT_HERE) fail(k, 'not supported here', NOT_HERE[k]);
    if (!(k in FIELDS)) fail(k, 'unknown option', `known options: ${Object.keys(FIELDS).join(', ')}`);
    checkType(k, FIELDS[k as keyof ResolvedTrainingArgs], v);
  }
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)) as TrainingArgs;
  const a = { ...DEFAULTS, ...given } as ResolvedTrainingArgs;
  a.save_strategy = given.save_strategy ?? (a.output_dir ? 'steps' : 'no');
  a.eval_steps = given.eval_steps ?? a.logging_steps;

  const atLeast = (k: keyof ResolvedTrainingArgs, min: number, strict = false) => {
    const v = a[k] as number | undefined;
    if (v !== undefined && (strict ? v <= min : v < min)) fail(k, `must be ${strict ? '>' : '>='} ${min}, found ${v}`);
  };
  atLeast('learning_rate', 0);
  atLeast('weight_decay', 0);
  atLeast('adam_epsilon', 0);
  atLeast('max_grad_norm', 0);
  atLeast('warmup_steps', 0);
  atLeast('early_stopping_threshold', 0);
  atLeast('gradient_accumulation_steps', 1);
  atLeast('logging_steps', 0, true);
  atLeast('eval_steps', 0, true);
  atLeast('save_steps', 0, true);
  atLeast('save_total_limit', 1);
  atLeast('early_stopping_patience', 1);
  for (const k of ['adam_beta1', 'adam_beta2'] as const) if (a[k] < 0 || a[k] >= 1) fail(k, `must lie in [0, 1), found ${a[k]}`);
  if (a.warmup_ratio < 0 || a.warmup_ratio > 1) fail('warmup_ratio', `must lie in [0, 1], found ${a.warmup_ratio}`);
  for (const k of ['logging_steps', 'eval_steps', 'save_steps'] as const) {
    if (a[k] > 1 && !Number.isInteger(a[k])) fail(k, `must be an integer, or a fraction of the total below 1; found ${a[k]}`);
  }
  if (a.max_steps <= 0 && !(a.num_train_epochs > 0)) fail('num_train_epochs', `must be > 0 when max_steps is not set, found ${a.num_train_epochs}`);

  // Contradictions.
  if (a.warmup_steps > 0 && a.warmup_ratio > 0) fail('warmup_ratio', `given together with warmup_steps=${a.warmup_steps}`, 'set one of warmup_steps or warmup_ratio');
  if (a.lr_scheduler_type === 'constant' && (a.warmup_steps > 0 || a.warmup_ratio > 0)) fail('lr_scheduler_type', "'constant' has no warmup, but a warmup was given", "use 'constant_with_warmup'");
  if (a.save_strategy !== 'no' && !a.output_dir) fail('save_strategy', `'${a.save_strategy}' needs output_dir`, "set output_dir, or save_strategy: 'no'");
  if (a.resume_from_checkpoint === true && !a.output_dir) fail('resume_from_checkpoint', 'true (latest checkpoint) needs output_dir');
  if (a.save_total_limit !== undefined && a.save_strategy === 'no') fail('save_total_limit', "set, but save_strategy is 'no'");
  const needsEval = a.load_best_model_at_end || a.early_stopping_patience !== undefined || a.save_strategy === 'best';
  if (needsEval && a.eval_strategy === 'no') {
    const why = a.load_best_model_at_end ? 'load_best_model_at_end' : a.early_stopping_patience !== undefined ? 'early_stopping_patience' : "save_strategy 'best'";
    fail('eval_strategy', `'no', but ${why} needs evaluations`, "set eval_strategy to 'steps' or 'epoch'");
  }
  if (a.load_best_model_at_end) {
    if (a.save_strategy === 'no') fail('load_best_model_at_end', "set, but save_strategy is 'no'", 'set output_dir and a save_strategy');
    if (a.save_strategy !== 'best' && a.save_strategy !== a.eval_strategy) fail('save_strategy', `'${a.save_strategy}' differs from eval_strategy '${a.eval_strategy}', which load_best_model_at_end requires (HF)`);
    if (a.save_strategy === 'steps' && Number.isInteger(a.save_steps) && Number.isInteger(a.eval_steps) && a.save_steps % a.eval_steps !== 0) {
      fail('save_steps', `${a.save_steps} is not a multiple of eval_steps ${a.eval_steps}, which load_best_model_at_end requires (HF)`);
    }
  }
  if ((a.metric_for_best_model !== undefined || a.greater_is_better !== undefined) && !needsEval) {
    fail(a.metric_for_best_model !== undefined ? 'metric_for_best_model' : 'greater_is_better', 'set, but nothing uses the best metric', "use it with load_best_model_at_end, early_stopping_patience or save_strategy 'best'");
  }
  if (given.early_stopping_threshold !== undefined && a.early_stopping_patience === undefined) fail('early_stopping_threshold', 'set without early_stopping_patience');
  if (given.eval_steps !== undefined && a.eval_strategy !== 'steps') fail('eval_steps', `set, but eval_strategy is '${a.eval_strategy}'`, "set eval_strategy: 'steps'");
  if (given.save_steps !== undefined && a.save_strategy !== 'steps') fail('save_steps', `set, but save_strategy is '${a.save_strategy}'`, "set save_strategy: 'steps'");
  if (needsEval && a.greater_is_better === undefined) a.greater_is_better = !bestMetricKey(a).endsWith('loss');
  return a;
}

/** Resolve a count that may be a fraction (< 1) of the total, as HF's logging/eval/save steps. */
export function stepsOf(value: number, totalSteps: number): number {
  return value < 1 ? Math.max(1, Math.ceil(value * totalSteps)) : value;
}
