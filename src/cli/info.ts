/** `makemost info <dir>`: what a checkpoint folder holds, read from its files without loading weights. */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openCheckpoint, readConfig, readGenerationConfig } from '../io/hf_folder.js';
import { architectureFor } from '../models/registry.js';
import { AutoTokenizer } from '../tokenizers/files.js';

/** Everything `info` reports, also printed as JSON. */
export interface ModelInfo {
  path: string;
  model_type: string;
  architecture: string;
  parameters: number;
  weights: { files: string[]; format: string; dtypes: Record<string, number> };
  layers: number;
  hidden_size: number;
  heads: number;
  kv_heads: number;
  vocab_size: number;
  context_length: number | null;
  tokenizer: null | { family: string; vocab_size: number; with_added: number; special: Record<string, string | undefined>; model_max_length: number | null };
  generation_config: Record<string, unknown> | null;
}

/** Collect the facts about a model folder. */
export async function modelInfo(dir: string): Promise<ModelInfo> {
  const raw = readConfig(dir);
  const arch = architectureFor(raw, join(dir, 'config.json'));
  const config = arch.parseConfig(raw);
  const dims = arch.dims(config);
  const ckpt = openCheckpoint(dir);
  let parameters = 0;
  const dtypes: Record<string, number> = {};
  try {
    for (const k of ckpt.keys()) {
      const n = ckpt.shape(k).reduce((a, b) => a * b, 1);
      parameters += n;
      const d = ckpt.dtype(k);
      dtypes[d] = (dtypes[d] ?? 0) + n;
    }
  } finally {
    ckpt.close();
  }
  let tokenizer: ModelInfo['tokenizer'] = null;
  const hasTok = ['tokenizer.json', 'vocab.json', 'vocab.txt'].some((f) => existsSync(join(dir, f)));
  if (hasTok) {
    const tok = await AutoTokenizer.fromPretrained(dir);
    tokenizer = {
      family: tok.family,
      vocab_size: tok.vocabSize,
      with_added: tok.length,
      special: { bos: tok.bosToken, eos: tok.eosToken, unk: tok.unkToken, pad: tok.padToken, mask: tok.maskToken, cls: tok.clsToken, sep: tok.sepToken },
      model_max_length: Number.isFinite(tok.modelMaxLength) ? tok.modelMaxLength : null,
    };
  }
  const archs = raw.architectures;
  return {
    path: dir,
    model_type: String(raw.model_type),
    architecture: Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : String(raw.model_type),
    parameters,
    weights: { files: ckpt.files, format: ckpt.format, dtypes },
    layers: dims.layers,
    hidden_size: dims.hidden,
    heads: dims.heads,
    kv_heads: dims.kvHeads,
    vocab_size: dims.vocab,
    context_length: Number.isFinite(dims.maxPositions) ? dims.maxPositions : typeof config.max_position_embeddings === 'number' ? config.max_position_embeddings : null,
    tokenizer,
    generation_config: readGenerationConfig(dir) ?? null,
  };
}

/** Human-readable lines for `info`. */
export function formatInfo(i: ModelInfo): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const dt = Object.entries(i.weights.dtypes).map(([d, c]) => `${d} ${((100 * c) / Math.max(1, i.parameters)).toFixed(0)}%`).join(', ');
  const lines = [
    `model:         ${i.path}`,
    `architecture:  ${i.architecture} (model_type ${i.model_type})`,
    `parameters:    ${n(i.parameters)}  (${(i.parameters / 1e6).toFixed(2)} M)`,
    `weights:       ${i.weights.files.map((f) => basename(f)).join(', ')} [${i.weights.format}; ${dt}]`,
    `shape:         ${i.layers} layers, hidden ${i.hidden_size}, ${i.heads} heads${i.kv_heads !== i.heads ? ` (${i.kv_heads} key/value heads)` : ''}`,
    `vocabulary:    ${n(i.vocab_size)}`,
    `context:       ${i.context_length === null ? 'unbounded (rotary)' : `${n(i.context_length)} tokens`}`,
  ];
  if (i.tokenizer) {
    const sp = Object.entries(i.tokenizer.special).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
    lines.push(`tokenizer:     ${i.tokenizer.family}, ${n(i.tokenizer.vocab_size)} tokens${i.tokenizer.with_added > i.tokenizer.vocab_size ? ` (+${i.tokenizer.with_added - i.tokenizer.vocab_size} added)` : ''}; ${sp || 'no special tokens'}`);
  } else {
    lines.push('tokenizer:     none found (tokenizer.json, vocab.json + merges.txt or vocab.txt)');
  }
  lines.push(`generation:    ${i.generation_config ? JSON.stringify(i.generation_config) : 'no generation_config.json'}`);
  return lines.join('\n');
}
