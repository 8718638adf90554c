/**
 * Loading real-world checkpoint layouts into our models: the hub's bare `gpt2` key names with mask
 * buffers, sharded files, torch.save pickles, float16 weights; and the errors for files that do not
 * match their config (every key listed at once) or an unknown model_type (the supported ones listed).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { disposeAll } from '../backend/memory.js';
import { CheckpointError, ConfigError, UnsupportedError } from '../errors.js';
import { saveSafetensors } from '../io/hf_folder.js';
import { f32ToF16, f16ToF32 } from '../io/dtypes.js';
import { fromPretrained, maxParamDiff } from './pretrained.js';
import { buildModel } from './registry.js';
import type { PreTrainedModel } from './pretrained_model.js';
import type { CausalLM } from './types.js';

await initBackend();
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'makemost-load-'));
  dirs.push(d);
  return d;
}

const GPT2 = { model_type: 'gpt2', vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 };
type Saved = { shape: number[]; dtype: 'float32' | 'float16'; data: Float32Array };

function tensorsOf(model: PreTrainedModel, rename: (k: string) => string = (k) => k, dtype: 'float32' | 'float16' = 'float32'): Map<string, Saved> {
  return new Map([...model.namedParameters()].map(([k, v]) => [rename(k), { shape: v.shape.slice(), dtype, data: v.dataSync() as Float32Array }]));
}

function writeConfig(dir: string, config: object): void {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
}

function logitsOf(model: CausalLM): Float32Array {
  const out = model.forward([[1, 2, 3, 4]]);
  const data = out.logits.dataSync() as Float32Array;
  disposeAll(out);
  return data;
}

test("the hub's bare gpt2 layout loads: no transformer. prefix, attn.bias / masked_bias buffers, lm_head copy", async () => {
  const { model } = buildModel(GPT2, 'causal-lm', 3);
  const dir = tmp();
  const tensors = tensorsOf(model as PreTrainedModel, (k) => k.replace(/^transformer\./, ''));
  for (let i = 0; i < 2; i++) {
    const P = GPT2.n_positions;
    tensors.set(`h.${i}.attn.bias`, { shape: [1, 1, P, P], dtype: 'float32', data: new Float32Array(P * P).fill(1) });
    tensors.set(`h.${i}.attn.masked_bias`, { shape: [], dtype: 'float32', data: Float32Array.of(-1e4) });
  }
  tensors.set('lm_head.weight', tensors.get('wte.weight')!);
  saveSafetensors(join(dir, 'model.safetensors'), tensors);
  writeConfig(dir, GPT2);
  const loaded = (await fromPretrained(dir, 'causal-lm')) as CausalLM;
  assert.equal(maxParamDiff(loaded, model), 0);
  assert.deepEqual(logitsOf(loaded), logitsOf(model as CausalLM));
  const base = await fromPretrained(dir, 'base');
  assert.equal(base.stateDict().size, 2 + 12 * 2 + 2);
  for (const m of [loaded, base, model]) m.dispose();
});

test('a file that does not match its config: every missing, unexpected and mis-shaped key in one error', async () => {
  const { model } = buildModel(GPT2, 'causal-lm', 4);
  const dir = tmp();
  const tensors = tensorsOf(model as PreTrainedModel);
  tensors.set('transformer.h.0.attn.extra', { shape: [2], dtype: 'float32', data: new Float32Array(2) });
  saveSafetensors(join(dir, 'model.safetensors'), tensors);
  writeConfig(dir, { ...GPT2, n_layer: 3 });
  const before = tf.memory().numTensors;
  await assert.rejects(fromPretrained(dir, 'causal-lm'), (e: Error) => {
    assert.ok(e instanceof CheckpointError);
    assert.match(e.message, /missing \(12\)/);
    for (const k of ['transformer.h.2.ln_1.weight', 'transformer.h.2.attn.c_attn.weight', 'transformer.h.2.mlp.c_proj.bias']) assert.ok(e.message.includes(k), k);
    assert.match(e.message, /unexpected \(1\): transformer\.h\.0\.attn\.extra/);
    assert.ok(e.message.includes(dir));
    return true;
  });
  assert.equal(tf.memory().numTensors, before, 'a failed load frees its model');
  writeConfig(dir, { ...GPT2, n_embd: 8, n_head: 2 });
  await assert.rejects(fromPretrained(dir, 'causal-lm', { strict: false }), (e: Error) => /wrong shape \(\d+\): transformer\.wte\.weight: checkpoint \[50, 16\], model \[50, 8\]/.test(e.message));
  // Non-strict: the unexpected key is reported, not fatal.
  writeConfig(dir, GPT2);
  const loose = await fromPretrained(dir, 'causal-lm', { strict: false });
  assert.equal(maxParamDiff(loose, model), 0);
  loose.dispose();
  model.dispose();
});

test('unknown or missing model_type, and a config missing a required field', async () => {
  const dir = tmp();
  writeConfig(dir, { model_type: 't5' });
  await assert.rejects(fromPretrained(dir, 'causal-lm'), (e: Error) => e instanceof UnsupportedError && /model_type 't5'/.test(e.message) && /gpt2, llama, bert, roberta/.test(e.message));
  writeConfig(dir, { n_layer: 2 });
  await assert.rejects(fromPretrained(dir, 'causal-lm'), (e: Error) => e instanceof ConfigError && /no "model_type"/.test(e.message));
  writeConfig(dir, { model_type: 'gpt2', n_embd: 'wide' });
  await assert.rejects(fromPretrained(dir, 'causal-lm'), (e: Error) => e instanceof ConfigError && /'n_embd' must be a number/.test(e.message));
});

test('float16 checkpoints are widened to float32 on load', async () => {
  const { model } = buildModel(GPT2, 'causal-lm', 5);
  const dir = tmp();
  saveSafetensors(join(dir, 'model.safetensors'), tensorsOf(model as PreTrainedModel, (k) => k, 'float16'));
  writeConfig(dir, GPT2);
  const loaded = await fromPretrained(dir, 'causal-lm');
  const w = loaded.stateDict().get('transformer.h.1.mlp.c_fc.weight')!.dataSync();
  const orig = model.stateDict().get('transformer.h.1.mlp.c_fc.weight')!.dataSync() as Float32Array;
  assert.deepEqual(Array.from(w), Array.from(f16ToF32(f32ToF16(orig))));
  loaded.dispose();
  model.dispose();
});

test('a pytorch_model.bin written by torch.save loads with the same values as its safetensors twin', async () => {
  const { model } = buildModel(GPT2, 'causal-lm', 6);
  const src = tmp();
  await (model as PreTrainedModel).save(src);
  const bin = tmp();
  writeFileSync(join(bin, 'config.json'), readFileSync(join(src, 'config.json')));
  // Python reads our safetensors by hand and torch.saves the same state dict (no pickle of ours involved).
  const script = `
import json, struct, sys, torch
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
head = json.loads(raw[8:8 + n]); base = 8 + n
sd = {}
for k, v in head.items():
    if k == '__metadata__': continue
    a, b = v['data_offsets']
    sd[k] = torch.frombuffer(bytearray(raw[base + a:base + b]), dtype=torch.float32).reshape(v['shape']).clone()
sd['transformer.h.0.attn.c_attn.weight'] = sd['transformer.h.0.attn.c_attn.weight'].t().contiguous().t()  # a non-contiguous view
torch.save(sd, sys.argv[2])
`;
  execFileSync('/usr/bin/python3', ['-c', script, join(src, 'model.safetensors'), join(bin, 'pytorch_model.bin')]);
  const loaded = await fromPretrained(bin, 'causal-lm');
  assert.equal(maxParamDiff(loaded, model), 0);
  loaded.dispose();
  model.dispose();
});
