/**
 * AutoTokenizer.fromPretrained over folders written in the test: tokenizer.json preferred, legacy
 * GPT-2 / RoBERTa / BERT folders converted (class from tokenizer_config.json or config.json), and the
 * errors for folders without a tokenizer. Expected ids are worked out by hand from the small vocabularies.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { AutoTokenizer } from './files.js';

const root = await mkdtemp(join(tmpdir(), 'makemost-tok-'));
after(() => rm(root, { recursive: true, force: true }));
let count = 0;

async function folder(files: Record<string, unknown>): Promise<string> {
  const dir = join(root, `f${count++}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

// A byte-level vocab covering only the symbols used here (letters and "Ġ" = space), plus merges.
const BPE_VOCAB = { '<|endoftext|>': 0, a: 1, b: 2, 'Ġ': 3, ab: 4, 'Ġab': 5, '<s>': 6, '</s>': 7, '<pad>': 8, '<unk>': 9, '<mask>': 10 };
const MERGES_TXT = '#version: 0.2\na b\nĠ ab\n';
const BERT_VOCAB_TXT = '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nab\nAb\n##b\n';

test('legacy GPT-2 folder (vocab.json + merges.txt), class from config.json, padToken option', async () => {
  const dir = await folder({
    'vocab.json': BPE_VOCAB, 'merges.txt': MERGES_TXT, 'config.json': { model_type: 'gpt2' },
    'tokenizer_config.json': { model_max_length: 4 },
  });
  const tok = await AutoTokenizer.fromPretrained(dir, { padToken: '<|endoftext|>' });
  // "ab ab" → ab, Ġab (a b → ab; Ġ a b → Ġ ab → Ġab).
  assert.deepEqual(tok.encode('ab ab').ids, [4, 5]);
  assert.equal(tok.eosTokenId, 0);
  assert.equal(tok.modelMaxLength, 4);
  assert.deepEqual(tok.batchEncode(['ab', 'ab ab ab ab ab'], { padding: true, truncation: true }).inputIds,
    [[4, 0, 0, 0], [4, 5, 5, 5]]);
});

test('legacy RoBERTa folder: model_type roberta adds <s> … </s>', async () => {
  const dir = await folder({ 'vocab.json': BPE_VOCAB, 'merges.txt': MERGES_TXT, 'config.json': { model_type: 'roberta' } });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.deepEqual(tok.encode('ab', { pair: 'ab' }).ids, [6, 4, 7, 7, 4, 7]);
});

test('legacy BERT folder (vocab.txt): do_lower_case from tokenizer_config.json, [CLS]/[SEP]', async () => {
  const cased = await AutoTokenizer.fromPretrained(await folder({
    'vocab.txt': BERT_VOCAB_TXT, 'tokenizer_config.json': { do_lower_case: false },
  }));
  // Cased: "Abb" → "Ab" + "##b"; "abb" → "ab" + "##b".
  assert.deepEqual(cased.encode('Abb abb').ids, [2, 6, 7, 5, 7, 3]);
  const lower = await AutoTokenizer.fromPretrained(await folder({ 'vocab.txt': BERT_VOCAB_TXT }));
  assert.deepEqual(lower.encode('Abb').ids, [2, 5, 7, 3]);
  assert.deepEqual(lower.encode('ab', { pair: 'ab' }).tokenTypeIds, [0, 0, 0, 1, 1]);
});

test('tokenizer.json is preferred over legacy files in the same folder', async () => {
  const tokenizerJson = {
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
      vocab: { '[UNK]': 0, ab: 1, '##b': 2 } },
  };
  const dir = await folder({ 'tokenizer.json': tokenizerJson, 'vocab.txt': BERT_VOCAB_TXT });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.deepEqual(tok.encode('abb ab').ids, [1, 2, 1]);
  assert.equal(tok.decode([1, 2, 1]), 'ab ##b ab', 'no decoder: tokens joined by spaces');
});

test('folders without a tokenizer: the error lists what was found and what is needed', async () => {
  const empty = await folder({});
  await assert.rejects(AutoTokenizer.fromPretrained(empty),
    (e: unknown) => e instanceof CheckpointError && /empty folder/.test(e.message) && /tokenizer\.json/.test(e.message));
  const weightsOnly = await folder({ 'config.json': { model_type: 'gpt2' }, 'model.safetensors': '', 'vocab.json': BPE_VOCAB });
  await assert.rejects(AutoTokenizer.fromPretrained(weightsOnly), (e: unknown) =>
    e instanceof CheckpointError && /found config\.json, model\.safetensors, vocab\.json/.test(e.message)
    && /merges\.txt/.test(e.message) && /vocab\.txt/.test(e.message));
  const sentencePiece = await folder({ 'tokenizer.model': 'x', 'tokenizer_config.json': {} });
  await assert.rejects(AutoTokenizer.fromPretrained(sentencePiece),
    (e: unknown) => e instanceof CheckpointError && /SentencePiece/.test(e.message) && /save_pretrained/.test(e.message));
  await assert.rejects(AutoTokenizer.fromPretrained(join(root, 'does-not-exist')), CheckpointError);
  const broken = await folder({ 'tokenizer.json': '{"model": ' });
  await assert.rejects(AutoTokenizer.fromPretrained(broken),
    (e: unknown) => e instanceof ConfigError && /tokenizer\.json is not valid JSON/.test(e.message));
});
