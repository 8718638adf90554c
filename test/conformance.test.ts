/**
 * One conformance runner over every architecture (STYLE habit 8, mlx-lm style). For each tiny seeded
 * checkpoint, written by our own `save` and read by an independent PyTorch implementation of HF's
 * semantics (test/support/reference.py, strict about HF key names):
 *   - logits / hidden states / pooler within 1e-4 of PyTorch, on wasm and on cpu;
 *   - decoders: a left-padded batch and two cached steps, against PyTorch's cached run;
 *   - gradients of the log-likelihood w.r.t. several parameters, against PyTorch autograd;
 *   - load → save → load is bit-exact, and the saved files are byte-identical;
 *   - no tensors leak over repeated forwards.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../src/backend/index.js';
import { disposeAll } from '../src/backend/memory.js';
import { Rng } from '../src/backend/rng.js';
import { fromPretrained, maxParamDiff, type SavableModel } from '../src/models/pretrained.js';
import type { PreTrainedModel } from '../src/models/pretrained_model.js';
import { buildModel, type Task } from '../src/models/registry.js';
import type { CausalLM, EncoderModel } from '../src/models/types.js';
import { runReference, type RefTensor } from './support/torch_ref.js';

interface Case {
  name: string;
  task: Task;
  config: Record<string, unknown>;
  /** Parameters whose gradients are compared (HF names). */
  gradOf?: string[];
}

const V = 83;
const CASES: Case[] = [
  { name: 'gpt2 lm (tied, gelu_new)', task: 'causal-lm', config: { model_type: 'gpt2', vocab_size: V, n_positions: 40, n_embd: 32, n_layer: 2, n_head: 4, initializer_range: 0.1 }, gradOf: ['transformer.wte.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.1.mlp.c_fc.bias', 'transformer.ln_f.weight'] },
  { name: 'gpt2 lm (relu, n_inner, inverse-layer scaling)', task: 'causal-lm', config: { model_type: 'gpt2', vocab_size: V, n_positions: 40, n_embd: 24, n_layer: 3, n_head: 3, n_inner: 40, activation_function: 'relu', scale_attn_by_inverse_layer_idx: true, initializer_range: 0.1 }, gradOf: ['transformer.wpe.weight', 'transformer.h.2.attn.c_proj.weight'] },
  { name: 'gpt2 base', task: 'base', config: { model_type: 'gpt2', vocab_size: V, n_positions: 40, n_embd: 32, n_layer: 2, n_head: 4, initializer_range: 0.1 } },
  { name: 'llama lm (GQA, untied)', task: 'causal-lm', config: { model_type: 'llama', vocab_size: V, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, initializer_range: 0.1 }, gradOf: ['model.embed_tokens.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.1.mlp.gate_proj.weight', 'lm_head.weight', 'model.norm.weight'] },
  { name: 'llama lm (tied, head_dim 16, biases, llama3 rope)', task: 'causal-lm', config: { model_type: 'llama', vocab_size: V, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 16, attention_bias: true, tie_word_embeddings: true, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 }, max_position_embeddings: 64, initializer_range: 0.1 }, gradOf: ['model.embed_tokens.weight', 'model.layers.1.self_attn.q_proj.bias'] },
  { name: 'llama lm (linear rope)', task: 'causal-lm', config: { model_type: 'llama', vocab_size: V, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 1, num_attention_heads: 2, rope_scaling: { type: 'linear', factor: 2 }, max_position_embeddings: 64, initializer_range: 0.1 } },
  { name: 'bert masked lm', task: 'masked-lm', config: { model_type: 'bert', vocab_size: V, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 24, initializer_range: 0.1 }, gradOf: ['bert.embeddings.word_embeddings.weight', 'bert.encoder.layer.1.attention.self.query.weight', 'cls.predictions.transform.dense.weight', 'cls.predictions.bias'] },
  { name: 'bert base (pooler)', task: 'base', config: { model_type: 'bert', vocab_size: V, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 24, initializer_range: 0.1 } },
  { name: 'roberta masked lm', task: 'masked-lm', config: { model_type: 'roberta', vocab_size: V, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 26, type_vocab_size: 1, pad_token_id: 1, initializer_range: 0.1 }, gradOf: ['roberta.embeddings.position_embeddings.weight', 'lm_head.dense.weight', 'lm_head.bias'] },
  { name: 'roberta base', task: 'base', config: { model_type: 'roberta', vocab_size: V, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 48, max_position_embeddings: 26, type_vocab_size: 1, pad_token_id: 1, initializer_range: 0.1 } },
];

