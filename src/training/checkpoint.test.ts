/**
 * Checkpoints: a run stopped by its signal and resumed ends bit-identical to an uninterrupted run (dropout
 * and gradient accumulation on, shuffled data crossing epochs); a write that fails half-way leaves the
 * previous checkpoint loadable; and a child process killed with SIGKILL while it checkpoints in a loop
 * never leaves a published checkpoint torn.
 *
 * Run with MAKEMOST_CKPT_CHILD=<dir>, this file is that child instead of a test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { Rng } from '../backend/rng.js';
import { CheckpointError } from '../errors.js';
import { Module } from '../nn/module.js';
import { latestCheckpoint, listCheckpoints, loadWeights, readTrainerState, resume, rotateCheckpoints, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { batchesOf, ceLoss, changed, containsTask, snapshot, TinyClassifier, type Batch } from './fixture.test.js';
import { AdamW } from './optim/adamw.js';
import type { TrainingArgs } from './args.js';
import { arrayBatches, optimizerFromArgs, train } from './trainer.js';

const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `makemost-${tag}-`));

/** A module with one large and one small parameter (so a save takes long enough to be interrupted). */
class Blob extends Module {
  constructor() {
    super();
    this.param('big', tf.zeros([512, 1024]));
    this.param('small', tf.zeros([7]));
  }
}

function blobState(step: number): TrainerState {
  return { global_step: step, epoch: 0, epoch_index: 0, batch_in_epoch: step, rng_state: new Rng(step).state(), max_steps: 1e9, early_stopping_counter: 0, log_history: [], trajectory: {} };
}

async function child(dir: string): Promise<void> {
  await initBackend({ backend: 'cpu' });
  const model = new Blob();
  const opt = AdamW.forModel(model, { lr: 0.1 });
  const ones = new Map([...model.namedParameters()].map(([n, v]) => [n, tf.onesLike(v)]));
  opt.step(ones);
  const last = latestCheckpoint(dir);
  let step = last ? readTrainerState(last).global_step : 0;
  for (;;) {
    step += 1;
    // Weights hold the step number, so a torn folder would show a mix of steps.
    for (const [, v] of model.namedParameters()) v.assign(tf.fill(v.shape, step));
    await saveCheckpoint(dir, { model, optimizer: opt, state: blobState(step) });
    rotateCheckpoints(dir, 2);
    process.stdout.write(`saved ${step}\n`);
  }
}

