/**
 * Learning-rate schedules as pure functions of the optimizer step (HF `optimization.py`:
 * `get_constant_schedule`, `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup`,
 * `get_cosine_schedule_with_warmup`). Each returns the multiplier of the base learning rate.
 *
 * `step` counts the updates already made, as the `last_epoch` of torch's `LambdaLR`: the first update
 * uses factor(0), the second factor(1), … So with warmup the first update has learning rate 0, as in HF.
 */
import { ConfigError } from '../errors.js';

/** The schedule names we implement (HF `SchedulerType` values). */
export const SCHEDULE_TYPES = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;
/** One of {@link SCHEDULE_TYPES}. */
export type ScheduleType = (typeof SCHEDULE_TYPES)[number];

/** Multiplier of the base learning rate for the update after `step` completed updates. */
export type Schedule = (step: number) => number;

/** Lengths a schedule needs. */
export interface ScheduleLengths {
  /** Updates with a rising learning rate. */
  warmupSteps: number;
  /** Total number of updates (the decay reaches 0 here). */
  totalSteps: number;
}

function warmup(step: number, warmupSteps: number): number {
  return step / Math.max(1, warmupSteps);
}

/** Constant factor 1 (HF `get_constant_schedule`). */
export function constantFactor(_step: number): number {
  return 1;
}

/** Linear rise over the warmup, then 1 (HF `get_constant_schedule_with_warmup`). */
export function constantWithWarmupFactor(step: number, warmupSteps: number): number {
  return step < warmupSteps ? warmup(step, warmupSteps) : 1;
}

/** Linear rise, then linear decay to 0 at totalSteps (HF `get_linear_schedule_with_warmup`). */
export function linearFactor(step: number, { warmupSteps, totalSteps }: ScheduleLengths): number {
  if (step < warmupSteps) return warmup(step, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** Linear rise, then half a cosine wave down to 0 (HF `get_cosine_schedule_with_warmup`, num_cycles 0.5). */
export function cosineFactor(step: number, { warmupSteps, totalSteps }: ScheduleLengths, numCycles = 0.5): number {
  if (step < warmupSteps) return warmup(step, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

/** The schedule of a given type (HF `get_scheduler`). */
export function getSchedule(type: ScheduleType, lengths: ScheduleLengths): Schedule {
  switch (type) {
    case 'constant':
      return constantFactor;
    case 'constant_with_warmup':
      return (s) => constantWithWarmupFactor(s, lengths.warmupSteps);
    case 'linear':
      return (s) => linearFactor(s, lengths);
    case 'cosine':
      return (s) => cosineFactor(s, lengths);
    default:
      throw new ConfigError(`unknown lr_scheduler_type '${String(type)}'`, `use one of: ${SCHEDULE_TYPES.join(', ')}`);
  }
}

/** Warmup length as HF's `get_warmup_steps`: warmup_steps if > 0, else ceil(total · warmup_ratio). */
export function warmupSteps(totalSteps: number, warmup_steps: number, warmup_ratio: number): number {
  return warmup_steps > 0 ? warmup_steps : Math.ceil(totalSteps * warmup_ratio);
}