const TOL = 1e-4;
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'makemost-conf-'));
  dirs.push(d);
  return d;
}

/** Max |ours − ref| over positions whose query mask is 1 (outputs at padded queries are undefined). */
function compare(ours: tf.Tensor, ref: RefTensor, queryMask: number[][] | undefined, what: string): number {
  assert.deepEqual(ours.shape, ref.shape, `${what}: shape`);
  const a = ours.dataSync();
  const [B, T] = ref.shape;
  const inner = ref.data.length / (B * (ref.shape.length > 2 ? T : 1));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (ref.shape.length > 2 && queryMask) {
      const row = Math.floor(i / (T * inner));
      const t = Math.floor(i / inner) % T;
      if (!queryMask[row][t]) continue;
    }
    worst = Math.max(worst, Math.abs(a[i] - ref.data[i]));
  }
  assert.ok(worst <= TOL, `${what}: max |Δ| = ${worst} > ${TOL}`);
  return worst;
}

function isDecoder(c: Case): boolean {
  return c.config.model_type === 'gpt2' || c.config.model_type === 'llama';
}

/** Inputs for a case: B=2, T=7, the second row padded (left for decoders, right for encoders). */
function inputs(c: Case, rng: Rng) {
  const low = c.config.model_type === 'roberta' ? 3 : 0; // keep RoBERTa's pad id (1) out of real tokens
  const ids = [0, 1].map(() => Array.from({ length: 7 }, () => low + rng.int(V - low)));
  if (isDecoder(c)) {
    const mask = [[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]];
    const pos = mask.map((r) => { let s = -1; return r.map((m) => Math.max(0, (s += m))); });
    const steps = [0, 1].map((k) => ({
      input_ids: [[rng.int(V)], [rng.int(V)]],
      attention_mask: mask.map((r) => [...r, ...Array(k + 1).fill(1)]),
      position_ids: [[7 + k], [5 + k]],
    }));
    return { ids, mask, pos, steps, tokenTypes: undefined };
  }
  const mask = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]];
  if (c.config.model_type === 'roberta') ids[1] = ids[1].map((v, t) => (mask[1][t] ? v : 1));
  const tokenTypes = c.config.model_type === 'bert' ? ids.map((r) => r.map((_, t) => (t >= 4 ? 1 : 0))) : undefined;
  return { ids, mask, pos: undefined, steps: undefined, tokenTypes };
}

