/**
 * Shared-prefix scoring against full recomputation: each candidate's per-token log-probabilities equal
 * those of one uncached forward pass over prefix + candidate (log-softmax by hand), for GPT-2 and
 * grouped-query Llama, with ragged candidates split over several batches; the prefix cache is left
 * untouched and no tensor leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { disposeAll } from '../backend/memory.js';
import { buildModel } from '../models/registry.js';
import type { CausalLM } from '../models/types.js';
import { continuationLogProbs } from './prefix_score.js';

await initBackend();

const configs: Record<string, unknown>[] = [
  { model_type: 'gpt2', vocab_size: 31, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.3 },
  { model_type: 'llama', vocab_size: 31, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, initializer_range: 0.3 },
];

/** log p of ids[from..] under one uncached forward pass over ids, by hand. */
function byHand(m: CausalLM, ids: number[], from: number, positionIds?: number[][]): number[] {
  const out = m.forward([ids], positionIds ? { positionIds } : {});
  const [, , V] = out.logits.shape as number[];
  const a = out.logits.dataSync();
  const res = ids.slice(from).map((y, i) => {
    const row = Array.from(a.subarray((from + i - 1) * V, (from + i) * V));
    const mx = Math.max(...row);
    return row[y] - (mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0)));
  });
  disposeAll(out);
  return res;
}

for (const cfg of configs) {
  test(`${String(cfg.model_type)}: ragged candidates against one cached prefix equal full recomputation`, async () => {
    const m = buildModel(cfg, 'causal-lm', 4).model as unknown as CausalLM;
    const prefixIds = [1, 5, 2, 9, 4, 6];
    const cands = [[7], [8, 9, 10], [], [11, 12], [3, 3, 3, 3], [30, 0]];
    const pre = m.forward([prefixIds]);
    const lastLogits = pre.logits.slice([0, 5, 0], [1, 1, -1]).reshape([1, -1]);
    const snapshot = pre.cache.map((l) => [Array.from(l.key.dataSync()), Array.from(l.value.dataSync())]);
    const prefix = { cache: pre.cache, lastLogits };
    await continuationLogProbs(m, prefix, cands, { batchSize: 4 }); // warm-up (backend kernels, caches)
    const before = tf.memory().numTensors;
    const got = await continuationLogProbs(m, prefix, cands, { batchSize: 4 });
    assert.equal(tf.memory().numTensors, before);
    cands.forEach((c, i) => {
      assert.equal(got[i].length, c.length);
      const want = byHand(m, [...prefixIds, ...c], prefixIds.length);
      got[i].forEach((x, t) => assert.ok(Math.abs(x - want[t]) < 1e-4, `candidate ${i} token ${t}: ${x} vs ${want[t]}`));
    });
    pre.cache.forEach((l, i) => {
      assert.deepEqual(Array.from(l.key.dataSync()), snapshot[i][0]);
      assert.deepEqual(Array.from(l.value.dataSync()), snapshot[i][1]);
    });
    disposeAll([pre, lastLogits]);
    m.dispose();
  });
}

test('an explicit start position is honoured (a prefix that did not start at position 0)', async () => {
  const m = buildModel(configs[0], 'causal-lm', 4).model as unknown as CausalLM;
  const prefixIds = [4, 4, 8];
  const pos = [[10, 11, 12]];
  const pre = m.forward([prefixIds], { positionIds: pos });
  const lastLogits = pre.logits.slice([0, 2, 0], [1, 1, -1]);
  const got = await continuationLogProbs(m, { cache: pre.cache, lastLogits, position: 13 }, [[2, 3]]);
  const want = byHand(m, [...prefixIds, 2, 3], 3, [[10, 11, 12, 13, 14]]);
  got[0].forEach((x, t) => assert.ok(Math.abs(x - want[t]) < 1e-4));
  disposeAll([pre, lastLogits]);
  m.dispose();
});
