/**
 * PEFT's format: the saved adapter's keys (read from the safetensors header directly) and config fields;
 * save → load bit-exact; strict, listed mismatches; unsupported PEFT features refused. Against PyTorch:
 * the saved adapter applied with PEFT's forward rule to the reference model, and a merged checkpoint
 * read by the reference, both match our unmerged LoRA output (≤ 1e-4) — for Conv1D and Linear.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { CheckpointError, UnsupportedError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import type { PreTrainedModel } from '../../models/pretrained_model.js';
import { buildModel, type Task } from '../../models/registry.js';
import { PYTHON, assertTorchAvailable, repoRoot, runReference } from '../../../test/support/torch_ref.js';
import { applyLora, isLoraParameter, loraState, mergeLora } from './apply.js';
import { loadLora, parseAdapterConfig, saveLora } from './peft.js';

await initBackend();

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'makemost-peft-'));
  dirs.push(d);
  return d;
}

const GPT2 = { model_type: 'gpt2', vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.2 };
const LLAMA = { model_type: 'llama', vocab_size: 50, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, initializer_range: 0.2, pad_token_id: 0 };
const BERT = { model_type: 'bert', vocab_size: 50, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 24, max_position_embeddings: 16, initializer_range: 0.2, num_labels: 3 };

type Fwd = PreTrainedModel & { forward(ids: number[][], o?: { attentionMask?: number[][] }): { logits?: tf.Tensor } };
const IDS = [[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]];
const MASK = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]];

function build(cfg: Record<string, unknown>, task: Task, seed = 2): Fwd {
  return buildModel(cfg, task, seed).model as Fwd;
}

function logits(m: Fwd): Float32Array {
  const out = m.forward(IDS, { attentionMask: MASK });
  const v = out.logits!.dataSync().slice() as Float32Array;
  disposeAll(out);
  return v;
}

/** Adapter tensors (and the head, for classifiers) moved off their init, as after training. */
function train(m: Module, seed: number): void {
  const rng = new Rng(seed);
  for (const [n, v] of m.namedParameters()) {
    if (!v.trainable && !isLoraParameter(n)) continue;
    const t = tf.tensor(rng.normalArray(v.size, 0.3), v.shape);
    v.assign(t);
    t.dispose();
  }
}

/** The safetensors header, parsed here rather than by our reader: {key: {dtype, shape}}. */
function header(path: string): Record<string, { dtype: string; shape: number[] }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
  delete h.__metadata__;
  return h;
}

test('saved adapter: PEFT key names, shapes and adapter_config.json fields (Conv1D, causal LM)', async () => {
  const m = build(GPT2, 'causal-lm');
  applyLora(m, { r: 4, alpha: 16, dropout: 0.05 });
  const dir = tmp();
  await saveLora(m, dir, { baseModelNameOrPath: 'gpt2' });
  const h = header(join(dir, 'adapter_model.safetensors'));
  assert.deepEqual(Object.fromEntries(Object.entries(h).map(([k, v]) => [k, [v.dtype, v.shape]])), {
    'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': ['F32', [4, 16]],
    'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': ['F32', [48, 4]],
    'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight': ['F32', [4, 16]],
    'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight': ['F32', [48, 4]],
  });
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.task_type, 'CAUSAL_LM');
  assert.equal(cfg.base_model_name_or_path, 'gpt2');
  assert.equal(cfg.r, 4);
  assert.equal(cfg.lora_alpha, 16);
  assert.equal(cfg.lora_dropout, 0.05);
  assert.deepEqual(cfg.target_modules, ['c_attn']);
  assert.equal(cfg.fan_in_fan_out, true, "GPT-2's Conv1D is PEFT's fan_in_fan_out layout");
  assert.equal(cfg.bias, 'none');
  assert.equal(cfg.modules_to_save, null);
  assert.equal(cfg.use_rslora, false);
  assert.equal(cfg.use_dora, false);
  m.dispose();
});

