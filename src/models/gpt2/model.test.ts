/**
 * GPT-2 behaviour that needs no reference implementation: cached decoding equals full recomputation,
 * left padding equals single runs, gradients match finite differences, no leaks, clear errors.
 * (Logit parity with PyTorch lives in test/conformance.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { loadAddon } from '../../backend/native/addon.js';
import { ShapeError } from '../../errors.js';
import { parseGPT2Config } from './config.js';
import { GPT2LMHeadModel } from './model.js';

await initBackend();
const cfg = parseGPT2Config({ model_type: 'gpt2', vocab_size: 61, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, initializer_range: 0.2 });

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('names are the HF checkpoint keys, lm_head tied (not listed)', () => {
  const m = new GPT2LMHeadModel(cfg, 1);
  const names = [...m.namedParameters()].map(([n]) => n);
  assert.equal(names[0], 'transformer.wte.weight');
  assert.ok(names.includes('transformer.h.1.attn.c_attn.weight'));
  assert.ok(names.includes('transformer.h.1.mlp.c_proj.bias'));
  assert.ok(!names.some((n) => n.startsWith('lm_head')));
  assert.deepEqual(m.stateDict().get('transformer.h.0.attn.c_attn.weight')!.shape, [32, 96]); // Conv1D [in, out]
  assert.equal(names.length, 2 + 2 + 12 * 2);
  m.dispose();
});

test('decoding token by token with the cache equals the full forward', () => {
  const m = new GPT2LMHeadModel(cfg, 2);
  const ids = [[3, 14, 15, 9, 26, 5, 35], [8, 9, 7, 9, 3, 2, 38]];
  const full = m.forward(ids);
  let out = m.forward(ids.map((r) => r.slice(0, 3)));
  let worst = maxDiff(out.logits, full.logits.slice([0, 0, 0], [2, 3, 61]));
  for (let t = 3; t < 7; t++) {
    const next = m.forward(ids.map((r) => [r[t]]), { cache: out.cache });
    worst = Math.max(worst, maxDiff(next.logits, full.logits.slice([0, t, 0], [2, 1, 61])));
    disposeAll(out);
    out = next;
  }
  assert.ok(worst < 1e-5, `max |Δ| = ${worst}`);
  assert.equal(out.cache[0].key.shape[2], 7);
  disposeAll([out, full]);
  m.dispose();
});

test('a left-padded batch equals each sequence run alone, also when continuing with the cache', () => {
  const m = new GPT2LMHeadModel(cfg, 3);
  const a = [5, 6, 7, 8, 9];
  const b = [10, 11, 12];
  const padded = [a, [0, 0, ...b]];
  const mask = [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]];
  const pos = [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]; // cumsum(mask) - 1, pads clamped (HF generate's rule)
  const batch = m.forward(padded, { attentionMask: mask, positionIds: pos });
  const alone = m.forward([b]);
  const d1 = maxDiff(batch.logits.slice([1, 2, 0], [1, 3, 61]), alone.logits);
  // one more token for both rows, through the cache
  const step = m.forward([[20], [21]], { cache: batch.cache, attentionMask: [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], positionIds: [[5], [3]] });
  const aloneStep = m.forward([[21]], { cache: alone.cache });
  const d2 = maxDiff(step.logits.slice([1, 0, 0], [1, 1, 61]), aloneStep.logits);
  const aFull = m.forward([[...a, 20]]);
  const d3 = maxDiff(step.logits.slice([0, 0, 0], [1, 1, 61]), aFull.logits.slice([0, 5, 0], [1, 1, 61]));
  assert.ok(Math.max(d1, d2, d3) < 1e-5, `Δ ${d1} ${d2} ${d3}`);
  disposeAll([batch, alone, step, aloneStep, aFull]);
  m.dispose();
});

/** Sum of log p(target) over positions: the quantity training and HSO differentiate. */
function logLik(logits: tf.Tensor, targets: number[]): tf.Scalar {
  return tf.tidy(() => {
    const lp = tf.logSoftmax(logits.reshape([targets.length, -1]));
    return tf.sum(tf.mul(lp, tf.oneHot(tf.tensor1d(targets, "int32"), lp.shape[1] as number))) as tf.Scalar;
  });
}

