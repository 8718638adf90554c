/**
 * The shipped default model (models/makemost-gpt-tiny): it loads, its tokenizer round-trips the held-out
 * text, and its held-out perplexity beats an add-one-smoothed unigram baseline (computed here from the
 * shipped training counts) by the margin its model card states.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { fromPretrained } from '../src/models/pretrained.js';
import type { CausalLM } from '../src/models/types.js';
import { AutoTokenizer } from '../src/tokenizers/files.js';
import { slidingWindowPerplexity } from '../src/training/eval.js';

const DIR = join(process.cwd(), 'models', 'makemost-gpt-tiny');

function heldoutLines(): string[] {
  return readFileSync(join(DIR, 'heldout.txt'), 'utf8').split('\n').filter(Boolean);
}

test('makemost-gpt-tiny: the tokenizer round-trips the held-out text and ends documents with <|endoftext|>', async () => {
  const tok = await AutoTokenizer.fromPretrained(DIR);
  const text = readFileSync(join(DIR, 'heldout.txt'), 'utf8');
  assert.equal(tok.decode(tok.encode(text).ids), text);
  for (const line of heldoutLines()) assert.equal(tok.decode(tok.encode(line).ids), line);
  const gen = JSON.parse(readFileSync(join(DIR, 'generation_config.json'), 'utf8')) as Record<string, number>;
  assert.equal(tok.eosTokenId, gen.eos_token_id);
  assert.equal(tok.convertIdsToTokens(gen.eos_token_id), '<|endoftext|>');
});

test('makemost-gpt-tiny: loads, and beats the unigram baseline on held-out text by the stated margin', async () => {
  await initBackend();
  const tok = await AutoTokenizer.fromPretrained(DIR);
  const model = (await fromPretrained(DIR, 'causal-lm')) as CausalLM;
  try {
    const card = JSON.parse(readFileSync(join(DIR, 'eval_results.json'), 'utf8')) as { heldout_margin: number; blockSize: number };
    const eos = tok.eosTokenId!;
    const ids = heldoutLines().flatMap((l) => [...tok.encode(l).ids, eos]);
    const before = tf.memory().numTensors;
    const r = await slidingWindowPerplexity(model, ids, { maxLength: card.blockSize, stride: card.blockSize / 2 });
    assert.equal(tf.memory().numTensors, before);
    // Baseline: p(t) = (count(t) + 1) / (N + V) over every scored token (all but the first).
    const { counts } = JSON.parse(readFileSync(join(DIR, 'unigram_counts.json'), 'utf8')) as { counts: number[] };
    assert.equal(counts.length, model.dims().vocab);
    const total = counts.reduce((s, c) => s + c, 0) + counts.length;
    const targets = ids.slice(1);
    assert.equal(r.tokens, targets.length);
    const unigramPpl = Math.exp(-targets.reduce((s, t) => s + Math.log((counts[t] + 1) / total), 0) / targets.length);
    assert.ok(card.heldout_margin >= 1);
    assert.ok(r.perplexity * card.heldout_margin <= unigramPpl, `held-out perplexity ${r.perplexity.toFixed(2)} × margin ${card.heldout_margin} > unigram ${unigramPpl.toFixed(2)}`);
    const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
    assert.ok(readme.includes(`**${card.heldout_margin}×**`), 'the card states the margin the test uses');
  } finally {
    model.dispose();
  }
});
