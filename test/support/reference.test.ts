/**
 * Checks the PyTorch reference itself, independently of our TS models: its own --selftest (every piece
 * against naive loops and formulas), and a 1-layer GPT-2 whose weights make the logits computable by hand
 * (q = k = 0 so attention is a plain mean over visible positions, v and c_proj the identity, MLP zero).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runReference, runReferenceSelfTest } from './torch_ref.js';

type Named = Record<string, { shape: number[]; data: number[] }>;

/** Minimal safetensors writer (F32 only), so this test depends on nothing in src/. */
async function writeSafetensors(path: string, tensors: Named): Promise<void> {
  const header: Record<string, unknown> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(new Float32Array(t.data).buffer);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeFile(path, Buffer.concat([len, Buffer.from(json), ...chunks]));
}

const D = 4;
const EPS = 1e-5;
const E = [
  [1, -1, 1, -1],
  [1, 1, -1, -1],
  [2, 0, 0, -2],
];
const WPE = [0, 1, 2, 3].map((t) => [0.1 * t, -0.2 * t, 0.3 * t, 0]);

const zeros = (...shape: number[]) => ({ shape, data: new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0) });
const ones = (n: number) => ({ shape: [n], data: new Array<number>(n).fill(1) });

/** The hand-computable GPT-2; `wpe` zero or WPE; `drop` removes a key to test strict loading. */
function handWeights(withWpe: boolean, drop?: string): Named {
  const cAttn = zeros(D, 3 * D); // [in, out]: q | k | v; only v (columns 2D..3D) is the identity
  const cProj = zeros(D, D);
  for (let i = 0; i < D; i++) {
    cAttn.data[i * 3 * D + 2 * D + i] = 1;
    cProj.data[i * D + i] = 1;
  }
  const w: Named = {
    'transformer.wte.weight': { shape: [3, D], data: E.flat() },
    'transformer.wpe.weight': withWpe ? { shape: [4, D], data: WPE.flat() } : zeros(4, D),
    'transformer.h.0.ln_1.weight': ones(D),
    'transformer.h.0.ln_1.bias': zeros(D),
    'transformer.h.0.attn.c_attn.weight': cAttn,
    'transformer.h.0.attn.c_attn.bias': zeros(3 * D),
    'transformer.h.0.attn.c_proj.weight': cProj,
    'transformer.h.0.attn.c_proj.bias': zeros(D),
    'transformer.h.0.ln_2.weight': ones(D),
    'transformer.h.0.ln_2.bias': zeros(D),
    'transformer.h.0.mlp.c_fc.weight': zeros(D, 4 * D),
    'transformer.h.0.mlp.c_fc.bias': zeros(4 * D),
    'transformer.h.0.mlp.c_proj.weight': zeros(4 * D, D),
    'transformer.h.0.mlp.c_proj.bias': zeros(D),
    'transformer.ln_f.weight': ones(D),
    'transformer.ln_f.bias': zeros(D),
  };
  if (drop) delete w[drop];
  return w;
}

async function handModel(withWpe: boolean, drop?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'makemost-hand-gpt2-'));
  const config = {
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 3, n_positions: 4, n_embd: D,
    n_layer: 1, n_head: 1, layer_norm_epsilon: EPS, activation_function: 'gelu_new',
  };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeSafetensors(join(dir, 'model.safetensors'), handWeights(withWpe, drop));
  return dir;
}

function layerNorm(x: number[]): number[] {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
  return x.map((v) => (v - mean) / Math.sqrt(variance + EPS));
}

/** By hand: h_t = E[x_t] + WPE[t]; h'_t = h_t + mean of LN(h_s) over visible s <= t; logits = LN(h'_t) . E. */
function handLogits(ids: number[], mask: number[]): number[][] {
  const h = ids.map((x, t) => E[x]!.map((v, i) => v + WPE[t]![i]!));
  const a = h.map(layerNorm);
  return h.map((ht, t) => {
    const seen = a.filter((_, s) => s <= t && mask[s] === 1);
    const mean = ht.map((_, i) => seen.reduce((acc, r) => acc + r[i]!, 0) / seen.length);
    const z = layerNorm(ht.map((v, i) => v + mean[i]!));
    return E.map((e) => e.reduce((acc, v, i) => acc + v * z[i]!, 0));
  });
}