test('gradients w.r.t. parameters and the cache match central finite differences', () => {
  const m = new GPT2LMHeadModel(cfg, 4);
  const ids = [[4, 9, 2, 33, 17]];
  const targets = [9, 2, 33, 17, 1];
  const params = m.stateDict();
  const checks: [string, number][] = [['transformer.wte.weight', 4 * 32 + 3], ['transformer.h.0.attn.c_attn.weight', 70], ['transformer.h.1.mlp.c_fc.bias', 5], ['transformer.ln_f.weight', 7], ['transformer.wpe.weight', 2 * 32 + 1]];
  const f = () => logLik(m.forward(ids).logits, targets);
  const vars = checks.map(([n]) => params.get(n)!);
  const { grads } = tf.variableGrads(f, vars);
  const h = 1e-2;
  for (const [name, idx] of checks) {
    const v = params.get(name)!;
    const orig = v.dataSync().slice();
    const at = (delta: number) => {
      const copy = orig.slice();
      copy[idx] += delta;
      tf.tidy(() => v.assign(tf.tensor(copy, v.shape)));
      return tf.tidy(() => f().dataSync()[0]);
    };
    const fd = (at(h) - at(-h)) / (2 * h);
    tf.tidy(() => v.assign(tf.tensor(orig, v.shape)));
    const g = grads[v.name].dataSync()[idx];
    assert.ok(Math.abs(fd - g) < 2e-3 * Math.max(1, Math.abs(g)), `${name}[${idx}]: autodiff ${g}, finite difference ${fd}`);
  }
  disposeAll(grads);

  // The cache as a differentiable input (HSO's premise): d loss / d past keys and values.
  const prefix = m.forward([[7, 8, 9]]);
  const key0 = prefix.cache[0].key;
  const val1 = prefix.cache[1].value;
  const loss = (k: tf.Tensor, v: tf.Tensor) => logLik(m.forward(ids, { cache: [{ key: k, value: prefix.cache[0].value }, { key: prefix.cache[1].key, value: v }] }).logits, targets);
  const [gk, gv] = tf.grads(loss)([key0, val1]);
  for (const [which, t, g, idx] of [['key0', key0, gk, 11], ['value1', val1, gv, 40]] as const) {
    const base = t.dataSync().slice();
    const at = (delta: number) => tf.tidy(() => {
      const copy = base.slice();
      copy[idx] += delta;
      const moved = tf.tensor(copy, t.shape);
      return (which === 'key0' ? loss(moved, val1) : loss(key0, moved)).dataSync()[0];
    });
    const fd = (at(h) - at(-h)) / (2 * h);
    const ad = g.dataSync()[idx];
    assert.ok(Math.abs(fd - ad) < 2e-3 * Math.max(1, Math.abs(ad)), `cache ${which}[${idx}]: autodiff ${ad}, finite difference ${fd}`);
  }
  disposeAll([gk, gv, prefix]);
  m.dispose();
});

test('repeated forwards leak no tensors', () => {
  const m = new GPT2LMHeadModel(cfg, 5);
  const once = () => disposeAll(m.forward([[1, 2, 3]], { returnHidden: true }));
  once();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) once();
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});

test('bad input: ids outside the vocabulary, too long, mask of the wrong shape, ragged rows', () => {
  const m = new GPT2LMHeadModel(cfg, 6);
  const before = tf.memory().numTensors;
  assert.throws(() => m.forward([[1, 61]]), (e: Error) => e instanceof ShapeError && /id 61.*\[0, 61\)/.test(e.message));
  assert.throws(() => m.forward([[1, -1]]), ShapeError);
  assert.throws(() => m.forward([Array.from({ length: 33 }, () => 1)]), (e: Error) => e instanceof ShapeError && /n_positions=32/.test(e.message));
  assert.throws(() => m.forward([[1, 2]], { attentionMask: [[1, 1, 1]] }), (e: Error) => /expected \[1, 2\]/.test(e.message));
  assert.throws(() => m.forward([[1, 2], [3]]), /rectangular/);
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});

// Without the addon both paths are the composed ops (covered above).
const nativeSkip = loadAddon().addon ? false : 'native addon not available';

test('the one-kernel block (inference, native kernels, wasm and cpu) equals the separate kernels bit for bit, and is not used under a gradient tape or with LoRA', { skip: nativeSkip }, async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await initBackend({ backend, native: true }); // the kernels under test, whatever MAKEMOST_NATIVE says
    const m = new GPT2LMHeadModel({ ...cfg, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, 5);
    const ids = [[3, 14, 15, 9, 26], [0, 0, 7, 9, 3]];
    const mask = [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]];
    const kernelsOf = async (f: () => tf.TensorContainer) => (await tf.profile(f)).kernels.map((k) => k.name); // one entry per call
    for (const attentionMask of [undefined, mask]) {
      // training: true with every dropout rate 0 runs the separate ops (the block is inference only).
      const separate = m.forward(ids, { attentionMask, training: true });
      const fused = m.forward(ids, { attentionMask });
      assert.deepEqual(fused.logits.dataSync(), separate.logits.dataSync());
      assert.deepEqual(fused.cache[1].key.dataSync(), separate.cache[1].key.dataSync());
      const next = [[4], [5]];
      const mask2 = attentionMask && attentionMask.map((r) => [...r, 1]);
      const step = m.forward(next, { cache: fused.cache, attentionMask: mask2 });
      const stepSeparate = m.forward(next, { cache: separate.cache, attentionMask: mask2, training: true });
      assert.deepEqual(step.logits.dataSync(), stepSeparate.logits.dataSync());
      assert.deepEqual(step.cache[0].value.dataSync(), stepSeparate.cache[0].value.dataSync());
      disposeAll([separate, fused, step, stepSeparate]);
    }
    assert.ok((await kernelsOf(() => m.forward(ids).logits)).includes('MakemostPreLNBlock'));
    const underTape = await kernelsOf(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(m.forward(ids).logits, x)))(tf.ones([2, 5, 61])));
    assert.ok(!underTape.includes('MakemostPreLNBlock') && underTape.includes('MakemostAttentionPacked'));
    m.transformer.h.items[0].mlp.c_fc.delta = (x) => tf.zeros([x.shape[0], 128]);
    const withLora = await kernelsOf(() => m.forward(ids).logits);
    assert.equal(withLora.filter((k) => k === 'MakemostPreLNBlock').length, 1, 'the block with a LoRA delta runs as separate ops');
    m.dispose();
  }
});
