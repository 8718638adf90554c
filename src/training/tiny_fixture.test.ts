/**
 * Test fixture for the data, loss, evaluation and CLI tests (no tests of its own): tiny tokenizers
 * (BERT WordPiece over single letters; GPT-2 byte-level with no merges, one token per byte) and tiny
 * seeded models, in memory or written as HF folders.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../models/registry.js';
import type { PreTrainedModel } from '../models/pretrained_model.js';
import type { CausalLM, EncoderModel } from '../models/types.js';
import { tokenizerFromFiles } from '../tokenizers/auto.js';
import { byteLevelAlphabet } from '../tokenizers/bpe_trainer.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';

export const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
/** [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then a..z = 5..30. */
export const BERT_VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...LETTERS];
const BERT_TOKENIZER_CONFIG = { tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 64 };

export const BERT_CONFIG = {
  model_type: 'bert', vocab_size: BERT_VOCAB.length, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
  intermediate_size: 64, max_position_embeddings: 64, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0,
};

/** Byte b has id b; `<|endoftext|>` = 256. */
export const GPT2_VOCAB: Record<string, number> = Object.fromEntries([...byteLevelAlphabet().map((c, i) => [c, i] as const), ['<|endoftext|>', 256] as const]);
const GPT2_TOKENIZER_CONFIG = { tokenizer_class: 'GPT2Tokenizer', model_max_length: 64, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' };

export const GPT2_CONFIG = { model_type: 'gpt2', vocab_size: 257, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, bos_token_id: 256, eos_token_id: 256, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };

export function bertTokenizer(): PreTrainedTokenizer {
  return tokenizerFromFiles({ vocabTxt: BERT_VOCAB.join('\n') + '\n', tokenizerConfig: BERT_TOKENIZER_CONFIG });
}

export function gpt2Tokenizer(): PreTrainedTokenizer {
  return tokenizerFromFiles({ vocabJson: GPT2_VOCAB, mergesTxt: '#version: 0.2\n', tokenizerConfig: GPT2_TOKENIZER_CONFIG });
}

export function tinyGpt2(seed = 1): CausalLM {
  return buildModel(GPT2_CONFIG, 'causal-lm', seed).model as unknown as CausalLM;
}

export function tinyBertMlm(seed = 1): EncoderModel {
  return buildModel(BERT_CONFIG, 'masked-lm', seed).model as unknown as EncoderModel;
}

/** Write a tiny model with its tokenizer files as an HF folder. */
export async function writeTinyModel(dir: string, kind: 'gpt2' | 'bert', seed = 3): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (kind === 'bert') {
    writeFileSync(join(dir, 'vocab.txt'), BERT_VOCAB.join('\n') + '\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(BERT_TOKENIZER_CONFIG));
  } else {
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(GPT2_VOCAB));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(GPT2_TOKENIZER_CONFIG));
  }
  const { model } = buildModel(kind === 'bert' ? BERT_CONFIG : GPT2_CONFIG, kind === 'bert' ? 'masked-lm' : 'causal-lm', seed);
  try {
    await (model as PreTrainedModel).save(dir);
  } finally {
    model.dispose();
  }
}

/** log-softmax of one row, in float64 (an independent reference for losses). */
export function logSoftmax(row: ArrayLike<number>): number[] {
  const xs = Array.from(row);
  const m = Math.max(...xs);
  const lse = m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
  return xs.map((x) => x - lse);
}