test('saved adapter of a classifier: SEQ_CLS, modules_to_save, the head under its own path (Linear)', async () => {
  const m = build(LLAMA, 'sequence-classification');
  applyLora(m, { r: 2, alpha: 4 });
  const dir = tmp();
  await saveLora(m, dir);
  const h = header(join(dir, 'adapter_model.safetensors'));
  const want: Record<string, number[]> = { 'base_model.model.score.weight': [2, 16] };
  for (const i of [0, 1]) {
    want[`base_model.model.model.layers.${i}.self_attn.q_proj.lora_A.weight`] = [2, 16];
    want[`base_model.model.model.layers.${i}.self_attn.q_proj.lora_B.weight`] = [16, 2];
    want[`base_model.model.model.layers.${i}.self_attn.v_proj.lora_A.weight`] = [2, 16];
    want[`base_model.model.model.layers.${i}.self_attn.v_proj.lora_B.weight`] = [8, 2];
  }
  assert.deepEqual(Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.shape])), want);
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.task_type, 'SEQ_CLS');
  assert.deepEqual(cfg.modules_to_save, ['classifier', 'score']);
  assert.deepEqual(cfg.target_modules, ['q_proj', 'v_proj']);
  assert.equal(cfg.fan_in_fan_out, false);
  assert.equal(cfg.base_model_name_or_path, null);
  m.dispose();
});

test('save → load onto a fresh base is bit-exact; loaded adapters are frozen unless asked', async () => {
  for (const [cfg, task] of [[GPT2, 'causal-lm'], [LLAMA, 'sequence-classification'], [BERT, 'sequence-classification']] as const) {
    const a = build(cfg, task);
    applyLora(a, { r: 3, alpha: 6, targetModules: cfg.model_type === 'gpt2' ? ['c_attn', 'mlp.c_proj'] : undefined });
    train(a, 4);
    const dir = tmp();
    await saveLora(a, dir);
    const b = build(cfg, task);
    await loadLora(b, dir);
    const pa = a.stateDict();
    for (const [n, v] of b.namedParameters()) assert.deepEqual(v.dataSync(), pa.get(n)!.dataSync(), `${cfg.model_type} ${n}`);
    assert.deepEqual(logits(b), logits(a));
    assert.ok([...b.namedParameters()].every(([, v]) => !v.trainable));
    const c = build(cfg, task);
    await loadLora(c, dir, { trainable: true });
    assert.deepEqual([...c.namedParameters()].filter(([, v]) => v.trainable).map(([n]) => n), [...a.namedParameters()].filter(([, v]) => v.trainable).map(([n]) => n));
    [a, b, c].forEach((m) => m.dispose());
  }
});

