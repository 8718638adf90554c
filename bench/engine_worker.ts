/**
 * One engine configuration of `bench/engine.ts`, run in its own process (a clean heap, and a wasm abort
 * cannot take the whole bench down): prefill of 128 tokens (median of 3), greedy decode with the cache
 * (median ms/token), one training step (forward, backward, AdamW; median of 2 after one warm-up) and a
 * large matmul (best of 10). Prints one JSON object on stdout.
 *
 *   node dist/bench/engine_worker.js --model DIR --backend wasm --native 1 --threads 2 [--tokens 16]
 *        [--train-batch 4] [--skip train,decode,...]
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeKernelsInfo } from '../src/backend/index.js';
import { disposeAll } from '../src/backend/memory.js';
import { Rng } from '../src/backend/rng.js';
import { AutoModelForCausalLM } from '../src/models/pretrained.js';
import type { CausalLM } from '../src/models/types.js';
import type { Module } from '../src/nn/module.js';
import { AdamW } from '../src/training/optim/adamw.js';
import { argmaxLast, causalLmLoss } from './common.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const skip = new Set(opt('skip', '').split(',').filter(Boolean));
const backend = await initBackend({ backend: opt('backend', 'wasm') as 'wasm' | 'cpu', native: opt('native', '1') === '1', threads: Number(opt('threads', '2')) });
const tokens = Number(opt('tokens', '16'));
const trainBatch = Number(opt('train-batch', '4'));
const out: Record<string, unknown> = { engine: `tfjs-${backend}`, native: nativeKernelsInfo() };
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function matmulGflops(m: number, k: number, n: number, reps = 10): number {
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 2);
  let best = Infinity;
  for (let r = 0; r < reps + 2; r++) {
    // wasm and cpu kernels run synchronously inside the op: the product is complete when it returns.
    const t = performance.now();
    const c = tf.matMul(a, b);
    const dt = performance.now() - t;
    c.dispose();
    if (r >= 2) best = Math.min(best, dt);
  }
  tf.dispose([a, b]);
  return (2 * m * k * n) / best / 1e6;
}

if (!skip.has('matmul')) {
  out.matmul_gflops_512x768x3072 = round(matmulGflops(512, 768, 3072));
  out.matmul_gflops_1024x1024x1024 = round(matmulGflops(1024, 1024, 1024, 5));
}

const model = (await AutoModelForCausalLM.fromPretrained(opt('model', ''))) as CausalLM & Module;
const vocab = model.dims().vocab;
const prompt = [Array.from({ length: 128 }, (_, i) => (i * 7919) % vocab)];

if (!skip.has('prefill')) {
  const runs: number[] = [];
  for (let r = 0; r < 4; r++) {
    const t = performance.now();
    const res = model.forward(prompt);
    await res.logits.data();
    disposeAll(res);
    runs.push(performance.now() - t);
  }
  out.prefill_128_ms = round(median(runs.slice(1)));
}

if (!skip.has('decode')) {
  let res = model.forward(prompt);
  let next = await argmaxLast(res.logits);
  const times: number[] = [];
  for (let i = 0; i < tokens + 2; i++) {
    const t = performance.now();
    const step = model.forward([[next]], { cache: res.cache });
    disposeAll(res);
    res = step;
    next = await argmaxLast(res.logits);
    times.push(performance.now() - t);
  }
  disposeAll(res);
  out.decode_ms_per_token = round(median(times.slice(2)), 2);
}

if (!skip.has('train') && trainBatch > 0) {
  const rng = new Rng(7);
  const ids = Array.from({ length: trainBatch }, () => Array.from({ length: 128 }, () => rng.int(vocab)));
  const optim = AdamW.forModel(model, { lr: 1e-4, weightDecay: 0.01 });
  const params = [...model.namedParameters()];
  const nameOf = new Map(params.map(([n, v]) => [v.name, n]));
  const steps: number[] = [];
  let loss = NaN;
  for (let s = 0; s < 3; s++) {
    const t = performance.now();
    const { value, grads } = tf.variableGrads(() => causalLmLoss(model, ids, rng), params.map(([, v]) => v));
    loss = (await value.data())[0];
    optim.step(new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g])));
    tf.dispose([value, ...Object.values(grads)]);
    await params[0][1].data();
    steps.push(performance.now() - t);
  }
  optim.dispose();
  out.train_step_ms = round(median(steps.slice(1)));
  out.train_loss = round(loss, 4);
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.length;
  if (heap) out.wasm_heap_mb = Math.round(heap / 2 ** 20);
}
model.dispose();
process.stdout.write(JSON.stringify(out) + '\n');
