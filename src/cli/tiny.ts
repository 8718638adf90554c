/**
 * Tiny seeded random models (GPT-2 with a byte-level tokenizer, BERT with a small WordPiece vocabulary)
 * written as ordinary HF folders. They let `makemost demo` run on a fresh clone until the trained
 * default models ship; their outputs are random, by construction.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../models/registry.js';
import { byteLevelAlphabet } from '../tokenizers/bpe_trainer.js';
import type { PreTrainedModel } from '../models/pretrained_model.js';

/** GPT-2's byte-level vocabulary in id order: each byte's printable stand-in, sorted by code point (space is 'Ġ' = 220). */
export function bytesToUnicode(): string[] {
  return byteLevelAlphabet().sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!);
}

async function writeModel(dir: string, config: Record<string, unknown>, task: 'causal-lm' | 'masked-lm'): Promise<void> {
  const { model } = buildModel(config, task, 7);
  try {
    await (model as PreTrainedModel).save(dir);
  } finally {
    model.dispose();
  }
}

/** Write (once) and return the folders of the tiny GPT-2 and BERT under `root`. */
export async function ensureTinyModels(root: string): Promise<{ gpt2: string; bert: string }> {
  const gpt2 = join(root, 'tiny-gpt2');
  const bert = join(root, 'tiny-bert');
  if (!existsSync(join(gpt2, 'model.safetensors'))) {
    mkdirSync(gpt2, { recursive: true });
    const vocab: Record<string, number> = {};
    bytesToUnicode().forEach((ch, i) => (vocab[ch] = i));
    vocab['<|endoftext|>'] = 256;
    writeFileSync(join(gpt2, 'vocab.json'), JSON.stringify(vocab));
    writeFileSync(join(gpt2, 'merges.txt'), '#version: 0.2\n');
    writeFileSync(join(gpt2, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'GPT2Tokenizer', model_max_length: 128, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' }));
    await writeModel(gpt2, { model_type: 'gpt2', vocab_size: 257, n_positions: 128, n_embd: 64, n_layer: 2, n_head: 4, bos_token_id: 256, eos_token_id: 256 }, 'causal-lm');
  }
  if (!existsSync(join(bert, 'model.safetensors'))) {
    mkdirSync(bert, { recursive: true });
    const words = ['the', 'of', 'is', 'capital', 'city', 'paris', 'france', 'london', 'england', 'river', 'small', 'large', 'and', '.', ','];
    const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');
    const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words, ...letters, ...letters.map((l) => `##${l}`)];
    writeFileSync(join(bert, 'vocab.txt'), vocab.join('\n') + '\n');
    writeFileSync(join(bert, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 64 }));
    await writeModel(bert, { model_type: 'bert', vocab_size: vocab.length, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, max_position_embeddings: 64 }, 'masked-lm');
  }
  return { gpt2, bert };
}