test('an adapter that does not fit the model fails with every key listed, leaving no adapters', async () => {
  const a = build(GPT2, 'causal-lm');
  applyLora(a, { r: 2 });
  const dir = tmp();
  await saveLora(a, dir);
  const bigger = build({ ...GPT2, n_layer: 3 }, 'causal-lm');
  await assert.rejects(loadLora(bigger, dir), (e: unknown) => e instanceof CheckpointError && /missing: base_model\.model\.transformer\.h\.2\.attn\.c_attn\.lora_A\.weight/.test(e.message));
  assert.equal(loraState(bigger), undefined);
  const wider = build({ ...GPT2, n_embd: 8 }, 'causal-lm');
  await assert.rejects(loadLora(wider, dir), /wrong shape: base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight: file \[2, 16\], model \[2, 8\]/);
  const cfgPath = join(dir, 'adapter_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), r: 5 }));
  const same = build(GPT2, 'causal-lm');
  await assert.rejects(loadLora(same, dir), /wrong shape/);
  [a, bigger, wider, same].forEach((m) => m.dispose());
});

test('adapter_config.json: PEFT features we lack are refused by name; inert extra fields are accepted', () => {
  const base = { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj'] };
  assert.deepEqual(parseAdapterConfig({ ...base, eva_config: null, loftq_config: {}, runtime_config: { ephemeral_gpu_offload: false }, megatron_core: 'megatron.core', peft_version: '0.13.0' }), { r: 8, alpha: 16, dropout: undefined, targetModules: ['q_proj'], modulesToSave: [], useRslora: false });
  assert.throws(() => parseAdapterConfig({ ...base, use_dora: true }), (e: unknown) => e instanceof UnsupportedError && /use_dora=true/.test(e.message));
  assert.throws(() => parseAdapterConfig({ ...base, rank_pattern: { q_proj: 4 } }), /rank_pattern/);
  assert.throws(() => parseAdapterConfig({ ...base, layers_to_transform: [0] }), /layers_to_transform/);
  assert.throws(() => parseAdapterConfig({ ...base, bias: 'all' }), /bias "all"/);
  assert.throws(() => parseAdapterConfig({ ...base, peft_type: 'IA3' }), /peft_type "IA3"/);
  assert.throws(() => parseAdapterConfig({ ...base, target_modules: [] }), /target_modules/);
});

// PEFT's LoRA forward, written independently on the PyTorch reference model: every `…lora_A.weight` in
// the file wraps the module at that path with y = f(x) + (x Aᵀ) Bᵀ · alpha/r; other keys are modules_to_save.
const PEFT_RULE = String.raw`
import json, sys, torch
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from reference import load_model
from ref_io import read_safetensors
model, _ = load_model(sys.argv[2])
cfg = json.load(open(sys.argv[3] + "/adapter_config.json"))
state = read_safetensors(sys.argv[3] + "/adapter_model.safetensors")
scale = cfg["lora_alpha"] / cfg["r"]
mods, params, pre = dict(model.named_modules()), dict(model.named_parameters()), "base_model.model."
for key, t in state.items():
    assert key.startswith(pre), key
    name = key[len(pre):]
    if name.endswith(".lora_A.weight"):
        path = name[: -len(".lora_A.weight")]
        B = state[pre + path + ".lora_B.weight"]
        m = mods[path]
        m.forward = (lambda f, A, B: lambda x: f(x) + (x @ A.T) @ B.T * scale)(m.forward, t, B)
    elif not name.endswith(".lora_B.weight"):
        params[name].data.copy_(t)
inp = json.load(open(sys.argv[4]))
with torch.no_grad():
    out = model(torch.tensor(inp["ids"]), attention_mask=torch.tensor(inp["mask"]))
print(json.dumps(out["logits"].reshape(-1).tolist()))
`;

test('PyTorch: the saved adapter under PEFT\'s forward rule, and the merged checkpoint, match our LoRA output', async () => {
  await assertTorchAvailable();
  for (const [cfg, task] of [[GPT2, 'causal-lm'], [{ ...BERT, classifier_dropout: 0 }, 'sequence-classification']] as const) {
    const m = build(cfg, task, 6);
    const baseDir = tmp();
    await m.save(baseDir);
    applyLora(m, { r: 4, alpha: 8, targetModules: cfg.model_type === 'gpt2' ? ['c_attn', 'c_proj'] : ['query', 'value', 'dense'] });
    train(m, 8);
    const ours = logits(m);
    const adapterDir = tmp();
    await saveLora(m, adapterDir);
    const inp = join(tmp(), 'in.json');
    writeFileSync(inp, JSON.stringify({ ids: IDS, mask: MASK }));
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', PEFT_RULE, join(repoRoot(), 'test', 'support'), baseDir, adapterDir, inp]);
    const torchPeft = Float32Array.from(JSON.parse(stdout) as number[]);
    const rows = cfg.model_type === 'gpt2' ? [0, 1, 2, 3, 4, 5, 6, 7, 8] : [0, 1]; // decoders: compare unpadded positions
    const per = ours.length / (cfg.model_type === 'gpt2' ? 10 : 2);
    const worst = (ref: Float32Array) => rows.reduce((w, r) => Math.max(w, ...Array.from({ length: per }, (_, j) => Math.abs(ours[r * per + j] - ref[r * per + j]))), 0);
    assert.ok(worst(torchPeft) <= 1e-4, `${cfg.model_type}: PEFT rule in PyTorch, max |Δ| = ${worst(torchPeft)}`);

    mergeLora(m);
    const mergedDir = tmp();
    await m.save(mergedDir);
    assert.ok(!Object.keys(header(join(mergedDir, 'model.safetensors'))).some((k) => k.includes('lora')));
    const ref = await runReference(mergedDir, { input_ids: IDS, attention_mask: MASK });
    assert.ok(worst(ref.logits!.data) <= 1e-4, `${cfg.model_type}: merged checkpoint in PyTorch, max |Δ| = ${worst(ref.logits!.data)}`);
    m.dispose();
  }
});
