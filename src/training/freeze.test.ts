/**
 * Finetuning rules: for every mode and family, exactly the intended HF names are trainable (against
 * parameter lists written out by hand for 3-block models), LLRD multipliers per block by hand, name
 * parsing for every family, the CLI mode parser, and the trainable flags driving tf.variableGrads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { ConfigError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { buildModel } from '../models/registry.js';
import { layerIndex, paramPlace } from './freeze.js';
import { formatFinetuneMode, parseFinetuneMode, prepareFinetune } from './modes.js';

await initBackend();

const L = 3;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const under = (prefix: string, names: string[]) => names.map((n) => `${prefix}${n}`);
const W = (m: string) => [`${m}.weight`, `${m}.bias`];

interface Family {
  name: string;
  config: Record<string, unknown>;
  emb: string[];
  block: (i: number) => string[];
  top: string[];
  head: string[];
  lora: (i: number) => string[];
}

const FAMILIES: Family[] = [
  {
    name: 'gpt2',
    config: { model_type: 'gpt2', vocab_size: 40, n_positions: 16, n_embd: 8, n_layer: L, n_head: 2, pad_token_id: 0 },
    emb: ['transformer.wte.weight', 'transformer.wpe.weight'],
    block: (i) => under(`transformer.h.${i}.`, [...W('ln_1'), ...W('attn.c_attn'), ...W('attn.c_proj'), ...W('ln_2'), ...W('mlp.c_fc'), ...W('mlp.c_proj')]),
    top: W('transformer.ln_f'),
    head: ['score.weight'],
    lora: (i) => [`transformer.h.${i}.attn.c_attn.lora_A.weight`, `transformer.h.${i}.attn.c_attn.lora_B.weight`],
  },
  {
    name: 'llama',
    config: { model_type: 'llama', vocab_size: 40, hidden_size: 8, intermediate_size: 12, num_hidden_layers: L, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16, pad_token_id: 0 },
    emb: ['model.embed_tokens.weight'],
    block: (i) => under(`model.layers.${i}.`, ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight', 'self_attn.o_proj.weight', 'mlp.gate_proj.weight', 'mlp.up_proj.weight', 'mlp.down_proj.weight', 'input_layernorm.weight', 'post_attention_layernorm.weight']),
    top: ['model.norm.weight'],
    head: ['score.weight'],
    lora: (i) => under(`model.layers.${i}.self_attn.`, ['q_proj.lora_A.weight', 'q_proj.lora_B.weight', 'v_proj.lora_A.weight', 'v_proj.lora_B.weight']),
  },
  {
    name: 'bert',
    config: { model_type: 'bert', vocab_size: 40, hidden_size: 8, num_hidden_layers: L, num_attention_heads: 2, intermediate_size: 12, max_position_embeddings: 16 },
    emb: under('bert.embeddings.', ['word_embeddings.weight', 'position_embeddings.weight', 'token_type_embeddings.weight', ...W('LayerNorm')]),
    block: (i) => under(`bert.encoder.layer.${i}.`, [...W('attention.self.query'), ...W('attention.self.key'), ...W('attention.self.value'), ...W('attention.output.dense'), ...W('attention.output.LayerNorm'), ...W('intermediate.dense'), ...W('output.dense'), ...W('output.LayerNorm')]),
    top: W('bert.pooler.dense'),
    head: W('classifier'),
    lora: (i) => under(`bert.encoder.layer.${i}.attention.self.`, ['query.lora_A.weight', 'query.lora_B.weight', 'value.lora_A.weight', 'value.lora_B.weight']),
  },
  {
    name: 'roberta',
    config: { model_type: 'roberta', vocab_size: 40, hidden_size: 8, num_hidden_layers: L, num_attention_heads: 2, intermediate_size: 12, max_position_embeddings: 18 },
    emb: under('roberta.embeddings.', ['word_embeddings.weight', 'position_embeddings.weight', 'token_type_embeddings.weight', ...W('LayerNorm')]),
    block: (i) => under(`roberta.encoder.layer.${i}.`, [...W('attention.self.query'), ...W('attention.self.key'), ...W('attention.self.value'), ...W('attention.output.dense'), ...W('attention.output.LayerNorm'), ...W('intermediate.dense'), ...W('output.dense'), ...W('output.LayerNorm')]),
    top: [],
    head: [...W('classifier.dense'), ...W('classifier.out_proj')],
    lora: (i) => under(`roberta.encoder.layer.${i}.attention.self.`, ['query.lora_A.weight', 'query.lora_B.weight', 'value.lora_A.weight', 'value.lora_B.weight']),
  },
];

const sorted = (xs: string[]) => [...xs].sort();
const blocks = (f: Family, idx: number[]) => idx.flatMap((i) => f.block(i));
const all = (f: Family) => [...f.emb, ...blocks(f, range(L)), ...f.top, ...f.head];

function build(f: Family): Module {
  return buildModel(f.config, 'sequence-classification', 1).model;
}

function trainableNames(m: Module): string[] {
  return sorted([...m.namedParameters()].filter(([, v]) => v.trainable).map(([n]) => n));
}

for (const f of FAMILIES) {
  test(`${f.name}: each mode trains exactly the intended parameters`, () => {
    const expect: [string, string[]][] = [
      ['full', all(f)],
      ['reinit-top:1', all(f)],
      ['llrd:0.9', all(f)],
      ['last-layer', [...blocks(f, [2]), ...f.top, ...f.head]],
      ['freeze-lower:0', all(f)],
      ['freeze-lower:1', [...blocks(f, [1, 2]), ...f.top, ...f.head]],
      ['freeze-lower:3', [...f.top, ...f.head]],
      ['bitfit', [...all(f).filter((n) => n.endsWith('.bias')), ...f.head.filter((n) => !n.endsWith('.bias'))]],
      ['lora', [...range(L).flatMap(f.lora), ...f.head]],
    ];
    for (const [spec, want] of expect) {
      const m = build(f);
      assert.deepEqual(sorted([...m.namedParameters()].map(([n]) => n)), sorted(all(f)), `${f.name}: the model's names`);
      const setup = prepareFinetune(m, parseFinetuneMode(spec), { seed: 2 });
      if (spec === 'lora') assert.deepEqual(sorted([...m.namedParameters()].map(([n]) => n)), sorted([...all(f), ...range(L).flatMap(f.lora)]), 'adapters added');
      assert.deepEqual(trainableNames(m), sorted(want), `${f.name} ${spec}`);
      assert.deepEqual(sorted([...setup.policies].filter(([, p]) => p.trainable).map(([n]) => n)), sorted(want), `${f.name} ${spec}: policies`);
      m.dispose();
    }
  });

  test(`${f.name}: llrd:0.9 multiplies each block below the top by 0.9, embeddings lowest`, () => {
    const m = build(f);
    const { policies, lrScale } = prepareFinetune(m, parseFinetuneMode('llrd:0.9'));
    const want = new Map<string, number>();
    f.emb.forEach((n) => want.set(n, 0.729));
    f.block(0).forEach((n) => want.set(n, 0.81));
    f.block(1).forEach((n) => want.set(n, 0.9));
    f.block(2).forEach((n) => want.set(n, 1));
    [...f.top, ...f.head].forEach((n) => want.set(n, 1));
    assert.equal(policies.size, want.size);
    for (const [n, p] of policies) assert.ok(Math.abs(p.lrScale - want.get(n)!) < 1e-12, `${n}: ${p.lrScale} vs ${want.get(n)}`);
    for (const [n, w] of want) assert.ok(Math.abs(lrScale(n) - w) < 1e-12, `lrScale(${n})`);
    m.dispose();
  });
}

test('layer indices are parsed from every family, bare or headed', () => {
  const cases: [string, number | null][] = [
    ['transformer.h.11.attn.c_attn.weight', 11], ['h.2.ln_1.bias', 2], ['model.layers.7.mlp.up_proj.weight', 7], ['layers.0.input_layernorm.weight', 0],
    ['bert.encoder.layer.3.output.dense.bias', 3], ['roberta.encoder.layer.10.attention.self.query.lora_A.weight', 10], ['encoder.layer.1.output.LayerNorm.weight', 1],
    ['transformer.wte.weight', null], ['model.norm.weight', null], ['bert.pooler.dense.weight', null], ['score.weight', null], ['classifier.out_proj.bias', null],
  ];
  for (const [n, i] of cases) assert.equal(layerIndex(n), i, n);
  assert.deepEqual(paramPlace('cls.predictions.transform.dense.weight'), { kind: 'head' });
  assert.deepEqual(paramPlace('lm_head.weight'), { kind: 'head' });
  assert.deepEqual(paramPlace('model.norm.weight'), { kind: 'top' });
  assert.deepEqual(paramPlace('embeddings.LayerNorm.bias'), { kind: 'embeddings' });
  assert.throws(() => paramPlace('transformer.mystery.weight'), ConfigError);
});

test('a tied LM head is the embedding matrix: last-layer leaves it frozen', () => {
  const m = buildModel({ ...FAMILIES[0].config }, 'causal-lm', 1).model;
  prepareFinetune(m, parseFinetuneMode('last-layer'));
  assert.deepEqual(trainableNames(m), sorted([...FAMILIES[0].block(2), ...FAMILIES[0].top]));
  m.dispose();
});

test('a bad K fails before any flag or weight changes', () => {
  const m = build(FAMILIES[0]);
  const before = [...m.namedParameters()].map(([, v]) => v.dataSync().slice());
  (m.stateDict().get('transformer.wte.weight')!).trainable = false;
  assert.throws(() => prepareFinetune(m, parseFinetuneMode('freeze-lower:4')), /0 ≤ K ≤ 3/);
  assert.throws(() => prepareFinetune(m, parseFinetuneMode('reinit-top:4')), /0 ≤ K ≤ 3|1 ≤ K ≤ 3/);
  assert.equal(m.stateDict().get('transformer.wte.weight')!.trainable, false);
  assert.equal(m.stateDict().get('transformer.h.0.ln_1.weight')!.trainable, true);
  [...m.namedParameters()].forEach(([n, v], i) => assert.deepEqual(v.dataSync(), before[i], n));
  m.dispose();
});

test('trainable flags decide what tf.variableGrads differentiates', () => {
  const m = build(FAMILIES[0]);
  prepareFinetune(m, parseFinetuneMode('bitfit'));
  const vars = [...m.namedParameters()];
  const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.square((m as unknown as { forward(ids: number[][]): { logits: tf.Tensor } }).forward([[3, 4, 5]]).logits)) as tf.Scalar), vars.map(([, v]) => v));
  const byName = new Map(vars.map(([n, v]) => [v.name, n]));
  // tfjs returns null for the frozen variables of an explicit list and differentiates only the rest.
  const got = Object.entries(grads).filter(([, g]) => g !== null);
  assert.deepEqual(sorted(got.map(([k]) => byName.get(k)!)), trainableNames(m));
  assert.ok(got.every(([, g]) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0), 'every trainable bias gets a gradient');
  tf.dispose([value, ...got.map(([, g]) => g)]);
  m.dispose();
});

test('mode strings parse to values and print back; bad strings name the problem', () => {
  const ok: [string, unknown][] = [
    ['full', { kind: 'full' }], ['last-layer', { kind: 'last-layer' }], ['bitfit', { kind: 'bitfit' }],
    ['freeze-lower:4', { kind: 'freeze-lower', k: 4 }], ['llrd:0.9', { kind: 'llrd', decay: 0.9 }], ['reinit-top:2', { kind: 'reinit-top', k: 2 }],
    ['lora', { kind: 'lora', lora: {} }],
    ['lora:r=8,alpha=16,dropout=0.05,targets=c_attn+c_proj', { kind: 'lora', lora: { r: 8, alpha: 16, dropout: 0.05, targetModules: ['c_attn', 'c_proj'] } }],
  ];
  for (const [s, v] of ok) {
    assert.deepEqual(parseFinetuneMode(s), v, s);
    assert.equal(formatFinetuneMode(parseFinetuneMode(s)), s);
  }
  const bad: [string, RegExp][] = [
    ['everything', /unknown mode 'everything'/], ['freeze-lower', /needs a value/], ['freeze-lower:-1', /integer ≥ 0/], ['freeze-lower:1.5', /integer ≥ 0/],
    ['reinit-top:0', /integer ≥ 1/], ['llrd:1.5', /\(0, 1\]/], ['llrd:abc', /number/], ['full:3', /takes no value/],
    ['lora:r=0', /integer ≥ 1/], ['lora:rank=8', /unknown LoRA option 'rank'/], ['lora:r8', /not key=value/], ['lora:dropout=1', /\[0, 1\)/], ['lora:targets=a++b', /joined by '\+'/],
  ];
  for (const [s, re] of bad) {
    assert.throws(() => parseFinetuneMode(s), (e: unknown) => e instanceof ConfigError && re.test(e.message) && /HINT|full \| last-layer/.test(`${e.message} ${(e as ConfigError & { hint?: string }).hint ?? ''}`), s);
  }
});
