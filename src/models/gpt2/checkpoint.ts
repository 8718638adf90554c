/**
 * GPT-2 checkpoint names: the few ways real files differ from our module tree. Old OpenAI-converted
 * files store the causal-mask buffers `h.N.attn.bias` / `attn.masked_bias`; the base `gpt2` files lack
 * the `transformer.` prefix; `lm_head.weight` is the tied `wte` and is never loaded separately.
 */
import type { KeyRules } from '../common.js';

/** Key rules for GPT-2 checkpoints. */
export const gpt2KeyRules: KeyRules = {
  basePrefix: 'transformer',
  headPrefixes: ['lm_head.'],
  dropped: [/(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/, /^lm_head\.weight$/],
};