function assertClose(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

const row = (data: Float32Array, v: number, index: number) => Array.from(data.subarray(index * v, (index + 1) * v));

test('reference --selftest: every piece matches naive loops and formulas', async () => {
  const report = await runReferenceSelfTest();
  const m = /selftest: (\d+)\/(\d+) checks passed/.exec(report);
  assert.ok(m, report);
  assert.equal(m[1], m[2], report);
  assert.ok(Number(m[2]) >= 20, report);
});

test('hand GPT-2: one token gives logits 4k, 0, 4k with k = c / sqrt(c^2 + eps), c = 1 + 1/sqrt(1 + eps)', async () => {
  const dir = await handModel(false);
  try {
    const out = await runReference(dir, { input_ids: [[0]] });
    // h = e0 (mean 0, variance 1); attention returns LN(e0) = e0 / sqrt(1 + eps), so h' = c * e0.
    const c = 1 + 1 / Math.sqrt(1 + EPS);
    const k = c / Math.sqrt(c * c + EPS);
    assert.deepEqual(out.logits?.shape, [1, 1, 3]);
    assertClose(out.logits!.data, [4 * k, 0, 4 * k], 1e-5, 'logits');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('hand GPT-2: positions, causal + padding mask, and cached steps follow the hand formula', async () => {
  const dir = await handModel(true);
  try {
    const ids = [[0, 1, 2], [2, 2, 1]];
    const mask = [[1, 0, 1], [1, 1, 1]];
    const out = await runReference(dir, { input_ids: ids, attention_mask: mask });
    for (let b = 0; b < 2; b++) {
      const want = handLogits(ids[b]!, mask[b]!);
      for (let t = 0; t < 3; t++) {
        if (mask[b]![t]) assertClose(row(out.logits!.data, 3, b * 3 + t), want[t]!, 1e-5, `b${b} t${t}`);
      }
    }
    // Prefix of two, then the third token with the mask carried over from the prefix.
    const cached = await runReference(dir, {
      input_ids: ids.map((r) => r.slice(0, 2)),
      attention_mask: mask.map((r) => r.slice(0, 2)),
      steps: [{ input_ids: ids.map((r) => [r[2]!]) }],
    });
    const step = cached.steps![0]!.logits!;
    assert.deepEqual(step.shape, [2, 1, 3]);
    for (let b = 0; b < 2; b++) assertClose(row(step.data, 3, b), handLogits(ids[b]!, mask[b]!)[2]!, 1e-5, `step b${b}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('hand GPT-2: d/d ln_f.bias of sum log p(label) is sum_t E^T (onehot - softmax); tied head shares wte grad', async () => {
  const dir = await handModel(true);
  try {
    const labels = [[2, -100, 1]];
    const out = await runReference(
      dir,
      { input_ids: [[0, 1, 2]], labels, grad_of: ['transformer.ln_f.bias', 'lm_head.weight', 'transformer.wte.weight'] },
      { grad: true },
    );
    const want = [0, 0, 0, 0];
    let objective = 0;
    labels[0]!.forEach((y, t) => {
      if (y === -100) return;
      const z = row(out.logits!.data, 3, t);
      const top = Math.max(...z);
      const sum = z.reduce((a, v) => a + Math.exp(v - top), 0);
      const p = z.map((v) => Math.exp(v - top) / sum);
      objective += z[y]! - top - Math.log(sum);
      for (let i = 0; i < D; i++) for (let j = 0; j < 3; j++) want[i]! += E[j]![i]! * ((j === y ? 1 : 0) - p[j]!);
    });
    assertClose(out.grads!['transformer.ln_f.bias']!.data, want, 1e-5, 'grad ln_f.bias');
    assert.ok(Math.abs(out.objective! - objective) < 1e-5, `objective ${out.objective} vs ${objective}`);
    assert.deepEqual(out.grads!['lm_head.weight']!.data, out.grads!['transformer.wte.weight']!.data);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('strict loading: a missing tensor is refused and named', async () => {
  const dir = await handModel(false, 'transformer.h.0.mlp.c_fc.bias');
  try {
    await assert.rejects(runReference(dir, { input_ids: [[0]] }), /missing: transformer\.h\.0\.mlp\.c_fc\.bias/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
