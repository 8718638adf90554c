/**
 * The RoBERTa tokenizer derived from a byte-level BPE: roberta-base's id layout, the same pieces as the
 * BPE it comes from (the reference is the original tokenizer), RoBERTa's templates and special-token
 * attributes as HF documents them, and byte-identical output for the same input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bpeTokenizerJson, countPieces, trainByteLevelBpe } from '../src/tokenizers/bpe_trainer.js';
import { tokenizerFromFiles } from '../src/tokenizers/auto.js';
import { AutoTokenizer } from '../src/tokenizers/files.js';
import { robertaTokenizerFromBpe, writeRobertaTokenizer } from './mlm_tokenizer.js';

const EOT = '<|endoftext|>';
const TEXT = 'the cat sat on the mat. the dog sat on the log, and the cat ran.';

function bpe() {
  return bpeTokenizerJson(trainByteLevelBpe(countPieces([TEXT, TEXT]), { vocabSize: 256 + 12 + 1, specialTokens: [EOT] }), [EOT]);
}

test('layout: <s> 0, <pad> 1, </s> 2, <unk> 3, the BPE tokens in order from 4, <mask> last; <|endoftext|> dropped', () => {
  const src = bpe();
  const { tokenizerJson } = robertaTokenizerFromBpe(src, { modelMaxLength: 128 });
  const vocab = (tokenizerJson.model as { vocab: Record<string, number> }).vocab;
  const old = (src.model as { vocab: Record<string, number> }).vocab;
  const n = Object.keys(old).length - 1;
  assert.deepEqual([vocab['<s>'], vocab['<pad>'], vocab['</s>'], vocab['<unk>'], vocab['<mask>']], [0, 1, 2, 3, n + 4]);
  assert.equal(vocab[EOT], undefined);
  for (const [t, id] of Object.entries(old)) if (t !== EOT) assert.equal(vocab[t], id + 4, t);
  assert.equal(Object.keys(vocab).length, n + 5);
});

test('encodes to the BPE\'s own pieces inside <s> … </s>, and pairs as <s> A </s></s> B </s> (HF RobertaTokenizer)', () => {
  const src = bpe();
  const gpt = tokenizerFromFiles({ tokenizerJson: src, tokenizerConfig: { tokenizer_class: 'GPT2Tokenizer' } });
  const f = robertaTokenizerFromBpe(src, { modelMaxLength: 128 });
  const tok = tokenizerFromFiles({ tokenizerJson: f.tokenizerJson, tokenizerConfig: f.tokenizerConfig, specialTokensMap: f.specialTokensMap });
  const text = 'the dog ran on the mat, and the cat sat.';
  assert.deepEqual(tok.encode(text).tokens, ['<s>', ...gpt.encode(text).tokens, '</s>']);
  assert.deepEqual(tok.encode('the cat', { pair: 'the dog' }).tokens, ['<s>', ...gpt.tokenize('the cat'), '</s>', '</s>', ...gpt.tokenize('the dog'), '</s>']);
  assert.equal(tok.decode(tok.encode(text).ids, { skipSpecialTokens: true }), text);
  assert.equal(tok.family, 'roberta');
  assert.deepEqual([tok.clsTokenId, tok.padTokenId, tok.sepTokenId, tok.unkTokenId, tok.bosTokenId, tok.eosTokenId], [0, 1, 2, 3, 0, 2]);
  assert.equal(tok.maskToken, '<mask>');
  assert.equal(tok.maskTokenId, tok.length - 1);
  assert.deepEqual([...tok.allSpecialIds].sort((a, b) => a - b), [0, 1, 2, 3, tok.length - 1]);
  // HF: RoBERTa's <mask> has lstrip=True, so the space before it belongs to the mask.
  const m = tok.encode('the <mask> sat');
  assert.deepEqual(m.tokens, ['<s>', 'the', '<mask>', ...gpt.tokenize(' sat'), '</s>']);
  assert.equal(m.tokenTypeIds, undefined, 'RoBERTa takes no token_type_ids');
});

test('writes the same bytes for the same input, and AutoTokenizer.fromPretrained loads the folder', async () => {
  const root = mkdtempSync(join(tmpdir(), 'makemost-mlmtok-'));
  mkdirSync(join(root, 'bpe'));
  writeFileSync(join(root, 'bpe', 'tokenizer.json'), JSON.stringify(bpe()));
  writeRobertaTokenizer(join(root, 'bpe'), join(root, 'a'), { modelMaxLength: 64 });
  writeRobertaTokenizer(join(root, 'bpe'), join(root, 'b'), { modelMaxLength: 64 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    assert.equal(readFileSync(join(root, 'a', f), 'utf8'), readFileSync(join(root, 'b', f), 'utf8'), f);
  }
  const tok = await AutoTokenizer.fromPretrained(join(root, 'a'));
  assert.equal(tok.modelMaxLength, 64);
  assert.equal(tok.maskTokenId, tok.length - 1);
  assert.equal(tok.padTokenId, 1);
});
