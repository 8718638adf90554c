import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyMerges, bpeTokenizerJson, byteLevelPieces, countPieces, trainByteLevelBpe } from './bpe_trainer.js';
import { tokenizerFromFiles } from './auto.js';

const EOT = '<|endoftext|>';

test('byte-level pieces follow GPT-2: space joins the next word as Ġ, bytes above 127 become stand-ins', () => {
  assert.deepEqual(byteLevelPieces("ab ab, it's"), ['ab', 'Ġab', ',', 'Ġit', "'s"]);
  // é is the bytes C3 A9, which GPT-2's table maps to 'Ã' and '©'.
  assert.deepEqual(byteLevelPieces('é'), ['Ã©']);
});

test('training merges the most frequent pair first (hand-computed case)', () => {
  // Pieces: ab ×1, Ġab ×2, Ġabc ×1. Pairs: (a,b) 4, (Ġ,a) 3, (b,c) 1 -> merge a+b;
  // then (Ġ,ab) 3, (ab,c) 1 -> Ġ+ab; then (Ġab,c) 1, below min frequency 2 -> stop unless allowed.
  const counts = countPieces(['ab ab ab abc']);
  const m = trainByteLevelBpe(counts, { vocabSize: 256 + 3 + 1, specialTokens: [EOT], minFrequency: 1 });
  assert.deepEqual(m.merges, [['a', 'b'], ['Ġ', 'ab'], ['Ġab', 'c']]);
  assert.equal(m.vocab.ab, 256);
  assert.equal(m.vocab['Ġab'], 257);
  assert.equal(m.vocab['Ġabc'], 258);
  assert.equal(m.vocab[EOT], 259);
  const m2 = trainByteLevelBpe(counts, { vocabSize: 1000, specialTokens: [EOT] });
  assert.deepEqual(m2.merges, [['a', 'b'], ['Ġ', 'ab']], 'min frequency 2 stops before the single (Ġab, c)');
});

test('ties go to the pair whose strings sort first', () => {
  // (x,y) and (a,b) both occur twice; (a,b) sorts first.
  const m = trainByteLevelBpe(countPieces(['xy ab xy ab'].flatMap((t) => t.split(' '))), { vocabSize: 257 });
  assert.deepEqual(m.merges, [['a', 'b']]);
});

test('the written tokenizer.json loads in @huggingface/tokenizers, encodes as the merges applied by hand, and round-trips', () => {
  const texts = ['the cat sat on the mat', 'the hat that the cat had', 'a theme: then, there!'];
  const m = trainByteLevelBpe(countPieces(texts), { vocabSize: 300, specialTokens: [EOT] });
  const tok = tokenizerFromFiles({ tokenizerJson: bpeTokenizerJson(m, [EOT]), tokenizerConfig: { tokenizer_class: 'GPT2Tokenizer', eos_token: EOT, bos_token: EOT } });
  const text = 'the cat that sat';
  const byHand = byteLevelPieces(text).flatMap((p) => applyMerges(p, m.merges)).map((t) => m.vocab[t]);
  assert.deepEqual(tok.encode(text).ids, byHand);
  // And by hand from the hand-computed merges of the first test: "ab abc ab" -> ab, Ġabc, Ġab.
  const small = trainByteLevelBpe(countPieces(['ab ab ab abc']), { vocabSize: 260, specialTokens: [EOT], minFrequency: 1 });
  const tokSmall = tokenizerFromFiles({ tokenizerJson: bpeTokenizerJson(small, [EOT]), tokenizerConfig: { tokenizer_class: 'GPT2Tokenizer', eos_token: EOT } });
  assert.deepEqual(tokSmall.encode('ab abc ab').ids, [256, 258, 257]);
  assert.equal(tokSmall.eosTokenId, 259);
  for (const t of ['Über café — naïve\n\t  x', 'unseen words 123', '']) assert.equal(tok.decode(tok.encode(t).ids), t);
});
