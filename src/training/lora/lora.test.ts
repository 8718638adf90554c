/**
 * LoRA adapters on Linear (Llama, BERT) and Conv1D (GPT-2): zero B leaves the model bit-identical; the
 * wrapped layer computes x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (checked with plain loops); merged equals unmerged within
 * 1e-5; only adapter tensors train and receive gradients; dropout follows the forward's `training`;
 * unloading restores the model; bad targets fail clearly; nothing leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError, UnsupportedError } from '../../errors.js';
import { Conv1D, Linear } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { buildModel, type Task } from '../../models/registry.js';
import { applyLora, isLoraParameter, loraState, mergeAdapters, mergeLora, unloadLora, unmergeAdapters } from './apply.js';

await initBackend();

const GPT2 = { model_type: 'gpt2', vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.2 };
const LLAMA = { model_type: 'llama', vocab_size: 50, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, initializer_range: 0.2 };
const BERT = { model_type: 'bert', vocab_size: 50, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 24, max_position_embeddings: 16, initializer_range: 0.2 };

const CASES: { name: string; config: Record<string, unknown>; task: Task; targets?: string[]; kind: 'Conv1D' | 'Linear' }[] = [
  { name: 'gpt2 c_attn (Conv1D)', config: GPT2, task: 'causal-lm', kind: 'Conv1D' },
  { name: 'gpt2 c_attn+c_proj+c_fc (Conv1D)', config: GPT2, task: 'causal-lm', targets: ['c_attn', 'c_proj', 'c_fc'], kind: 'Conv1D' },
  { name: 'llama q_proj+v_proj (Linear)', config: LLAMA, task: 'causal-lm', kind: 'Linear' },
  { name: 'llama all projections (Linear)', config: LLAMA, task: 'causal-lm', targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], kind: 'Linear' },
  { name: 'bert query+value (Linear)', config: BERT, task: 'masked-lm', kind: 'Linear' },
];

type Fwd = Module & { forward(ids: number[][], o?: { attentionMask?: number[][]; training?: boolean; rng?: Rng }): { logits?: tf.Tensor } };
const IDS = [[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]];
const MASK = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]];

function logits(m: Fwd, o: { training?: boolean; rng?: Rng } = {}): Float32Array {
  const out = m.forward(IDS, { attentionMask: MASK, ...o });
  const v = out.logits!.dataSync().slice() as Float32Array;
  disposeAll(out);
  return v;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i])), 0);
}

/** Give every adapter tensor N(0, 0.3) values, as after some training. */
function randomizeAdapters(m: Module, seed: number): void {
  const rng = new Rng(seed);
  for (const [n, v] of m.namedParameters()) {
    if (!isLoraParameter(n)) continue;
    const t = tf.tensor(rng.normalArray(v.size, 0.3), v.shape);
    v.assign(t);
    t.dispose();
  }
}

for (const c of CASES) {
  test(`lora ${c.name}: B = 0 is exact, merged = unmerged, only adapters train`, () => {
    const m = buildModel(c.config, c.task, 2).model as Fwd;
    const base = logits(m);
    const baseNames = [...m.namedParameters()].map(([n]) => n);
    const state = applyLora(m, { r: 4, alpha: 8, targetModules: c.targets, seed: 1 });
    assert.ok([...state.layers.values()].every((l) => l.base.constructor.name === c.kind));
    assert.equal(state.config.fanInFanOut, c.kind === 'Conv1D');
    assert.deepEqual(logits(m), base, 'lora_B = 0 leaves the output bit-identical');
    const trainable = [...m.namedParameters()].filter(([, v]) => v.trainable).map(([n]) => n);
    const want = [...state.layers.keys()].flatMap((p) => [`${p}.lora_A.weight`, `${p}.lora_B.weight`]);
    assert.deepEqual(trainable.sort(), want.sort());
    // lora_A starts as PyTorch's kaiming_uniform_(a=√5): U(−1/√in, 1/√in), not all zero.
    for (const l of state.layers.values()) {
      const a = l.lora_A.weight.dataSync();
      const bound = 1 / Math.sqrt(l.base.inFeatures);
      assert.ok(a.every((x) => Math.abs(x) <= bound) && a.some((x) => x !== 0));
      assert.ok(l.lora_B.weight.dataSync().every((x) => x === 0));
    }

    randomizeAdapters(m, 5);
    const unmerged = logits(m);
    assert.ok(maxDiff(unmerged, base) > 1e-3, 'the adapters change the output');
    mergeAdapters(m);
    assert.ok(maxDiff(logits(m), unmerged) <= 1e-5, 'merged (adapters kept) = unmerged');
    unmergeAdapters(m);
    assert.ok(maxDiff(logits(m), unmerged) <= 1e-5, 'unmerged again');
    const before = tf.memory().numTensors;
    mergeLora(m);
    assert.ok(tf.memory().numTensors < before, 'adapter tensors are freed');
    assert.ok(maxDiff(logits(m), unmerged) <= 1e-5, `merged into the base weights: ${maxDiff(logits(m), unmerged)}`);
    assert.deepEqual([...m.namedParameters()].map(([n]) => n), baseNames, 'a plain HF model again');
    assert.ok([...m.namedParameters()].every(([, v]) => v.trainable), 'trainable flags restored');
    assert.equal(loraState(m), undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(m, 'forward'), false, 'forward restored');
    m.dispose();
  });
}

