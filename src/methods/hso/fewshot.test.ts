/**
 * Few-shot classification: the prompt rendered and tokenized as written by hand; with no HSO steps, the
 * class scores equal direct scoring by a full forward pass over prompt + test input + label words;
 * contextual calibration equals dividing by p(label | "N/A") by hand; learning rate 0 changes nothing;
 * HSO steps lower the prompt's own loss (all tokens, or only the label words); no tensor leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { buildModel } from '../../models/registry.js';
import type { CausalLM } from '../../models/types.js';
import { classifyFewShot, fewShotFromText, optimisePrompt } from './fewshot.js';
import { encodeFewShot, splitTemplate, type PromptTokenizer } from './prompt.js';

await initBackend();

const V = 40;
const build = (type: 'gpt2' | 'llama') => buildModel(type === 'gpt2'
  ? { model_type: 'gpt2', vocab_size: V, n_positions: 64, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.3 }
  : { model_type: 'llama', vocab_size: V, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, initializer_range: 0.3 }, 'causal-lm', 6).model as unknown as CausalLM;

/** A GPT-2-like word tokenizer: a word keeps its leading space; ids handed out in order of first sight. */
function wordTokenizer(): PromptTokenizer & { vocab: Map<string, number> } {
  const vocab = new Map<string, number>([['<s>', 0]]);
  return {
    vocab,
    bosTokenId: 0,
    encode: (text: string) => ({ ids: (text.match(/\s*\S+|\s+/g) ?? []).map((w) => { if (!vocab.has(w)) vocab.set(w, vocab.size); return vocab.get(w)!; }) }),
  };
}

/** log p(ids[from..]) under one uncached forward pass over all of ids, by hand. */
function scoreByHand(m: CausalLM, ids: number[], from: number): number {
  const out = m.forward([ids]);
  const a = out.logits.dataSync();
  let s = 0;
  for (let t = from; t < ids.length; t++) {
    const row = Array.from(a.subarray((t - 1) * V, t * V));
    const mx = Math.max(...row);
    s += row[ids[t]] - (mx + Math.log(row.reduce((acc, x) => acc + Math.exp(x - mx), 0)));
  }
  disposeAll(out);
  return s;
}

test('the template is cut at {label}, the space before it joins the label, label tokens are marked', () => {
  assert.deepEqual(splitTemplate('Review: {text} Sentiment: {label}'), { prefix: 'Review: {text} Sentiment:', space: ' ', suffix: '' });
  assert.throws(() => splitTemplate('no label'), /exactly once/);
  const tok = wordTokenizer();
  const enc = encodeFewShot(tok, { template: 'Review: {text} Sentiment: {label}', labels: ['good', 'bad'] }, [{ text: 'nice film', label: 0 }, { text: 'dull', label: 1 }]);
  const id = (w: string) => tok.vocab.get(w)!;
  assert.deepEqual(enc.labelIds, [[id(' good')], [id(' bad')]]);
  assert.deepEqual(enc.prompt, [0, id('Review:'), id(' nice'), id(' film'), id(' Sentiment:'), id(' good'), id('\n'), id('Review:'), id(' dull'), id(' Sentiment:'), id(' bad'), id('\n')]);
  assert.deepEqual(enc.labelMask.flatMap((b, i) => (b ? [i] : [])), [5, 10]);
  assert.deepEqual(enc.query('great'), [id('Review:'), id(' great'), id(' Sentiment:')]);
  assert.throws(() => encodeFewShot(tok, { template: '{text} {label}', labels: ['a'] }, []), /at least 2 labels/);
  assert.throws(() => encodeFewShot(tok, { template: '{text} {label}', labels: ['a', 'b'] }, [{ text: 'x', label: 2 }]), /class index in \[0, 2\)/);
});

