/**
 * Legacy files → tokenizer: expected ids worked out by hand from the algorithms (GPT-2's byte-to-unicode
 * table, BPE merges by rank, WordPiece greedy longest-match-first), and the conversion checked against
 * a hand-written tokenizer.json of the same tokenizer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../errors.js';
import { tokenizerFromFiles } from './auto.js';
import { parseMergesTxt, parseVocabTxt } from './legacy.js';

// GPT-2's byte → symbol table, written from its definition: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100 onwards in byte order. The vocab lists the 256 symbols in GPT-2's order
// (printable ones first), so e.g. "!" = 0, "h" = 71 and "Ġ" (space) = 220 as in the real GPT-2 vocab.
function byteVocab(): Record<string, number> {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const symbols = printable.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) symbols.push(String.fromCharCode(256 + n++));
  return Object.fromEntries(symbols.map((s, i) => [s, i]));
}

const MERGES = ['t h', 'th e', 'Ġ c', 'a t', 'Ġc at', 'h a'];
const MERGED = ['th', 'the', 'Ġc', 'at', 'Ġcat', 'ha']; // ids 256..261
const mergesTxt = `#version: 0.2\n${MERGES.join('\n')}\n`;
function gpt2Vocab(): Record<string, number> {
  const vocab = byteVocab();
  MERGED.forEach((t, i) => { vocab[t] = 256 + i; });
  vocab['<|endoftext|>'] = 262;
  return vocab;
}

test('merges.txt and vocab.txt parsing', () => {
  assert.deepEqual(parseMergesTxt('#version: 0.2\r\na b\r\nab c\n'), [['a', 'b'], ['ab', 'c']]);
  assert.throws(() => parseMergesTxt('#version: 0.2\na b c\n'), (e: unknown) =>
    e instanceof ConfigError && /line 2/.test(e.message));
  assert.deepEqual(parseVocabTxt('[PAD]\r\n[UNK]\nthe\n'), { '[PAD]': 0, '[UNK]': 1, the: 2 });
});

test('byte-level BPE from vocab.json + merges.txt: merges applied by rank, Ġ for spaces', () => {
  const tok = tokenizerFromFiles({ vocabJson: gpt2Vocab(), mergesTxt });
  // "the": t h e → (t,h) rank 0 → th e → (th,e) rank 1 → the.
  // " cat" → Ġcat: (Ġ,c) rank 2 → Ġc a t → (a,t) rank 3 → Ġc at → (Ġc,at) rank 4 → Ġcat.
  // " hat" → Ġ h a t: (h,a) rank 5 loses to (a,t) rank 3 → Ġ h at; no rule for (Ġ,h) or (h,at).
  const e = tok.encode('the cat hat');
  assert.deepEqual(e.tokens, ['the', 'Ġcat', 'Ġ', 'h', 'at']);
  assert.deepEqual(e.ids, [257, 260, 220, 71, 259]);
  assert.deepEqual(e.attentionMask, [1, 1, 1, 1, 1]);
  assert.equal(e.tokenTypeIds, undefined, 'GPT-2 does not take token_type_ids');
  // é = C3 A9 → "Ã" (byte 195 → id 106 + 21) and "©" (byte 169 → id 94 + 8); no merge joins them.
  assert.deepEqual(tok.encode('é').ids, [127, 102]);
  // GPT2Tokenizer defaults: bos = eos = unk = <|endoftext|>, no pad.
  assert.equal(tok.eosToken, '<|endoftext|>');
  assert.equal(tok.eosTokenId, 262);
  assert.equal(tok.bosTokenId, 262);
  assert.equal(tok.padTokenId, undefined);
  assert.deepEqual(tok.allSpecialIds, [262]);
  assert.equal(tok.vocabSize, 263);
  // The special token is matched whole inside text.
  assert.deepEqual(tok.encode('the<|endoftext|>').ids, [257, 262]);
});

test('byte-level decode(encode(x)) round-trips, including non-ASCII and emoji', () => {
  const tok = tokenizerFromFiles({ vocabJson: gpt2Vocab(), mergesTxt });
  for (const text of ['Héllo wörld 😀 — naïve café !', '  two  spaces\nnew line\t', '日本語 ok?', '']) {
    assert.equal(tok.decode(tok.encode(text).ids), text);
  }
  const ids = tok.encode('the cat<|endoftext|>').ids;
  assert.equal(tok.decode(ids), 'the cat<|endoftext|>');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'the cat');
});

test('vocab.json + merges.txt gives the same ids as the equivalent hand-written tokenizer.json', () => {
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0',
    added_tokens: [{ id: 262, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
      normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, vocab: gpt2Vocab(), merges: MERGES },
  };
  const fromJson = tokenizerFromFiles({ tokenizerJson, config: { model_type: 'gpt2' } });
  const fromLegacy = tokenizerFromFiles({ vocabJson: gpt2Vocab(), mergesTxt, config: { model_type: 'gpt2' } });
  for (const text of ['the cat hat', 'Héllo 😀!', 'that the<|endoftext|>cat', ' leading space']) {
    assert.deepEqual(fromLegacy.encode(text), fromJson.encode(text), text);
  }
  assert.deepEqual(fromLegacy.encode('the', { pair: ' cat', returnTokenTypeIds: true }),
    fromJson.encode('the', { pair: ' cat', returnTokenTypeIds: true }));
  assert.deepEqual(fromLegacy.encode('the', { pair: ' cat', returnTokenTypeIds: true }),
    { ids: [257, 260], tokens: ['the', 'Ġcat'], attentionMask: [1, 1], tokenTypeIds: [0, 1] });
});

test('RoBERTa legacy: <s> A </s></s> B </s>, all token types 0, <mask> swallows the space before it', () => {
  const vocab = gpt2Vocab();
  ['<s>', '<pad>', '</s>', '<unk>', '<mask>'].forEach((t, i) => { vocab[t] = 263 + i; });
  const tok = tokenizerFromFiles({ vocabJson: vocab, mergesTxt, tokenizerConfig: { tokenizer_class: 'RobertaTokenizer' } });
  assert.deepEqual([tok.clsTokenId, tok.sepTokenId, tok.padTokenId, tok.maskTokenId], [263, 265, 264, 267]);
  const e = tok.encode('the', { pair: 'the cat', returnTokenTypeIds: true });
  assert.deepEqual(e.ids, [263, 257, 265, 265, 257, 260, 265]);
  assert.deepEqual(e.tokenTypeIds, [0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(tok.encode('the <mask>').tokens, ['<s>', 'the', '<mask>', '</s>']);
  assert.equal(tok.numSpecialTokensToAdd(true), 4);
});

const BERT_VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'un', '##a', '##aff', '##able', 'the', 'cat', ',', 'a'];

test('WordPiece from vocab.txt: greedy longest-match-first, lowercase and accents, [UNK]', () => {
  const tok = tokenizerFromFiles({ vocabTxt: `${BERT_VOCAB.join('\n')}\n` });
  // "unaffable": longest prefix in vocab is "un"; of "##affable", "##affabl", … the first hit is "##aff"
  // (not "##a"); then "##able".
  assert.deepEqual(tok.tokenize('unaffable'), ['un', '##aff', '##able']);
  // do_lower_case defaults to true, and then accents are stripped: "ÜnAffable" → "unaffable".
  assert.deepEqual(tok.tokenize('ÜnAffable, the'), ['un', '##aff', '##able', ',', 'the']);
  assert.deepEqual(tok.tokenize('cats'), ['[UNK]'], 'no split of "cats" exists, so the word is [UNK]');
  assert.deepEqual(tok.convertTokensToIds(['cat', 'dog']), [10, 1]);
  const cased = tokenizerFromFiles({ vocabTxt: BERT_VOCAB.join('\n'), tokenizerConfig: { do_lower_case: false } });
  assert.deepEqual(cased.tokenize('The cat'), ['[UNK]', 'cat']);
});

test('vocab.txt: [CLS] A [SEP] B [SEP] with token type ids, truncation longest-first, decode', () => {
  const tok = tokenizerFromFiles({ vocabTxt: BERT_VOCAB.join('\n') });
  const e = tok.encode('the cat', { pair: 'unaffable' });
  assert.deepEqual(e.tokens, ['[CLS]', 'the', 'cat', '[SEP]', 'un', '##aff', '##able', '[SEP]']);
  assert.deepEqual(e.ids, [2, 9, 10, 3, 5, 7, 8, 3]);
  assert.deepEqual(e.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1, 1]);
  assert.deepEqual(tok.encode('cat').tokenTypeIds, [0, 0, 0]);
  // Texts of 2 and 3 tokens, 3 special tokens. maxLength 7 leaves 4: the shorter keeps its 2 and the
  // longer gets max(2, 4 - 2) = 2. maxLength 6 leaves 3: 2 + max(2, 1) > 3, so both get half, the
  // second one the odd token: 1 and 2.
  assert.deepEqual(tok.encode('the cat', { pair: 'unaffable', maxLength: 7 }).tokens,
    ['[CLS]', 'the', 'cat', '[SEP]', 'un', '##aff', '[SEP]']);
  assert.deepEqual(tok.encode('the cat', { pair: 'unaffable', maxLength: 6 }).tokens,
    ['[CLS]', 'the', '[SEP]', 'un', '##aff', '[SEP]']);
  assert.equal(tok.decode(e.ids), '[CLS] the cat [SEP] unaffable [SEP]');
  assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }), 'the cat unaffable');
  assert.deepEqual([tok.clsTokenId, tok.sepTokenId, tok.padTokenId, tok.maskTokenId, tok.unkTokenId], [2, 3, 0, 4, 1]);
});
