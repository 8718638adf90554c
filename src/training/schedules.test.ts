/**
 * Schedules against values computed by hand from HF `optimization.py`'s formulas, and HF's warmup rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constantFactor, constantWithWarmupFactor, cosineFactor, getSchedule, linearFactor, warmupSteps } from './schedules.js';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('linear with warmup: 0 at step 0, rises to 1 at the end of warmup, falls to 0 at the total', () => {
  const L = { warmupSteps: 4, totalSteps: 10 };
  // step < 4: step/4; else (10 − step)/(10 − 4)
  const expected: [number, number][] = [[0, 0], [1, 0.25], [3, 0.75], [4, 1], [5, 5 / 6], [7, 0.5], [10, 0], [12, 0]];
  for (const [s, v] of expected) near(linearFactor(s, L), v, `linear(${s})`);
  near(getSchedule('linear', L)(7), 0.5, 'getSchedule linear');
  // No warmup: (total − step)/total.
  near(linearFactor(0, { warmupSteps: 0, totalSteps: 8 }), 1, 'linear no warmup at 0');
  near(linearFactor(2, { warmupSteps: 0, totalSteps: 8 }), 0.75, 'linear no warmup at 2');
});

test('cosine with warmup (num_cycles 0.5): half a cosine from 1 to 0 after warmup', () => {
  const L = { warmupSteps: 2, totalSteps: 10 };
  // progress = (step − 2)/8; factor = 0.5·(1 + cos(π·progress))
  near(cosineFactor(1, L), 0.5, 'cosine warmup');
  near(cosineFactor(2, L), 1, 'cosine at warmup end');
  near(cosineFactor(4, L), 0.5 * (1 + Math.SQRT1_2), 'cosine at progress 1/4');
  near(cosineFactor(6, L), 0.5, 'cosine at half');
  near(cosineFactor(8, L), 0.5 * (1 - Math.SQRT1_2), 'cosine at progress 3/4');
  near(cosineFactor(10, L), 0, 'cosine at end');
  near(getSchedule('cosine', L)(6), 0.5, 'getSchedule cosine');
});

test('constant and constant with warmup', () => {
  near(constantFactor(0), 1, 'constant');
  near(getSchedule('constant', { warmupSteps: 0, totalSteps: 5 })(3), 1, 'constant via getSchedule');
  near(constantWithWarmupFactor(0, 5), 0, 'cww 0');
  near(constantWithWarmupFactor(2, 5), 0.4, 'cww 2');
  near(constantWithWarmupFactor(5, 5), 1, 'cww 5');
  near(constantWithWarmupFactor(50, 5), 1, 'cww 50');
  near(constantWithWarmupFactor(0, 0), 1, 'cww without warmup');
});

test("warmup steps follow HF's get_warmup_steps", () => {
  assert.equal(warmupSteps(100, 7, 0), 7);
  assert.equal(warmupSteps(100, 0, 0.1), 10);
  assert.equal(warmupSteps(101, 0, 0.1), 11); // ceil
  assert.equal(warmupSteps(100, 0, 0), 0);
});