for (const c of CASES) {
  test(`conformance: ${c.name}`, async () => {
    await initBackend({ backend: 'wasm' });
    const rng = new Rng(c.name.length * 7919);
    const built = buildModel(c.config, c.task, 42);
    const dir = tmp();
    await (built.model as PreTrainedModel).save(dir);
    const inp = inputs(c, rng);
    const ref = await runReference(dir, {
      input_ids: inp.ids,
      attention_mask: inp.mask,
      ...(inp.pos ? { position_ids: inp.pos } : {}),
      ...(inp.tokenTypes ? { token_type_ids: inp.tokenTypes } : {}),
      ...(inp.steps ? { steps: inp.steps } : {}),
      output_hidden_states: true,
    });

    for (const backend of ['wasm', 'cpu'] as BackendName[]) {
      await initBackend({ backend });
      const model = await fromPretrained(dir, c.task);
      assert.equal(maxParamDiff(model, built.model), 0, 'load after save is bit-exact');
      const before = tf.memory().numTensors;
      if (isDecoder(c)) {
        const dec = model as unknown as CausalLM & { forward: CausalLM['forward'] };
        let out = dec.forward(inp.ids, { attentionMask: inp.mask, positionIds: inp.pos, returnHidden: true }) as ReturnType<CausalLM['forward']> & { lastHiddenState?: tf.Tensor };
        if (c.task === 'causal-lm') compare(out.logits, ref.logits!, inp.mask, `${backend} logits`);
        else compare(out.lastHiddenState!, ref.last_hidden_state!, inp.mask, `${backend} last hidden state`);
        out.hidden!.forEach((h, i) => compare(h, ref.hidden_states![i], inp.mask, `${backend} hidden[${i}]`));
        for (const [k, step] of inp.steps!.entries()) {
          const next = dec.forward(step.input_ids, { cache: out.cache, attentionMask: step.attention_mask, positionIds: step.position_ids }) as typeof out;
          const r = ref.steps![k];
          if (c.task === 'causal-lm') compare(next.logits, r.logits!, undefined, `${backend} cached step ${k}`);
          else compare(next.lastHiddenState!, r.last_hidden_state!, undefined, `${backend} cached step ${k}`);
          disposeAll(out);
          out = next;
        }
        disposeAll(out);
      } else {
        const enc = model as unknown as EncoderModel;
        const out = enc.forward(inp.ids, { attentionMask: inp.mask, tokenTypeIds: inp.tokenTypes, returnHidden: true });
        compare(out.lastHiddenState, ref.last_hidden_state!, inp.mask, `${backend} last hidden state`);
        if (c.task === 'masked-lm') compare(out.logits!, ref.logits!, inp.mask, `${backend} logits`);
        if (ref.pooler_output) compare(out.poolerOutput!, ref.pooler_output, undefined, `${backend} pooler`);
        out.hidden!.forEach((h, i) => compare(h, ref.hidden_states![i], inp.mask, `${backend} hidden[${i}]`));
        disposeAll(out);
      }
      assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked by forward`);
      // Round trip again: what we load, we save byte for byte the same.
      const dir2 = tmp();
      await (model as PreTrainedModel).save(dir2);
      assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(readFileSync(join(dir2, 'model.safetensors'))), 'save → load → save is byte-identical');
      model.dispose();
    }

    if (c.gradOf) await checkGradients(c, dir, built.model as SavableModel, inp);
    built.model.dispose();
  });
}

/** d/dθ Σ log p(label) against PyTorch autograd: next tokens for decoders, a few masked positions for MLMs. */
async function checkGradients(c: Case, dir: string, model: SavableModel, inp: ReturnType<typeof inputs>): Promise<void> {
  await initBackend({ backend: 'wasm' });
  const labels = isDecoder(c)
    ? inp.ids.map((r, b) => r.map((_, t) => (t + 1 < r.length && inp.mask[b][t] ? r[t + 1] : -100)))
    : inp.ids.map((r, b) => r.map((v, t) => (t % 3 === 1 && inp.mask[b][t] ? v : -100)));
  const ref = await runReference(dir, { input_ids: inp.ids, attention_mask: inp.mask, ...(inp.pos ? { position_ids: inp.pos } : {}), ...(inp.tokenTypes ? { token_type_ids: inp.tokenTypes } : {}), labels, grad_of: c.gradOf! }, { grad: true });
  const params = model.stateDict();
  const vars = c.gradOf!.map((n) => params.get(n)!);
  const flat = labels.flat();
  const objective = () => tf.tidy(() => {
    const logits = isDecoder(c)
      ? (model as unknown as CausalLM).forward(inp.ids, { attentionMask: inp.mask, positionIds: inp.pos }).logits
      : (model as unknown as EncoderModel).forward(inp.ids, { attentionMask: inp.mask, tokenTypeIds: inp.tokenTypes }).logits!;
    const lp = tf.logSoftmax(logits.reshape([flat.length, V]));
    const pick = tf.oneHot(tf.tensor1d(flat.map((l) => Math.max(l, 0)), 'int32'), V);
    const keep = tf.tensor1d(flat.map((l) => (l === -100 ? 0 : 1))).reshape([-1, 1]);
    return tf.sum(tf.mul(tf.mul(lp, pick), keep)) as tf.Scalar;
  });
  const { value, grads } = tf.variableGrads(objective, vars);
  assert.ok(Math.abs(value.dataSync()[0] - ref.objective!) < 1e-3, `objective ${value.dataSync()[0]} vs ${ref.objective}`);
  for (const [i, name] of c.gradOf!.entries()) {
    const g = grads[vars[i].name];
    const r = ref.grads![name];
    const scale = Math.max(1, ...Array.from(r.data, Math.abs));
    let worst = 0;
    g.dataSync().forEach((x, j) => (worst = Math.max(worst, Math.abs(x - r.data[j]))));
    assert.ok(worst <= TOL * scale, `gradient of ${name}: max |Δ| = ${worst}`);
  }
  disposeAll([value, grads]);
}
