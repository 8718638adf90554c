/**
 * generate(): dispatch and preparation — text prompts through a tokenizer, an empty prompt starting from
 * BOS, num_return_sequences for sampling, generation_config.json defaults, option errors naming the option,
 * and no leaked tensors, also on abort. Expected tokens come from the scripted table, not from generate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { ConfigError, ShapeError, UnsupportedError } from '../errors.js';
import { logs } from '../../test/support/table_model.js';
import { generate } from './generate.js';
import { EOS, TableLM, byteTokenizer, bytesOf, scriptedModel } from './text_fixtures.test.js';

await initBackend();
const tok = byteTokenizer();

test('text prompts are encoded; texts hold the new text without special tokens', async () => {
  const model = scriptedModel(bytesOf(' there'), 2);
  const out = await generate(model, 'hi', { tokenizer: tok, max_new_tokens: 10, eos_token_id: EOS });
  assert.deepEqual(out.sequences[0], [...bytesOf('hi there'), EOS]);
  assert.deepEqual(out.finishReason, ['eos']);
  assert.deepEqual(out.texts, [' there']);
  const kept = await generate(model, 'hi', { tokenizer: tok, max_new_tokens: 10, eos_token_id: EOS, skipSpecialTokens: false });
  assert.deepEqual(kept.texts, [' there<|endoftext|>']);
  await assert.rejects(generate(model, 'hi', { max_new_tokens: 2 }), /text prompts need a tokenizer/);
});

test('an empty prompt starts from BOS (model config, else tokenizer), or errors clearly', async () => {
  const model = scriptedModel(bytesOf('ok'), 1);
  const out = await generate(model, '', { tokenizer: tok, max_new_tokens: 5, eos_token_id: EOS });
  assert.deepEqual(out.sequences[0], [EOS, ...bytesOf('ok'), EOS]);
  const fromIds = await generate(model, [[]], { bos_token_id: 7, max_new_tokens: 2 });
  assert.deepEqual(fromIds.sequences[0], [7, ...bytesOf('ok')]);
  await assert.rejects(generate(model, [[]], { max_new_tokens: 2 }), (e: unknown) => e instanceof ShapeError && /empty[\s\S]*BOS/.test((e as Error).message));
});

test('eos_token_id falls back to config.json, pad to the first EOS; generation_config.json gives defaults', async () => {
  const model = scriptedModel([1, 2, 3], 1);
  (model.config as Record<string, unknown>).eos_token_id = 2;
  const out = await generate(model, [[9]], { max_new_tokens: 5 });
  assert.deepEqual(out.newTokens, [[1, 2]]);
  assert.deepEqual(out.config.eos_token_id, 2);
  // max_new_tokens from generation_config.json; the user's option wins over it.
  const json = { max_new_tokens: 1, transformers_version: '4.44.0' };
  assert.deepEqual((await generate(model, [[9]], { generation_config: json })).newTokens, [[1]]);
  assert.deepEqual((await generate(model, [[9]], { generation_config: json, max_new_tokens: 5, eos_token_id: 3 })).newTokens, [[1, 2, 3]]);
  // HF: no max_new_tokens → max_length 20 counts the prompt.
  const long = scriptedModel(Array(30).fill(5), 4);
  assert.equal((await generate(long, [[1, 2, 3, 4]], {})).newTokens[0].length, 16);
});

test('min_new_tokens holds EOS back', async () => {
  // The table prefers EOS (0.6) at every step; min_new_tokens 3 forces three other tokens first.
  const model = new TableLM(4, () => logs([0.1, 0.3, 0.0, 0.6]), 3);
  const out = await generate(model, [[0]], { max_new_tokens: 10, min_new_tokens: 3, eos_token_id: 3 });
  assert.deepEqual(out.newTokens, [[1, 1, 1, 3]]);
});

test('sampling with num_return_sequences: k rows per prompt, grouped by prompt, reproducible', async () => {
  const model = new TableLM(4, () => logs([0.25, 0.25, 0.25, 0.25]));
  const before = tf.memory().numTensors;
  const out = await generate(model, [[1], [2, 2]], { do_sample: true, num_return_sequences: 3, max_new_tokens: 6, seed: 9 });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(out.sequences.length, 6);
  out.sequences.forEach((s, i) => assert.deepEqual(s.slice(0, i < 3 ? 1 : 2), i < 3 ? [1] : [2, 2]));
  assert.equal(new Set(out.newTokens.map((t) => t.join())).size, 6, 'samples should differ');
  const again = await generate(model, [[1], [2, 2]], { do_sample: true, num_return_sequences: 3, max_new_tokens: 6, seed: 9 });
  assert.deepEqual(again.newTokens, out.newTokens);
});

test('option errors surface from generate, naming the option', async () => {
  const model = new TableLM(50, () => Array(50).fill(-Math.log(50)));
  (model as unknown as { dims: () => unknown }).dims = () => ({ layers: 1, hidden: 1, heads: 1, kvHeads: 1, headDim: 1, vocab: 50, maxPositions: 16 });
  await assert.rejects(generate(model, [[1, 2]], { max_new_tokens: 15 }), /max_new_tokens \(15\)[\s\S]*context of 16/);
  await assert.rejects(generate(model, [[1]], { do_sample: true, top_p: 1.5 }), /top_p/);
  await assert.rejects(generate(model, [[1]], { temprature: 0.5 } as never), (e: unknown) => e instanceof ConfigError && /did you mean temperature/.test((e as Error).message));
  await assert.rejects(generate(model, [[1]], { conditional: { weight: 1 } }), (e: Error) => e instanceof ConfigError && /conditional must be \{classifier/.test(e.message));
  await assert.rejects(generate(model, [[1, 99]], {}), /prompt ids must be integers in \[0, 50\)/);
});

test('abort through generate: partial output, finishReason abort, nothing leaked', async () => {
  const model = scriptedModel(bytesOf('abcdefghijklmnop'), 1);
  const ctrl = new AbortController();
  const before = tf.memory().numTensors;
  let steps = 0;
  const out = await generate(model, [[65]], { tokenizer: tok, max_new_tokens: 16, signal: ctrl.signal, onStep: () => { if (++steps === 4) ctrl.abort(); } });
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(out.finishReason, ['abort']);
  assert.deepEqual(out.texts, ['abcd']);
});

test('num_beams > 1 dispatches to beam search', async () => {
  const model = new TableLM(4, (p) => (p.length >= 3 ? logs([0.1, 0.1, 0.1, 0.7]) : logs([0.4, 0.3, 0.2, 0.1])), 3);
  const before = tf.memory().numTensors;
  const out = await generate(model, [[0]], { num_beams: 3, num_return_sequences: 2, max_new_tokens: 4, eos_token_id: 3 });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(out.sequences.length, 2);
  assert.ok(out.sequenceScores && out.sequenceScores.length === 2);
  // The best complete sequence under the table: 0 0 EOS (log .4 + log .7 over 3 tokens, length_penalty 1).
  assert.deepEqual(out.newTokens[0], [0, 0, 3]);
});
