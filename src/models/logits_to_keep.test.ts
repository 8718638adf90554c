/**
 * `logitsToKeep` (HF's `logits_to_keep`) on GPT-2 and Llama: the kept logits are the last rows of the full
 * forward pass (to float rounding: a head over fewer rows may take another GEMM path), with and without a
 * cache and padding, and the cache is unchanged; 0 and more than T keep every row; bad
 * values are refused; generation's prefill asks for one row.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, liveTensors } from '../backend/index.js';
import { disposeAll } from '../backend/memory.js';
import { ShapeError } from '../errors.js';
import { prefill } from '../generation/state.js';
import { parseGPT2Config } from './gpt2/config.js';
import { GPT2LMHeadModel } from './gpt2/model.js';
import { parseLlamaConfig } from './llama/config.js';
import { LlamaForCausalLM } from './llama/model.js';
import type { CausalLM, DecoderForwardOptions, Ids } from './types.js';

await initBackend();

const models: [string, () => CausalLM][] = [
  ['gpt2', () => new GPT2LMHeadModel(parseGPT2Config({ model_type: 'gpt2', vocab_size: 41, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, initializer_range: 0.2 }), 5)],
  ['llama', () => new LlamaForCausalLM(parseLlamaConfig({ model_type: 'llama', vocab_size: 41, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, initializer_range: 0.2, tie_word_embeddings: false }), 5)],
];

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= 1e-5 * (1 + Math.abs(expected[i])), `${what}: [${i}] ${actual[i]} vs ${expected[i]}`);
}

/** Rows [T - n, T) of [B, T, V] logits, as one flat array. */
function lastRows(logits: Float32Array, B: number, T: number, V: number, n: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) out.push(...logits.subarray((b * T + T - n) * V, (b * T + T) * V));
  return out;
}

for (const [name, make] of models) {
  test(`${name}: logitsToKeep keeps the last rows of the full logits, with padding and a cache`, () => {
    const m = make();
    const V = m.dims().vocab;
    const ids = [[0, 3, 4, 5, 6], [7, 8, 9, 10, 11]];
    const mask = [[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]];
    const full = m.forward(ids, { attentionMask: mask });
    const all = full.logits.dataSync() as Float32Array;
    for (const [keep, rows] of [[1, 1], [3, 3], [5, 5], [9, 5], [0, 5]]) {
      const out = m.forward(ids, { attentionMask: mask, logitsToKeep: keep });
      assert.deepEqual(out.logits.shape, [2, rows, V], `keep ${keep}`);
      assertClose(out.logits.dataSync(), lastRows(all, 2, 5, V, rows), `keep ${keep}`);
      // The cache is the whole prompt's whatever the head kept.
      assert.deepEqual(out.cache[1].value.dataSync(), full.cache[1].value.dataSync());
      disposeAll(out);
    }
    const before = liveTensors();
    const step = m.forward([[12, 13], [14, 15]], { cache: full.cache, attentionMask: mask.map((r) => [...r, 1, 1]), logitsToKeep: 1 });
    const stepFull = m.forward([[12, 13], [14, 15]], { cache: full.cache, attentionMask: mask.map((r) => [...r, 1, 1]) });
    assertClose(step.logits.dataSync(), lastRows(stepFull.logits.dataSync() as Float32Array, 2, 2, V, 1), 'cached step');
    disposeAll([step, stepFull]);
    assert.equal(liveTensors(), before);
    for (const bad of [-1, 1.5, Number.NaN]) assert.throws(() => m.forward(ids, { logitsToKeep: bad }), ShapeError);
    disposeAll(full);
  });

  test(`${name}: generation's prefill asks the model for the last position's logits only`, () => {
    const m = make();
    const seen: (number | undefined)[] = [];
    const forward = m.forward.bind(m);
    m.forward = (ids: Ids, opts?: DecoderForwardOptions) => {
      seen.push(opts?.logitsToKeep);
      return forward(ids, opts);
    };
    const state = prefill(m, [[3, 4, 5], [6, 7]]);
    // The same left-padded batch prefill builds (pad id 0, positions counting real tokens), all logits kept.
    const reference = forward([[3, 4, 5], [0, 6, 7]], { attentionMask: [[1, 1, 1], [0, 1, 1]], positionIds: [[0, 1, 2], [0, 0, 1]] });
    assert.deepEqual(seen, [1]);
    assertClose(state.logits.dataSync(), lastRows(reference.logits.dataSync() as Float32Array, 2, 3, m.dims().vocab, 1), 'prefill');
    disposeAll([state.logits, state.cache, reference]);
  });
}
