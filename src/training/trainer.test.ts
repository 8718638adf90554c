/**
 * The trainer end to end on a tiny BERT classifier: it learns a task it cannot solve at init; frozen
 * parameters stay bit-identical; NaN stops the run with the last good checkpoint intact and nothing
 * leaked; evaluation drives early stopping, best-checkpoint keeping and load_best_model_at_end; metrics
 * are JSON lines; bad arguments are rejected by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { ConfigError } from '../errors.js';
import { validate } from './args.js';
import { listCheckpoints, loadWeights } from './checkpoint.js';
import { accuracy, batchesOf, ceLoss, changed, containsTask, snapshot, TinyClassifier, type Batch } from './fixture.test.js';
import { memorySink, parseJsonLines } from './metrics.js';
import { AdamW } from './optim/adamw.js';
import { arrayBatches, NonFiniteLossError, optimizerFromArgs, train, type StepInfo } from './trainer.js';

const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `makemost-${tag}-`));

test('a tiny BERT classifier learns "does token 5 occur" to >= 95% accuracy in seconds (full finetuning)', async () => {
  await initBackend();
  const model = new TinyClassifier(1);
  const trainSet = batchesOf(containsTask(512, 8, 10), 32);
  const heldOut = batchesOf(containsTask(256, 8, 99), 64);
  const atInit = accuracy(model, heldOut);
  assert.ok(atInit < 0.7, `chance at init (${atInit})`);
  const args = { learning_rate: 3e-3, weight_decay: 0.01, num_train_epochs: 3, warmup_ratio: 0.1, seed: 5, logging_steps: 8 };
  const opt = await optimizerFromArgs(model, args);
  const t0 = Date.now();
  const sink = memorySink();
  const steps: StepInfo[] = [];
  const res = await train(model, opt, trainSet, args, {
    loss: ceLoss, batches: arrayBatches<Batch>({ shuffle: true }), metrics: sink,
    countTokens: (b) => b.ids.length * b.ids[0].length, callbacks: { onStep: (s) => steps.push(s) },
  });
  const seconds = (Date.now() - t0) / 1000;
  const acc = accuracy(model, heldOut);
  assert.equal(res.globalStep, 3 * 16);
  assert.equal(res.stoppedBy, 'max_steps');
  assert.ok(acc >= 0.95, `held-out accuracy ${acc} after ${seconds}s`);
  assert.ok(seconds < 60, `took ${seconds}s`);
  const losses = sink.records.filter((r) => typeof r.loss === 'number').map((r) => r.loss as number);
  assert.equal(losses.length, 6);
  assert.ok(losses.at(-1)! < losses[0] / 3, `loss fell: ${losses[0]} → ${losses.at(-1)}`);
  assert.ok(typeof sink.records.at(-1)!.train_runtime === 'number');
  // Progress for the CLI's bar: steps in order, tokens/s, an ETA that reaches 0, the schedule's lr.
  assert.deepEqual(steps.map((s) => s.step), Array.from({ length: 48 }, (_, i) => i + 1));
  assert.ok(steps.every((s) => s.maxSteps === 48 && s.tokensPerSecond! > 0 && s.eta! >= 0));
  assert.equal(steps.at(-1)!.eta, 0);
  assert.equal(steps[0].lr, 0, 'linear warmup starts at 0 (HF LambdaLR)');
  assert.ok(Math.abs(steps[5].lr - 3e-3) < 1e-12, 'warmup of ceil(0.1·48) = 5 steps ends at the base rate');
  assert.ok(Math.abs(steps[5].epoch - 6 / 16) < 1e-12);
  opt.dispose();
  model.dispose();
});

test('frozen parameters (trainable = false) are bit-identical after training; all trainable ones moved', async () => {
  await initBackend();
  const model = new TinyClassifier(2, 0.1);
  const frozen = (n: string) => n.startsWith('bert.embeddings.') || n.startsWith('bert.encoder.layer.0.');
  for (const [n, v] of model.namedParameters()) v.trainable = !frozen(n);
  const before = snapshot(model);
  const args = { learning_rate: 1e-2, weight_decay: 0.1, max_steps: 6, gradient_accumulation_steps: 2, seed: 1 };
  const opt = await optimizerFromArgs(model, args);
  await train(model, opt, batchesOf(containsTask(64, 8, 3), 8), args, { loss: ceLoss, batches: arrayBatches<Batch>() });
  const moved = new Set(changed(before, snapshot(model)));
  const names = [...before.keys()];
  assert.deepEqual(names.filter((n) => frozen(n) && moved.has(n)), [], 'no frozen parameter changed');
  assert.deepEqual(names.filter((n) => !frozen(n) && !moved.has(n)), [], 'every trainable parameter changed');
  assert.ok(names.some(frozen));
  opt.dispose();
  model.dispose();
});

test('NaN loss stops with a clear message, before any update; the previous checkpoint stays loadable; no leaks', async (t) => {
  await initBackend();
  const dir = tmp('nan');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = new TinyClassifier(3, 0.1);
  const batches = batchesOf(containsTask(80, 8, 4), 8);
  batches[7] = { ...batches[7], poison: true }; // micro-batch 8 = second half of update 4
  const args = { output_dir: dir, save_steps: 1, max_steps: 5, gradient_accumulation_steps: 2, learning_rate: 1e-3, seed: 2 };
  const opt = await optimizerFromArgs(model, args);
  const baseline = tf.memory().numTensors;
  const counts: number[] = [];
  const saved = new Map<number, Map<string, Float32Array>>();
  const err = await train(model, opt, batches, args, {
    loss: ceLoss, batches: arrayBatches<Batch>(),
    callbacks: { onStep: () => counts.push(tf.memory().numTensors), onSave: (_d, step) => saved.set(step, snapshot(model)) },
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof NonFiniteLossError, `got ${String(err)}`);
  assert.match(err.message, /loss is NaN at update 4/);
  assert.match(err.message, /checkpoint-3/);
  assert.match(err.message, /HINT: lower learning_rate/);
  assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [1, 2, 3]);
  assert.deepEqual(changed(saved.get(3)!, snapshot(model)), [], 'the NaN update was not applied');
  const fresh = new TinyClassifier(77);
  loadWeights(join(dir, 'checkpoint-3'), fresh);
  assert.deepEqual(changed(saved.get(3)!, snapshot(fresh)), [], 'checkpoint-3 loads with the step-3 weights');
  fresh.dispose();
  assert.equal(new Set(counts.slice(1)).size, 1, `tensor count flat across steps: ${counts}`);
  opt.dispose();
  assert.equal(tf.memory().numTensors, baseline, 'nothing leaked after the error');
  model.dispose();
});

test('evaluation: early stopping, best checkpoint survives save_total_limit, load_best_model_at_end, JSON lines', async (t) => {
  await initBackend();
  const dir = tmp('best');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = new TinyClassifier(4);
  const script = [1.0, 0.8, 0.85, 0.9, 0.95, 0.99, 1.2]; // best at the 2nd evaluation (step 4)
  let calls = 0;
  const atEval = new Map<number, Map<string, Float32Array>>();
  const metricsPath = join(dir, 'metrics.jsonl');
  const args = {
    output_dir: dir, max_steps: 40, eval_strategy: 'steps' as const, eval_steps: 2, save_steps: 2, save_total_limit: 1,
    load_best_model_at_end: true, early_stopping_patience: 3, learning_rate: 1e-3, logging_steps: 2, seed: 3,
  };
  const opt = await optimizerFromArgs(model, args);
  const res = await train(model, opt, batchesOf(containsTask(64, 8, 5), 8), args, {
    loss: ceLoss, batches: arrayBatches<Batch>(), metrics: metricsPath,
    evaluate: (m, { step }) => {
      atEval.set(step, snapshot(m));
      return { loss: script[calls++], accuracy: 0.5 };
    },
  });
  assert.equal(res.stoppedBy, 'early_stopping');
  assert.equal(res.globalStep, 10, 'evaluations at 2, 4 (best), 6, 8, 10: three without improvement stop at 10');
  assert.equal(res.bestMetric, 0.8);
  assert.equal(res.bestCheckpoint, join(dir, 'checkpoint-4'));
  assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [4, 10], 'limit 1 keeps the best and the newest');
  assert.deepEqual(changed(atEval.get(4)!, snapshot(model)), [], 'the best weights were loaded at the end');
  const records = parseJsonLines(readFileSync(metricsPath, 'utf8'));
  assert.deepEqual(records.filter((r) => 'eval_loss' in r).map((r) => [r.step, r.eval_loss, r.eval_accuracy]), [[2, 1, 0.5], [4, 0.8, 0.5], [6, 0.85, 0.5], [8, 0.9, 0.5], [10, 0.95, 0.5]]);
  assert.deepEqual(records.filter((r) => 'loss' in r).map((r) => r.step), [2, 4, 6, 8, 10]);
  opt.dispose();
  model.dispose();
});

test('validate() rejects unknown and contradictory fields by name; train() rejects args that contradict the optimizer', async () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ learning_rat: 1e-3 }, /'learning_rat': unknown option/],
    [{ per_device_train_batch_size: 8 }, /'per_device_train_batch_size'.*\n.*batch factory/],
    [{ lr_scheduler_type: 'polynomial' }, /'lr_scheduler_type': expected/],
    [{ warmup_steps: 10, warmup_ratio: 0.1 }, /'warmup_ratio': given together with warmup_steps/],
    [{ save_strategy: 'steps' }, /'save_strategy': 'steps' needs output_dir/],
    [{ load_best_model_at_end: true, output_dir: '/x' }, /'eval_strategy': 'no', but load_best_model_at_end/],
    [{ output_dir: '/x', eval_strategy: 'steps', eval_steps: 3, save_steps: 5, load_best_model_at_end: true }, /'save_steps': 5 is not a multiple of eval_steps 3/],
    [{ eval_steps: 5 }, /'eval_steps': set, but eval_strategy is 'no'/],
    [{ metric_for_best_model: 'accuracy' }, /'metric_for_best_model': set, but nothing uses/],
    [{ gradient_accumulation_steps: 0 }, /'gradient_accumulation_steps': must be >= 1/],
    [{ adam_beta2: 1 }, /'adam_beta2': must lie in \[0, 1\)/],
    [{ lr_scheduler_type: 'constant', warmup_steps: 3 }, /'constant' has no warmup/],
  ];
  for (const [args, re] of bad) assert.throws(() => validate(args), (e: Error) => e instanceof ConfigError && re.test(e.message), JSON.stringify(args));
  const ok = validate({ output_dir: '/x', eval_strategy: 'epoch', load_best_model_at_end: true, save_strategy: 'epoch', metric_for_best_model: 'accuracy' });
  assert.equal(ok.greater_is_better, true);
  assert.equal(ok.learning_rate, 5e-5);
  assert.equal(validate({}).save_strategy, 'no');
  assert.equal(validate({ output_dir: '/x' }).save_strategy, 'steps');

  await initBackend();
  const model = new TinyClassifier(5);
  const opt = AdamW.forModel(model, { lr: 1e-3 });
  await assert.rejects(train(model, opt, [], { learning_rate: 1e-4 }, { loss: ceLoss, batches: arrayBatches<Batch>() }), /learning_rate=0.0001 but the groups have lr 0.001/);
  await assert.rejects(train(model, opt, [], { max_steps: 3 }, { loss: ceLoss, batches: arrayBatches<Batch>() }), /gives no batches/);
  await assert.rejects(train(model, opt, [], { eval_strategy: 'steps', max_steps: 3 }, { loss: ceLoss, batches: arrayBatches<Batch>() }), /no evaluate function/);
  assert.equal(existsSync('/x'), false);
  model.dispose();
});
