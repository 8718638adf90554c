/**
 * PreTrainedTokenizer over a small hand-written tokenizer.json (byte-level BPE with a BOS template):
 * special tokens as HF resolves them, truncation that keeps the special tokens, left/right padding with
 * attention masks, and the errors. Expected ids are worked out by hand from the vocab and merges below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, ShapeError } from '../errors.js';
import { PreTrainedTokenizer, type TokenizerSources } from './tokenizer.js';

// Merges by rank: (a,b) 0, (Ġ,ab) 1, (ab,c) 2.
//   "ab"  → a b → ab                       → [5]
//   " abc" → Ġ a b c → Ġ ab c (rank 0) → Ġab c (rank 1 beats rank 2) → [6, 3]
const tokenizerJson = {
  version: '1.0',
  added_tokens: [
    { id: 0, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } },
  },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false,
    vocab: { '<s>': 0, '</s>': 1, a: 2, b: 3, c: 4, ab: 5, 'Ġab': 6, 'Ġ': 7, '<pad>': 8 },
    merges: [['a', 'b'], ['Ġ', 'ab'], ['ab', 'c']],
  },
};

const config = {
  tokenizer_class: 'PreTrainedTokenizerFast',
  bos_token: '<s>',
  eos_token: { content: '</s>', lstrip: false, rstrip: false, normalized: false, single_word: false },
  model_max_length: 6,
  model_input_names: ['input_ids', 'attention_mask'],
};

const make = (extra: Partial<TokenizerSources> = {}): PreTrainedTokenizer =>
  new PreTrainedTokenizer({ tokenizerJson, tokenizerConfig: config, ...extra });

test('encode: BPE by rank, BOS from the template, decode with and without special tokens', () => {
  const tok = make();
  const e = tok.encode('ab abc');
  assert.deepEqual(e.tokens, ['<s>', 'ab', 'Ġab', 'c']);
  assert.deepEqual(e.ids, [0, 5, 6, 4]);
  assert.deepEqual(e.attentionMask, [1, 1, 1, 1]);
  assert.equal(e.tokenTypeIds, undefined);
  assert.deepEqual(tok.encode('ab abc', { addSpecialTokens: false }).ids, [5, 6, 4]);
  assert.deepEqual(tok.encode('ab', { pair: ' ab', returnTokenTypeIds: true }),
    { ids: [0, 5, 0, 6], tokens: ['<s>', 'ab', '<s>', 'Ġab'], attentionMask: [1, 1, 1, 1], tokenTypeIds: [0, 0, 1, 1] });
  assert.equal(tok.decode(e.ids), '<s>ab abc');
  assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }), 'ab abc');
  assert.equal(tok.decode([]), '');
  assert.deepEqual(tok.batchDecode([[5], Int32Array.from([6, 4])]), ['ab', ' abc']);
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.unkTokenId], [0, 1, undefined, undefined]);
  assert.deepEqual(tok.allSpecialIds, [0, 1]);
  assert.equal(tok.modelMaxLength, 6);
  assert.equal(tok.paddingSide, 'right');
  assert.deepEqual(tok.convertIdsToTokens([6, 4]), ['Ġab', 'c']);
  assert.equal(tok.convertTokensToIds('Ġab'), 6);
});

test('truncation keeps room for the special tokens; maxLength alone turns it on; left side', () => {
  const tok = make();
  // "ab ab ab ab ab ab" → ab + 5 × Ġab = 6 tokens; with <s> that is 7 > model_max_length 6.
  const text = 'ab ab ab ab ab ab';
  assert.deepEqual(tok.encode(text).ids.length, 7, 'no truncation unless asked');
  assert.deepEqual(tok.encode(text, { truncation: true }).ids, [0, 5, 6, 6, 6, 6]);
  assert.deepEqual(tok.encode(text, { maxLength: 3 }).ids, [0, 5, 6]);
  assert.deepEqual(tok.encode(text, { maxLength: 3, addSpecialTokens: false }).ids, [5, 6, 6]);
  // Pair template adds 2; maxLength 5 leaves 3 for 4 + 1 tokens: the short one keeps its 1, the long one 2.
  assert.deepEqual(tok.encode('ab ab ab ab', { pair: 'c', maxLength: 5 }).ids, [0, 5, 6, 0, 4]);
  tok.truncationSide = 'left';
  assert.deepEqual(tok.encode('c ab', { maxLength: 2 }).ids, [0, 6]);
  assert.throws(() => tok.encode('ab', { maxLength: 0 }), ShapeError);
});

test('padding with no pad token: clear error; after padToken = eosToken, right and left padding', () => {
  const tok = make();
  assert.throws(() => tok.batchEncode(['ab', 'ab abc'], { padding: true }),
    (e: unknown) => e instanceof ConfigError && /no pad token/.test(e.message) && /padToken = tokenizer\.eosToken/.test(e.message));
  assert.throws(() => { tok.padToken = '<nope>'; }, ConfigError);
  tok.padToken = tok.eosToken;
  assert.equal(tok.padTokenId, 1);
  assert.deepEqual(tok.batchEncode(['ab', 'ab abc'], { padding: 'longest' }), {
    inputIds: [[0, 5, 1, 1], [0, 5, 6, 4]],
    attentionMask: [[1, 1, 0, 0], [1, 1, 1, 1]],
  });
  assert.deepEqual(tok.batchEncode(['ab', 'ab abc'], { padding: true, paddingSide: 'left', returnTokenTypeIds: true }), {
    inputIds: [[1, 1, 0, 5], [0, 5, 6, 4]],
    attentionMask: [[0, 0, 1, 1], [1, 1, 1, 1]],
    tokenTypeIds: [[0, 0, 0, 0], [0, 0, 0, 0]],
  });
  // 'max_length' pads to model_max_length (6) and, with truncation, cuts longer rows to it.
  assert.deepEqual(tok.batchEncode(['ab', 'ab ab ab ab ab ab'], { padding: 'max_length', truncation: true }).inputIds,
    [[0, 5, 1, 1, 1, 1], [0, 5, 6, 6, 6, 6]]);
  assert.deepEqual(tok.batchEncode(['ab'], { padding: 'max_length', maxLength: 3 }).attentionMask, [[1, 1, 0]]);
  assert.throws(() => tok.batchEncode(['ab'], { padding: 'longest', maxLength: 3 }), ConfigError);
  const withOption = make({ tokenizerConfig: { ...config, pad_token: '<pad>', padding_side: 'left' } });
  assert.equal(withOption.paddingSide, 'left');
  assert.deepEqual(withOption.batchEncode(['ab', 'ab abc'], { padding: true }).inputIds, [[8, 8, 0, 5], [0, 5, 6, 4]]);
});

test('special tokens: class defaults, tokenizer_config, special_tokens_map precedence, new ids', () => {
  // special_tokens_map overrides tokenizer_config (HF's legacy branch)…
  const mapped = make({ specialTokensMap: { pad_token: '<pad>', bos_token: { content: '</s>' } } });
  assert.deepEqual([mapped.padTokenId, mapped.bosTokenId], [8, 1]);
  // …unless tokenizer_config has added_tokens_decoder, in which case HF ignores the map.
  const modern = make({
    tokenizerConfig: { ...config, added_tokens_decoder: { 0: { content: '<s>', special: true } } },
    specialTokensMap: { bos_token: '</s>' },
  });
  assert.equal(modern.bosTokenId, 0);
  // A special token the vocab lacks becomes an added token with the next id (vocab size 9 → id 9).
  const extra = make({ tokenizerConfig: { ...config, additional_special_tokens: ['<sep>'] } });
  assert.equal(extra.convertTokensToIds('<sep>'), 9);
  assert.deepEqual([extra.vocabSize, extra.length], [9, 10]);
  assert.deepEqual(extra.encode('ab<sep>ab').ids, [0, 5, 9, 5]);
  assert.equal(extra.decode([5, 9, 5], { skipSpecialTokens: true }), 'abab');
  // No tokenizer_class: config.json's model_type picks GPT-2's defaults (bos = eos = unk = <|endoftext|>).
  const { tokenizer_class: _omit, ...noClass } = config;
  const gpt2 = new PreTrainedTokenizer({ tokenizerJson, tokenizerConfig: { model_max_length: 6 }, modelConfig: { model_type: 'gpt2' } });
  assert.equal(gpt2.family, 'gpt2');
  assert.equal(gpt2.eosToken, '<|endoftext|>');
  assert.equal(gpt2.eosTokenId, 9, 'appended, since the vocab lacks it');
  assert.equal(make({ tokenizerConfig: noClass }).family, 'generic');
});

test('bad input and bad files give errors that say what and where', () => {
  const tok = make();
  assert.throws(() => tok.decode([1.5]), ShapeError);
  assert.throws(() => tok.decode([-1]), ShapeError);
  assert.equal(tok.decode([5, 999]), 'ab', 'ids outside the vocabulary are dropped, as HF tokenizers does');
  assert.throws(() => tok.convertIdsToTokens(999), ShapeError);
  assert.throws(() => tok.convertTokensToIds('zzz'), (e: unknown) => e instanceof ConfigError && /no unk token/.test(e.message));
  assert.throws(() => tok.batchEncode(['ab'], { pairs: [] }), ShapeError);
  assert.throws(() => new PreTrainedTokenizer({ tokenizerJson: { vocab: {} } }),
    (e: unknown) => e instanceof ConfigError && /"model"/.test(e.message));
  assert.throws(() => make({ tokenizerConfig: { ...config, padding_side: 'up' } }), /padding_side/);
  const noMax = make({ tokenizerConfig: { ...config, model_max_length: 1e30 } });
  assert.equal(noMax.modelMaxLength, Infinity);
  assert.throws(() => noMax.encode('ab', { truncation: true }), (e: unknown) => e instanceof ConfigError && /maxLength/.test(e.message));
});

test('tokenizer_config options the fast classes apply: Llama BOS/EOS template, GPT-2 add_prefix_space', () => {
  // LlamaTokenizerFast.update_post_processor: "<s>:0 $A:0 </s>:0", pair adds "<s>:1 $B:1 </s>:1".
  const llama = make({ tokenizerConfig: { ...config, tokenizer_class: 'LlamaTokenizerFast', add_eos_token: true } });
  assert.deepEqual(llama.encode('ab').ids, [0, 5, 1]);
  assert.deepEqual(llama.encode('ab', { pair: 'c', returnTokenTypeIds: true }).tokenTypeIds, [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(llama.encode('ab', { pair: 'c' }).ids, [0, 5, 1, 0, 4, 1]);
  // add_prefix_space: "ab" is read as " ab" → Ġab.
  const gpt2 = make({ tokenizerConfig: { ...config, tokenizer_class: 'GPT2TokenizerFast', add_prefix_space: true } });
  assert.deepEqual(gpt2.encode('ab', { addSpecialTokens: false }).ids, [6]);
});
