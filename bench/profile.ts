/**
 * `node dist/bench/profile.js [--backend wasm|cpu] [--small] [--what prefill,decode,train]`: where the
 * time goes. Runs GPT-2-small-shaped prefill (128 tokens), one cached decode step and one training step
 * (batch 4 × 128: forward, backward, AdamW) under `tf.profile`, and prints the kernels by total time,
 * with the slowest shapes of each. Kernel times are wall-clock around each synchronous kernel call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeKernelsInfo } from '../src/backend/index.js';
import { disposeAll } from '../src/backend/memory.js';
import { Rng } from '../src/backend/rng.js';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/types.js';
import type { Module } from '../src/nn/module.js';
import { AdamW } from '../src/training/optim/adamw.js';
import { causalLmLoss } from './common.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const small = args.includes('--small');
const what = opt('what', 'prefill,decode,train').split(',');
const backend = await initBackend({ backend: opt('backend', 'wasm') as 'wasm' | 'cpu' });
const config = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: small ? 2 : 12, n_head: 12 };
const { model } = buildModel(config, 'causal-lm', 1234);
const lm = model as unknown as CausalLM & Module;
process.stdout.write(`backend ${backend}; native ${JSON.stringify(nativeKernelsInfo())}\n`);

interface Row { name: string; ms: number; calls: number; shapes: Map<string, { ms: number; calls: number }> }

async function profileOf(label: string, fn: () => Promise<void>): Promise<void> {
  await fn(); // warm-up
  const t0 = performance.now();
  const info = await tf.profile(fn);
  const wall = performance.now() - t0;
  const rows = new Map<string, Row>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    total += ms;
    const r = rows.get(k.name) ?? { name: k.name, ms: 0, calls: 0, shapes: new Map() };
    r.ms += ms;
    r.calls += 1;
    const key = `${k.inputShapes.map((s) => `[${s?.join('x')}]`).join(' ')}`;
    const s = r.shapes.get(key) ?? { ms: 0, calls: 0 };
    s.ms += ms;
    s.calls += 1;
    r.shapes.set(key, s);
    rows.set(k.name, r);
  }
  process.stdout.write(`\n== ${label}: wall ${wall.toFixed(0)} ms (profiled), kernels ${total.toFixed(0)} ms in ${info.kernels.length} calls\n`);
  for (const r of [...rows.values()].sort((a, b) => b.ms - a.ms).slice(0, 18)) {
    process.stdout.write(`${r.name.padEnd(22)} ${r.ms.toFixed(1).padStart(9)} ms ${String(r.calls).padStart(6)} calls ${((100 * r.ms) / total).toFixed(1).padStart(5)}%\n`);
    for (const [shape, s] of [...r.shapes].sort((a, b) => b[1].ms - a[1].ms).slice(0, 3)) {
      process.stdout.write(`    ${s.ms.toFixed(1).padStart(8)} ms ${String(s.calls).padStart(5)}× ${shape}\n`);
    }
  }
}

const prompt = [Array.from({ length: 128 }, (_, i) => (i * 7919) % 50257)];
if (what.includes('prefill')) {
  await profileOf('prefill 128', async () => {
    const out = lm.forward(prompt);
    await out.logits.data();
    disposeAll(out);
  });
}
if (what.includes('decode')) {
  const first = lm.forward(prompt);
  await profileOf('decode step (cache 128)', async () => {
    const out = lm.forward([[17]], { cache: first.cache });
    await out.logits.data();
    disposeAll(out);
  });
  disposeAll(first);
}
if (what.includes('train')) {
  const rng = new Rng(7);
  const batch = Array.from({ length: 4 }, () => Array.from({ length: 128 }, () => rng.int(config.vocab_size)));
  const opt = AdamW.forModel(lm, { lr: 1e-4, weightDecay: 0.01 });
  const params = [...lm.namedParameters()];
  const nameOf = new Map(params.map(([n, v]) => [v.name, n]));
  await profileOf('train step 4x128', async () => {
    const { value, grads } = tf.variableGrads(() => causalLmLoss(lm, batch), params.map(([, v]) => v));
    await value.data();
    const named = new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g]));
    opt.step(named);
    tf.dispose([value, ...Object.values(grads)]);
    await params[0][1].data();
  });
  opt.dispose();
}
lm.dispose();