const CHILD_DIR = process.env.MAKEMOST_CKPT_CHILD;
if (CHILD_DIR) {
  await child(CHILD_DIR);
} else {
  const ARGS: TrainingArgs = {
    max_steps: 11, gradient_accumulation_steps: 2, learning_rate: 3e-3, weight_decay: 0.01, warmup_steps: 2,
    lr_scheduler_type: 'cosine', max_grad_norm: 0.5, seed: 9, logging_steps: 1,
  };
  // 7 micro-batches an epoch with accumulation 2: updates of 2, 2, 2 and 1 micro-batches, then a new shuffle.
  const data = () => batchesOf(containsTask(56, 8, 21), 8);

  test('stop by signal after k updates, checkpoint, resume: bit-identical weights to an uninterrupted run', async (t) => {
    await initBackend();
    const plain = new TinyClassifier(1, 0.1);
    const optA = await optimizerFromArgs(plain, ARGS);
    await train(plain, optA, data(), ARGS, { loss: ceLoss, batches: arrayBatches<Batch>({ shuffle: true }) });

    const dir = tmp('resume');

    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const stopper = new AbortController();
    const first = new TinyClassifier(1, 0.1);
    const optB = await optimizerFromArgs(first, { ...ARGS, output_dir: dir });
    const half = await train(first, optB, data(), { ...ARGS, output_dir: dir, save_steps: 100 }, {
      loss: ceLoss, batches: arrayBatches<Batch>({ shuffle: true }), signal: stopper.signal,
      callbacks: { onStep: ({ step }) => step === 6 && stopper.abort() },
    });
    assert.equal(half.stoppedBy, 'signal');
    assert.equal(half.globalStep, 6);
    assert.equal(half.lastCheckpoint, join(dir, 'checkpoint-6'));
    assert.equal(readTrainerState(half.lastCheckpoint!).epoch_index, 1, 'stopped mid-way through the second epoch');
    first.dispose();
    optB.dispose();

    // A different initialisation proves the weights come from the checkpoint.
    const second = new TinyClassifier(123, 0.1);
    const optC = await optimizerFromArgs(second, { ...ARGS, output_dir: dir });
    const rest = await train(second, optC, data(), { ...ARGS, output_dir: dir, save_steps: 100, resume_from_checkpoint: true }, { loss: ceLoss, batches: arrayBatches<Batch>({ shuffle: true }) });
    assert.equal(rest.globalStep, 11);
    assert.deepEqual(changed(snapshot(plain), snapshot(second)), [], 'every parameter bit-identical');
    const mA = optA.state().tensors;
    const mC = optC.state().tensors;
    assert.deepEqual([...mC.keys()], [...mA.keys()]);
    for (const [k, t] of mA) assert.deepEqual(Array.from(mC.get(k)!.dataSync()), Array.from(t.dataSync()), `moment ${k}`);

    // Resuming with other trajectory arguments is refused by name.
    const third = new TinyClassifier(1, 0.1);
    const optD = await optimizerFromArgs(third, ARGS);
    const untouched = snapshot(third);
    await assert.rejects(train(third, optD, data(), { ...ARGS, seed: 10, resume_from_checkpoint: join(dir, 'checkpoint-6') }, { loss: ceLoss, batches: arrayBatches<Batch>({ shuffle: true }) }), /cannot resume exactly.*seed was 9, now 10/);
    assert.deepEqual(changed(untouched, snapshot(third)), [], 'a refused resume loads nothing');
    for (const m of [plain, second, third]) m.dispose();
    for (const o of [optA, optC, optD]) o.dispose();
  });

  test('Rng.state() / Rng.fromState() continue a stream exactly', () => {
    const a = new Rng(77);
    for (let i = 0; i < 5; i++) a.nextUint32();
    const b = Rng.fromState(a.state());
    assert.deepEqual(Array.from({ length: 8 }, () => b.nextUint32()), Array.from({ length: 8 }, () => a.nextUint32()));
    assert.throws(() => Rng.fromState([0, 0, 0, 0]), /not all zero/);
    assert.throws(() => Rng.fromState([1, 2, 3]), /four unsigned 32-bit integers/);
  });

  test('a checkpoint write that fails half-way leaves no folder behind and the previous checkpoint loadable', async (t) => {
    await initBackend();
    const dir = tmp('torn');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const model = new TinyClassifier(2, 0.1);
    const args = { ...ARGS, output_dir: dir, save_steps: 2 };
    const opt = await optimizerFromArgs(model, args);
    const atSave = new Map<number, Map<string, Float32Array>>();
    let exports = 0;
    const err = await train(model, opt, data(), args, {
      loss: ceLoss, batches: arrayBatches<Batch>({ shuffle: true }),
      callbacks: { onSave: (_d, step) => atSave.set(step, snapshot(model)) },
      // The second checkpoint dies after its weights and moments are written.
      exportModel: () => {
        if (++exports === 2) throw new Error('disk full (simulated)');
      },
    }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof CheckpointError && /checkpoint-4.*disk full \(simulated\)/.test(err.message), String(err));
    assert.deepEqual(readdirSync(dir), ['checkpoint-2']);
    const fresh = new TinyClassifier(50, 0.1);
    const optF = await optimizerFromArgs(fresh, args);
    const state = resume(join(dir, 'checkpoint-2'), fresh, optF);
    assert.equal(state.global_step, 2);
    assert.deepEqual(changed(atSave.get(2)!, snapshot(fresh)), []);
    for (const m of [model, fresh]) m.dispose();
    for (const o of [opt, optF]) o.dispose();
  });

  test('kill -9 at random moments while checkpointing in a loop: every published checkpoint is whole', async (t) => {
    await initBackend();
    const dir = tmp('kill');
    let live: ChildProcess | undefined;
    // A failed assertion must not leave a child writing forever.
    t.after(() => {
      if (live && live.exitCode === null && live.signalCode === null) live.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });
    const rng = new Rng(2024);
    let tornWrites = 0;
    let lastStep = 0;
    for (let round = 0; round < 6; round++) {
      const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], { env: { ...process.env, MAKEMOST_CKPT_CHILD: dir }, stdio: ['ignore', 'pipe', 'inherit'] });
      live = proc;
      await new Promise<void>((resolve, reject) => {
        proc.on('error', reject);
        proc.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('saved')) resolve();
        });
        proc.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, rng.int(120)));
      const exited = new Promise((r) => proc.on('exit', r));
      proc.kill('SIGKILL');
      await exited;
      if (readdirSync(dir).some((e) => e.startsWith('.tmp-'))) tornWrites += 1;
      const published = listCheckpoints(dir);
      assert.ok(published.length >= 1 && published.length <= 3, `published: ${published.map((c) => c.step)}`);
      for (const { step, dir: ck } of published) {
        const state = readTrainerState(ck);
        assert.equal(state.global_step, step);
        const blob = new Blob();
        const opt = AdamW.forModel(blob, { lr: 0.1 });
        resume(ck, blob, opt);
        for (const [n, v] of blob.namedParameters()) assert.ok((v.dataSync() as Float32Array).every((x) => x === step), `${ck} ${n} holds step ${step} everywhere`);
        assert.equal(opt.stepOf('big'), 1);
        blob.dispose();
        opt.dispose();
      }
      assert.ok(published.at(-1)!.step >= lastStep, 'the newest checkpoint never goes back');
      lastStep = published.at(-1)!.step;
    }
    assert.ok(tornWrites >= 1, 'at least one kill landed in the middle of a write');
    assert.ok(existsSync(latestCheckpoint(dir)!));
    // The next save cleans up what the killed writer left.
    const blob = new Blob();
    const opt = AdamW.forModel(blob, { lr: 0.1 });
    await saveCheckpoint(dir, { model: blob, optimizer: opt, state: blobState(lastStep + 1) });
    assert.ok(readdirSync(dir).every((e) => e.startsWith('checkpoint-')), `left: ${readdirSync(dir)}`);
    loadWeights(join(dir, `checkpoint-${lastStep + 1}`), blob);
    blob.dispose();
    opt.dispose();
  });
}
