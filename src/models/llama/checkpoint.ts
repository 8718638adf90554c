/**
 * Llama checkpoint names: the few ways real files differ from our module tree. Checkpoints written by
 * transformers before 4.38 store the rotary buffer `model.layers.N.self_attn.rotary_emb.inv_freq`
 * (recomputed from the config here); a tied checkpoint may still carry `lm_head.weight`, a copy of
 * `model.embed_tokens.weight` that is never loaded separately.
 */
import type { KeyRules } from '../common.js';
import type { LlamaConfig } from './config.js';

/** Key rules for Llama checkpoints; whether `lm_head.weight` is dropped depends on `tie_word_embeddings`. */
export function llamaKeyRules(config: Pick<LlamaConfig, 'tie_word_embeddings'>): KeyRules {
  const dropped = [/(^|\.)rotary_emb\.inv_freq$/];
  if (config.tie_word_embeddings) dropped.push(/^lm_head\.weight$/);
  return { basePrefix: 'model', headPrefixes: ['lm_head.'], dropped };
}