for (const type of ['gpt2', 'llama'] as const) {
  test(`${type}: no HSO steps equals direct label scoring by full forward passes; calibration by hand`, async () => {
    const m = build(type);
    const prompt = [1, 8, 9, 3, 21, 2, 8, 10, 4, 22, 2];
    const queries = [[8, 11], [8, 12, 13], [8, 14]];
    const labelIds = [[21], [22, 23]];
    const contentFree = [8, 30];
    const r = await classifyFewShot(m, prompt, queries, labelIds, { contentFree, batchSize: 3 });
    const direct = (q: number[]) => labelIds.map((l) => scoreByHand(m, [...prompt, ...q, ...l], prompt.length + q.length));
    const norm = (xs: number[]) => { const e = xs.map(Math.exp); const z = e[0] + e[1]; return e.map((x) => x / z); };
    const pcf = norm(direct(contentFree));
    queries.forEach((q, i) => {
      const want = direct(q);
      const p = r.predictions[i];
      p.logProbs.forEach((x, y) => assert.ok(Math.abs(x - want[y]) < 1e-4, `query ${i} label ${y}: ${x} vs ${want[y]}`));
      assert.equal(p.predicted, want[0] >= want[1] ? 0 : 1);
      const pw = norm(want);
      const cal = [pw[0] / pcf[0], pw[1] / pcf[1]];
      const q0 = cal[0] / (cal[0] + cal[1]);
      assert.ok(Math.abs(p.calibrated!.probs[0] - q0) < 1e-4, `calibrated p0 ${p.calibrated!.probs[0]} vs ${q0}`);
      assert.equal(p.calibrated!.predicted, q0 >= 0.5 ? 0 : 1);
    });
    assert.ok(Math.abs(r.contentFree![0] - pcf[0]) < 1e-4);
    m.dispose();
  });
}

test('HSO on the prompt: lr 0 changes nothing; steps lower the prompt loss (all tokens or label words only); no leak', async () => {
  const m = build('gpt2');
  const prompt = [1, 8, 9, 3, 21, 2, 8, 10, 4, 22, 2, 8, 9, 5, 21, 2];
  const labelMask = prompt.map((_, i) => i === 4 || i === 9 || i === 14);
  const queries = [[8, 11], [8, 12]];
  const labelIds = [[21], [22]];
  const base = await classifyFewShot(m, prompt, queries, labelIds);
  const before = tf.memory().numTensors;
  const zero = await classifyFewShot(m, prompt, queries, labelIds, { steps: 3, lr: 0 });
  assert.deepEqual(zero.predictions, base.predictions);
  assert.equal(tf.memory().numTensors, before);

  const all = await optimisePrompt(m, prompt, { steps: 5, lr: 0.05 });
  assert.equal(all.losses.length, 6);
  assert.ok(Math.abs(all.losses[0] - -scoreByHand(m, prompt, 1)) < 1e-3, 'step-0 loss is the prompt NLL');
  for (let i = 1; i < all.losses.length; i++) assert.ok(all.losses[i] < all.losses[i - 1], `losses ${all.losses.join(' ')}`);
  disposeAll([all.cache, all.lastLogits]);

  const labels = await optimisePrompt(m, prompt, { steps: 5, lr: 0.05, lossOn: 'labels', labelMask });
  const labelNll = -[4, 9, 14].reduce((s, t) => s + scoreByHand(m, prompt.slice(0, t + 1), t), 0);
  assert.ok(Math.abs(labels.losses[0] - labelNll) < 1e-3, `label-word loss ${labels.losses[0]} vs ${labelNll}`);
  assert.ok(labels.losses[5] < labels.losses[0]);
  disposeAll([labels.cache, labels.lastLogits]);

  const hso = await classifyFewShot(m, prompt, queries, labelIds, { steps: 5, lr: 0.05 });
  assert.notDeepEqual(hso.predictions.map((p) => p.logProbs), base.predictions.map((p) => p.logProbs));
  assert.equal(tf.memory().numTensors, before);
  await assert.rejects(optimisePrompt(m, prompt, { steps: 1, lossOn: 'labels' }), /needs the prompt's labelMask/);
  await assert.rejects(classifyFewShot(m, Array(62).fill(1), queries, labelIds), /exceeds the model's 64 positions/);
  m.dispose();
});

test('from text: accuracy is the share of predictions equal to the gold labels', async () => {
  const m = build('gpt2');
  const tok = wordTokenizer();
  const format = { template: 'Q: {text} A: {label}', labels: ['yes', 'no'] };
  const demos = [{ text: 'a b', label: 0 }, { text: 'c', label: 1 }];
  const tests = [{ text: 'a', label: 0 }, { text: 'b c', label: 1 }, { text: 'c c', label: 1 }];
  const r = await fewShotFromText(m, tok, format, demos, tests, { contentFree: 'N/A' });
  const hits = r.predictions.filter((p, i) => p.predicted === tests[i].label).length;
  assert.equal(r.accuracy, hits / 3);
  assert.equal(r.calibratedAccuracy, r.predictions.filter((p, i) => p.calibrated!.predicted === tests[i].label).length / 3);
  assert.ok(tok.vocab.size < V);
  m.dispose();
});
