/**
 * The shipped default masked LM (models/makemost-bert-tiny): it loads as a RobertaForMaskedLM, its
 * config follows RoBERTa's position rule, its tokenizer round-trips the held-out text and wraps it in
 * <s> … </s>, and its masked-token perplexity on heldout.txt beats an add-one-smoothed unigram baseline
 * by the margin the card states. The perplexity is computed here from the logits, one line at a time,
 * with the mask sets re-implemented from the rule in eval_results.json (not the training script's code).
 * The weights also load strictly by HF's names in the PyTorch reference of RobertaForMaskedLM
 * (test/support/reference.py) and give its logits on a padded batch of masked held-out lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { fromPretrained } from '../src/models/pretrained.js';
import type { EncoderModel } from '../src/models/types.js';
import { AutoTokenizer } from '../src/tokenizers/files.js';
import { runReference } from './support/torch_ref.js';

const DIR = join(process.cwd(), 'models', 'makemost-bert-tiny');

interface EvalResults { blockSize: number; heldout_margin: number; heldout_mask_sets: number; heldoutTokens: number; heldoutModelPpl: number; heldoutUnigramPpl: number }

const readJson = <T>(name: string): T => JSON.parse(readFileSync(join(DIR, name), 'utf8')) as T;

function heldoutLines(): string[] {
  return readFileSync(join(DIR, 'heldout.txt'), 'utf8').split('\n').filter(Boolean);
}

test('makemost-bert-tiny: RoBERTa config and tokenizer (<s> … </s>, <mask>, <pad> = padding_idx), round-trips the held-out text', async () => {
  const tok = await AutoTokenizer.fromPretrained(DIR);
  const cfg = readJson<Record<string, unknown>>('config.json');
  const card = readJson<EvalResults>('eval_results.json');
  assert.equal(cfg.model_type, 'roberta');
  assert.deepEqual(cfg.architectures, ['RobertaForMaskedLM']);
  assert.equal(cfg.vocab_size, tok.length);
  assert.equal(tok.convertIdsToTokens(tok.maskTokenId!), '<mask>');
  assert.equal(tok.convertIdsToTokens(tok.padTokenId!), '<pad>');
  assert.equal(cfg.pad_token_id, tok.padTokenId);
  // HF RoBERTa: positions run from padding_idx + 1, so T tokens need T + padding_idx + 1 rows.
  assert.equal(cfg.max_position_embeddings, card.blockSize + tok.padTokenId! + 1);
  const text = readFileSync(join(DIR, 'heldout.txt'), 'utf8');
  assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false }).ids), text);
  for (const line of heldoutLines()) {
    const e = tok.encode(line);
    assert.equal(e.tokens[0], '<s>');
    assert.equal(e.tokens[e.tokens.length - 1], '</s>');
    assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }), line);
  }
});

test('makemost-bert-tiny: loads, and its held-out masked-token perplexity beats the unigram baseline by the stated margin', async () => {
  await initBackend();
  const tok = await AutoTokenizer.fromPretrained(DIR);
  const model = (await fromPretrained(DIR, 'masked-lm')) as EncoderModel;
  try {
    const card = readJson<EvalResults>('eval_results.json');
    const { counts } = readJson<{ counts: number[] }>('unigram_counts.json');
    assert.equal(counts.length, model.dims().vocab);
    const total = counts.reduce((s, c) => s + c, 0) + counts.length;
    const special = new Set(tok.allSpecialIds);
    const maskId = tok.maskTokenId!;
    let nll = 0;
    let unigram = 0;
    let masked = 0;
    const before = tf.memory().numTensors;
    for (const [i, line] of heldoutLines().entries()) {
      const ids = tok.encode(line).ids;
      // The rule of eval_results/README: set of position t = SHA-256("i:t"), first 4 bytes big-endian, mod the number of sets;
      // each set is masked at once in its own pass, so every non-special token is scored once.
      const set = ids.map((id, t) => (special.has(id) ? -1 : createHash('sha256').update(`${i}:${t}`).digest().readUInt32BE(0) % card.heldout_mask_sets));
      for (let r = 0; r < card.heldout_mask_sets; r++) {
        const pos = set.flatMap((s, t) => (s === r ? [t] : []));
        if (!pos.length) continue;
        const input = ids.map((id, t) => (set[t] === r ? maskId : id));
        const logProbs = tf.tidy(() => tf.logSoftmax(model.forward([input]).logits!.squeeze([0])));
        const rows = (await logProbs.array()) as number[][];
        logProbs.dispose();
        for (const t of pos) {
          nll -= rows[t][ids[t]];
          unigram -= Math.log((counts[ids[t]] + 1) / total);
        }
        masked += pos.length;
      }
    }
    assert.equal(tf.memory().numTensors, before);
    assert.equal(masked, card.heldoutTokens, 'every non-special token is scored once, as on the card');
    const ppl = Math.exp(nll / masked);
    const unigramPpl = Math.exp(unigram / masked);
    assert.ok(Math.abs(ppl / card.heldoutModelPpl - 1) < 1e-3, `recomputed perplexity ${ppl} vs the card's ${card.heldoutModelPpl}`);
    assert.ok(Math.abs(unigramPpl / card.heldoutUnigramPpl - 1) < 1e-9);
    assert.ok(card.heldout_margin >= 1);
    assert.ok(ppl * card.heldout_margin <= unigramPpl, `held-out masked perplexity ${ppl.toFixed(2)} × margin ${card.heldout_margin} > unigram ${unigramPpl.toFixed(2)}`);
    const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
    assert.ok(readme.includes(`**${card.heldout_margin}×**`), 'the card states the margin the test uses');
  } finally {
    model.dispose();
  }
});

test('makemost-bert-tiny: HF RobertaForMaskedLM semantics (PyTorch reference) load it strictly and give the same logits', async () => {
  await initBackend();
  const tok = await AutoTokenizer.fromPretrained(DIR);
  const model = (await fromPretrained(DIR, 'masked-lm')) as EncoderModel;
  try {
    // Three held-out lines, every third token masked, right-padded with <pad> (RoBERTa's position ids skip it).
    const rows = heldoutLines().slice(0, 3).map((l) => tok.encode(l).ids.map((id, t) => (t % 3 === 1 && t < 40 ? tok.maskTokenId! : id)));
    const T = Math.max(...rows.map((r) => r.length));
    const ids = rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(tok.padTokenId!)]);
    const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(T - r.length).fill(0)]);
    const ref = await runReference(DIR, { input_ids: ids, attention_mask: mask });
    const ours = tf.tidy(() => model.forward(ids, { attentionMask: mask }).logits!);
    const got = (await ours.data()) as Float32Array;
    ours.dispose();
    const V = model.dims().vocab;
    assert.deepEqual(ref.logits!.shape, [ids.length, T, V]);
    let worst = 0;
    mask.forEach((r, b) => r.forEach((m, t) => {
      if (!m) return;
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(got[(b * T + t) * V + v] - ref.logits!.data[(b * T + t) * V + v]));
    }));
    assert.ok(worst <= 1e-4, `max |Δlogits| ${worst}`);
  } finally {
    model.dispose();
  }
});