test('gradients reach only lora_A and lora_B', () => {
  for (const [cfg, task] of [[GPT2, 'causal-lm'], [LLAMA, 'causal-lm'], [BERT, 'masked-lm']] as const) {
    const m = buildModel(cfg, task, 2).model as Fwd;
    applyLora(m, { r: 2, alpha: 4 });
    randomizeAdapters(m, 1);
    const vars = [...m.namedParameters()];
    const names = new Map(vars.map(([n, v]) => [v.name, n]));
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.square(m.forward(IDS, { attentionMask: MASK }).logits!)) as tf.Scalar), vars.map(([, v]) => v));
    const got = Object.entries(grads).filter(([, g]) => g !== null);
    assert.deepEqual(got.map(([k]) => names.get(k)!).sort(), vars.map(([n]) => n).filter(isLoraParameter).sort(), String(cfg.model_type));
    assert.ok(got.every(([, g]) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0), 'non-zero gradients');
    tf.dispose([value, ...got.map(([, g]) => g)]);
    m.dispose();
  }
});

class Holder extends Module {
  constructor(readonly proj: Linear | Conv1D) {
    super();
    this.child('proj', proj);
  }
}

test('a wrapped layer computes x·Wᵀ + b + (alpha/r)·(x·Aᵀ)·Bᵀ (Conv1D: x·W + b + …)', () => {
  const rng = new Rng(4);
  for (const layer of [new Linear(5, 3, { rng, std: 0.5 }), new Conv1D(5, 3, { rng, std: 0.5 })]) {
    const bias = tf.tensor1d([0.1, -0.2, 0.3]);
    layer.bias!.assign(bias);
    const h = new Holder(layer);
    const state = applyLora(h, { r: 2, alpha: 3, targetModules: ['proj'] });
    randomizeAdapters(h, 9);
    const l = state.layers.get('proj')!;
    const x = [[1, -2, 0.5, 3, -1], [0.2, 0.4, -0.6, 0.8, 1]];
    const y = layer.forward(tf.tensor2d(x)).arraySync() as number[][];
    const W = layer.weight.arraySync() as number[][];
    const A = l.lora_A.weight.arraySync() as number[][];
    const B = l.lora_B.weight.arraySync() as number[][];
    const conv = layer instanceof Conv1D;
    x.forEach((row, n) => {
      const xa = A.map((a) => a.reduce((s, v, i) => s + v * row[i], 0));
      for (let o = 0; o < 3; o++) {
        let want = [0.1, -0.2, 0.3][o] + row.reduce((s, v, i) => s + v * (conv ? W[i][o] : W[o][i]), 0);
        want += 1.5 * B[o].reduce((s, v, k) => s + v * xa[k], 0);
        assert.ok(Math.abs(y[n][o] - want) < 1e-5, `${layer.constructor.name} y[${n}][${o}] = ${y[n][o]}, expected ${want}`);
      }
    });
    bias.dispose();
    h.dispose();
  }
});

test('adapter dropout follows the forward call: off in eval, seeded in training, reset afterwards', () => {
  const m = buildModel(LLAMA, 'causal-lm', 2).model as Fwd;
  applyLora(m, { r: 4, alpha: 8, dropout: 0.5 });
  randomizeAdapters(m, 2);
  const ev = logits(m);
  assert.deepEqual(logits(m), ev);
  const t1 = logits(m, { training: true, rng: new Rng(7) });
  assert.deepEqual(logits(m, { training: true, rng: new Rng(7) }), t1, 'same stream, same masks');
  assert.ok(maxDiff(t1, ev) > 1e-4, 'dropout acts while training (the model itself has no dropout here)');
  assert.deepEqual(logits(m), ev, 'no flag outlives the call');
  assert.throws(() => m.forward([[999]], { training: true, rng: new Rng(1) }), /outside the vocabulary/);
  assert.deepEqual(logits(m), ev, 'reset after an error too');
  m.dispose();
});

test('unloadLora restores the base model bit for bit, merged or not', () => {
  const m = buildModel(GPT2, 'causal-lm', 3).model as Fwd;
  const base = logits(m);
  applyLora(m, { r: 2, alpha: 2 });
  randomizeAdapters(m, 3);
  mergeAdapters(m);
  unloadLora(m);
  assert.ok(maxDiff(logits(m), base) <= 1e-6, 'W + Δ − Δ: equal up to rounding');
  const again = logits(m);
  applyLora(m, { r: 2, alpha: 2 });
  randomizeAdapters(m, 3);
  unloadLora(m);
  assert.deepEqual(logits(m), again, 'never merged: bit-identical');
  m.dispose();
});

test('bad targets and double application fail with the names to use', () => {
  const m = buildModel(GPT2, 'causal-lm', 3).model as Fwd;
  assert.throws(() => applyLora(m, { targetModules: ['q_proj'] }), (e: unknown) => e instanceof ConfigError && /match no layer/.test(e.message) && /c_attn/.test(e.message));
  assert.throws(() => applyLora(m, { targetModules: ['attn'] }), UnsupportedError);
  assert.throws(() => applyLora(m, { targetModules: '(' }), /regular expression/);
  assert.throws(() => applyLora(m, { r: 0 }), /positive integer/);
  assert.equal(loraState(m), undefined, 'failed calls leave no adapters');
  const s = applyLora(m, { targetModules: 'transformer\\.h\\.1\\.attn\\.c_attn' });
  assert.deepEqual([...s.layers.keys()], ['transformer.h.1.attn.c_attn'], 'a string is a full-match regex, as in PEFT');
  assert.throws(() => applyLora(m), /already has LoRA adapters/);
  m.dispose();
});

test('forward with adapters leaks no tensors', () => {
  const m = buildModel(GPT2, 'causal-lm', 3).model as Fwd;
  applyLora(m, { r: 2, dropout: 0.1 });
  const rng = new Rng(1);
  logits(m, { training: true, rng });
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) logits(m, { training: true, rng });
  mergeAdapters(m);
  unmergeAdapters(m);
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});
