/**
 * AdamW against a hand-computed case and against torch.optim.AdamW (Debian's PyTorch) on the same
 * numbers; clipping against torch.nn.utils.clip_grad_norm_; decay groups against HF Trainer's rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { adamwHostMoments, initBackend, nativeKernelsInfo } from '../../backend/index.js';
import { Rng } from '../../backend/rng.js';
import { buildModel } from '../../models/registry.js';
import { mapSource } from '../../nn/module.js';
import { AdamW, decayParameterNames, decaysByName, type ParamGroup } from './adamw.js';
import { clipGradNorm } from './clip.js';

const PYTHON = '/usr/bin/python3';

function torch(script: string, input: unknown): unknown {
  return JSON.parse(execFileSync(PYTHON, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 26 }));
}

function vars(spec: Record<string, number[]>): Map<string, tf.Variable> {
  return new Map(Object.entries(spec).map(([n, d]) => [n, tf.variable(tf.tensor1d(d))]));
}

function grads(spec: Record<string, number[]>): Map<string, tf.Tensor> {
  return new Map(Object.entries(spec).map(([n, d]) => [n, tf.tensor1d(d)]));
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const tol = atol + rtol * Math.abs(expected[i]);
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

test('one and two AdamW steps match the hand-computed closed form', async () => {
  await initBackend();
  const ps = vars({ w: [1.0, -2.0], b: [1.0] });
  const groups: ParamGroup[] = [
    { name: 'decay', params: ['w'], lr: 0.1, weightDecay: 0.01 },
    { name: 'no_decay', params: ['b'], lr: 0.1, weightDecay: 0 },
  ];
  const opt = new AdamW(ps, groups);
  const g1 = grads({ w: [0.5, 0.1], b: [0.5] });
  opt.step(g1);
  // Step 1: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g/(|g| + ε).
  //   w0: 1·0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002;  w1: −2·0.999 − 0.1·0.1/(0.1 + 1e-8) = −2.09799999
  //   b:  1 − 0.1·0.5/(0.5 + 1e-8) = 0.900000002 (no decay)
  close(ps.get('w')!.dataSync(), [0.899000002, -2.09799999], 1e-7, 0, 'w after 1');
  close(ps.get('b')!.dataSync(), [0.900000002], 1e-7, 0, 'b after 1');
  const g2 = grads({ w: [-0.25, 0.1] });
  opt.step(g2);
  // Step 2, w0: m = 0.9·0.05 + 0.1·(−0.25) = 0.02; v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225;
  //   bc1 = 0.19, bc2 = 1 − 0.999² = 0.001999; p = 0.899000002·0.999 − (0.1/0.19)·0.02/(√v/√bc2 + 1e-8)
  //   = 0.8714672987. b had no gradient: untouched, no decay, step count stays 1.
  close(ps.get('w')!.dataSync().slice(0, 1), [0.8714672987], 1e-7, 0, 'w after 2');
  close(ps.get('b')!.dataSync(), [0.900000002], 1e-7, 0, 'b after 2');
  assert.equal(opt.stepOf('w'), 2);
  assert.equal(opt.stepOf('b'), 1);
  tf.dispose([...g1.values(), ...g2.values()]);
  opt.dispose();
  for (const v of ps.values()) v.dispose();
});

const ADAMW_PY = `
import json, sys, torch
inp = json.load(sys.stdin)
params = {n: torch.tensor(v, dtype=torch.float32).requires_grad_() for n, v in inp['params'].items()}
groups = []
for g in inp['groups']:
    for n in g['params']:
        groups.append({'params': [params[n]], 'lr': g['lr'], 'weight_decay': g['weight_decay'], 'base': g['lr'] * inp['lr_scale'].get(n, 1.0)})
opt = torch.optim.AdamW(groups, betas=tuple(inp['betas']), eps=inp['eps'])
out = []
for step in inp['steps']:
    for n, p in params.items():
        g = step['grads'].get(n)
        p.grad = None if g is None else torch.tensor(g, dtype=torch.float32)
    for grp in opt.param_groups:
        grp['lr'] = grp['base'] * step['factor']
    opt.step()
    out.append({n: p.detach().tolist() for n, p in params.items()})
print(json.dumps(out))
`;

test('AdamW equals torch.optim.AdamW over several steps, groups, decay on/off, LR factors and scales', async () => {
  await initBackend();
  const rng = new Rng(3);
  const rand = (n: number, s = 1) => Array.from(rng.normalArray(n, s));
  const init = { a: rand(6), b: rand(4), c: rand(5, 0.1), d: rand(3) };
  const groups: ParamGroup[] = [
    { name: 'decay', params: ['a', 'b'], lr: 1e-2, weightDecay: 0.1 },
    { name: 'no_decay', params: ['c'], lr: 1e-2, weightDecay: 0 },
    { name: 'head', params: ['d'], lr: 3e-3, weightDecay: 0.05 },
  ];
  const lrScale: Record<string, number> = { a: 0.81, b: 0.9 };
  const betas: [number, number] = [0.8, 0.95];
  const eps = 1e-6;
  const steps = [0.5, 1, 0.75, 0.25, 1].map((factor, i) => {
    const g: Record<string, number[]> = { a: rand(6), b: rand(4, 1e-3), c: rand(5, 10) };
    if (i !== 2) g.d = rand(3); // d has no gradient in step 3: torch skips it entirely
    return { factor, grads: g };
  });
  const ref = torch(ADAMW_PY, {
    params: init, lr_scale: lrScale, betas, eps, steps,
    groups: groups.map((g) => ({ params: g.params, lr: g.lr, weight_decay: g.weightDecay })),
  }) as Record<string, number[]>[];

  const ps = vars(init);
  const opt = new AdamW(ps, groups, { betas, eps, lrScale: (n) => lrScale[n] ?? 1 });
  const before = tf.memory().numTensors;
  steps.forEach((s, i) => {
    const g = grads(s.grads);
    opt.step(g, s.factor);
    tf.dispose([...g.values()]);
    for (const [n, v] of ps) close(v.dataSync(), ref[i][n], 2e-6, 1e-7, `step ${i + 1} ${n}`);
    // Moments for every parameter appear at its first step (as tensors, or in host memory with the
    // native kernels), then the count stays flat.
    const momentTensors = adamwHostMoments() ? 0 : 2 * ps.size;
    if (i > 0) assert.equal(tf.memory().numTensors, before + momentTensors, 'no tensors leak across steps');
  });
  assert.equal(opt.stepOf('d'), 4);
  assert.equal(opt.stepOf('a'), 5);
  opt.dispose();
  assert.equal(tf.memory().numTensors, before);
  for (const v of ps.values()) v.dispose();
});

test('frozen parameters (trainable = false) stay bit-identical; state saves and restores exactly', async () => {
  await initBackend();
  const ps = vars({ x: [0.1, 0.2, 0.3], y: [1, 2] });
  ps.get('y')!.trainable = false;
  const opt = new AdamW(ps, [{ name: 'all', params: ['x', 'y'], lr: 0.1, weightDecay: 0.5 }]);
  const g = grads({ x: [1, -1, 0.5], y: [3, 3] });
  opt.step(g);
  assert.deepEqual(Array.from(ps.get('y')!.dataSync()), [1, 2].map(Math.fround));
  assert.equal(opt.stepOf('y'), 0);
  // Restoring the saved state into a fresh optimizer continues bit for bit.
  const saved = opt.state();
  const copy = new Map([...saved.tensors].map(([k, t]) => [k, tf.tensor(t.dataSync().slice(), t.shape)]));
  const ps2 = new Map([...ps].map(([n, v]) => [n, tf.variable(v.clone(), v.trainable)]));
  const opt2 = new AdamW(ps2, [{ name: 'all', params: ['x', 'y'], lr: 0.1, weightDecay: 0.5 }]);
  opt2.loadState(saved.steps, mapSource(copy));
  opt.step(g);
  opt2.step(g);
  assert.deepEqual(Array.from(ps2.get('x')!.dataSync()), Array.from(ps.get('x')!.dataSync()));
  assert.throws(() => opt2.loadState({ nope: 1 }, mapSource(copy)), /'nope' is not a parameter/);
  tf.dispose([...g.values(), ...copy.values()]);
  opt.dispose();
  opt2.dispose();
  for (const v of [...ps.values(), ...ps2.values()]) v.dispose();
});

const CLIP_PY = `
import json, sys, torch
inp = json.load(sys.stdin)
out = []
for case in inp['cases']:
    ps = []
    for g in inp['grads']:
        p = torch.zeros(len(g), requires_grad=True)
        p.grad = torch.tensor(g, dtype=torch.float32)
        ps.append(p)
    norm_type = float('inf') if case['norm_type'] == 'inf' else case['norm_type']
    total = torch.nn.utils.clip_grad_norm_(ps, case['max_norm'], norm_type)
    out.append({'total': total.item(), 'grads': [p.grad.tolist() for p in ps]})
print(json.dumps(out))
`;

test('clipGradNorm equals torch.nn.utils.clip_grad_norm_ (2-norm, inf-norm, 1-norm; clipping and not)', async () => {
  await initBackend();
  const rng = new Rng(11);
  const gs = [Array.from(rng.normalArray(7, 2)), Array.from(rng.normalArray(3, 0.5)), Array.from(rng.normalArray(12, 1))];
  const cases = [
    { max_norm: 1, norm_type: 2 }, { max_norm: 1000, norm_type: 2 }, { max_norm: 0.5, norm_type: 'inf' as const },
    { max_norm: 2, norm_type: 1 }, { max_norm: 0, norm_type: 2 },
  ];
  const ref = torch(CLIP_PY, { grads: gs, cases }) as { total: number; grads: number[][] }[];
  const before = tf.memory().numTensors;
  cases.forEach((c, i) => {
    const input = new Map(gs.map((g, j) => [`g${j}`, tf.tensor1d(g)]));
    const { totalNorm, grads: out } = clipGradNorm(input, c.max_norm, c.norm_type === 'inf' ? Infinity : c.norm_type);
    close([totalNorm], [ref[i].total], 1e-6, 0, `case ${i} norm`);
    gs.forEach((_, j) => close(out.get(`g${j}`)!.dataSync(), ref[i].grads[j], 1e-6, 1e-9, `case ${i} grad ${j}`));
    tf.dispose([...out.values()]);
    assert.equal(tf.memory().numTensors, before, `case ${i}: inputs were consumed, nothing leaked`);
  });
});

test("decay groups follow HF Trainer's get_decay_parameter_names on GPT-2, BERT and Llama names", async () => {
  await initBackend();
  const cases: [Record<string, unknown>, 'causal-lm' | 'masked-lm', string[], string[]][] = [
    [{ model_type: 'gpt2', vocab_size: 20, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 }, 'causal-lm',
      ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.0.mlp.c_proj.weight'],
      ['transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias', 'transformer.h.0.attn.c_attn.bias', 'transformer.ln_f.weight', 'transformer.ln_f.bias']],
    [{ model_type: 'bert', vocab_size: 20, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, max_position_embeddings: 8 }, 'masked-lm',
      ['bert.embeddings.word_embeddings.weight', 'bert.encoder.layer.0.attention.self.query.weight', 'cls.predictions.transform.dense.weight'],
      ['bert.embeddings.LayerNorm.weight', 'bert.encoder.layer.0.output.LayerNorm.weight', 'bert.encoder.layer.0.attention.self.query.bias', 'cls.predictions.bias', 'cls.predictions.transform.LayerNorm.weight']],
    [{ model_type: 'llama', vocab_size: 20, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 }, 'causal-lm',
      ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'lm_head.weight'],
      ['model.layers.0.input_layernorm.weight', 'model.layers.0.post_attention_layernorm.weight', 'model.norm.weight']],
  ];
  for (const [config, task, decayed, notDecayed] of cases) {
    const { model } = buildModel(config, task, 0);
    const names = new Set([...model.namedParameters()].map(([n]) => n));
    const decay = decayParameterNames(model);
    for (const n of decayed) {
      assert.ok(names.has(n), `${n} exists`);
      assert.ok(decay.has(n), `${n} is decayed`);
      assert.ok(decaysByName(n), `${n} is decayed by name`);
    }
    for (const n of notDecayed) {
      assert.ok(names.has(n), `${n} exists`);
      assert.ok(!decay.has(n), `${n} is not decayed`);
      assert.ok(!decaysByName(n), `${n} is not decayed by name`);
    }
    const opt = AdamW.forModel(model, { lr: 1e-3, weightDecay: 0.01 });
    assert.deepEqual(new Set(opt.groups[0].params), decay);
    assert.equal(opt.groups[1].weightDecay, 0);
    assert.equal(opt.groups[0].params.length + opt.groups[1].params.length, names.size);
    model.dispose();
  }
});

test('with native kernels the moments live in host memory, outside the wasm heap, and the steps equal the tensor path bit for bit', async () => {
  await initBackend({ native: true });
  const required = process.env.MAKEMOST_REQUIRE_NATIVE === '1';
  if (!nativeKernelsInfo().enabled) {
    assert.ok(!required, `native kernels required: ${nativeKernelsInfo().reason}`);
    return; // nothing to compare without the addon; the tensor path is tested above
  }
  const rng = new Rng(3);
  const init = { w: Array.from({ length: 37 }, () => rng.normal()), b: [0.5, -0.25, 2] };
  const gs = Array.from({ length: 4 }, () => ({ w: Array.from({ length: 37 }, () => rng.normal()), b: [rng.normal(), rng.normal(), rng.normal()] }));
  const groups: ParamGroup[] = [{ name: 'decay', params: ['w'], lr: 0.05, weightDecay: 0.1 }, { name: 'rest', params: ['b'], lr: 0.05, weightDecay: 0 }];
  const run = async (native: boolean) => {
    await initBackend({ native });
    const ps = vars(init);
    const opt = new AdamW(ps, groups);
    const before = tf.memory().numTensors;
    for (const spec of gs) {
      const g = grads(spec);
      opt.step(g);
      tf.dispose([...g.values()]);
    }
    const extra = tf.memory().numTensors - before;
    const params = Object.fromEntries([...ps].map(([n, v]) => [n, Array.from(v.dataSync())]));
    const moments = Object.fromEntries([...opt.state().tensors].map(([k, t]) => [k, Array.from(t.dataSync())]));
    opt.dispose();
    for (const v of ps.values()) v.dispose();
    return { extra, params, moments };
  };
  const plain = await run(false);
  const host = await run(true);
  assert.equal(plain.extra, 4, 'tensor path: two moment variables per parameter');
  assert.equal(host.extra, 0, 'host path: no tensors for the moments');
  assert.deepEqual(host.params, plain.params);
  assert.deepEqual(host.moments, plain.moments);
  await initBackend({ native: true });
});
