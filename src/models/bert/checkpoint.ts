/**
 * BERT / RoBERTa checkpoint names: the ways real files differ from our module tree, following what HF's
 * `from_pretrained` ignores for these classes. Files carry the `embeddings.position_ids` buffer, tied
 * copies of the decoder (`cls.predictions.decoder.*`, `lm_head.decoder.*`), BERT's next-sentence head
 * (`cls.seq_relationship.*`) and a pooler that masked-LM models do not have; old TF-converted files
 * (bert-base-uncased's) name LayerNorm parameters `gamma`/`beta`.
 */
import { hfKeyMapper, type KeyRules } from '../common.js';

// Buffers, never parameters (non-persistent in recent HF, saved by older versions).
const BUFFERS = /(^|\.)embeddings\.(position_ids|token_type_ids)$/;

/** Key rules for BERT checkpoints loaded into BertModel (the pooler is kept). */
export const bertKeyRules: KeyRules = {
  basePrefix: 'bert',
  headPrefixes: ['cls.', 'classifier.', 'qa_outputs.'],
  dropped: [BUFFERS, /^cls\.predictions\.decoder\.(weight|bias)$/, /^cls\.seq_relationship\./],
};

/** Key rules for BERT checkpoints loaded into BertForMaskedLM (which has no pooler; HF ignores it). */
export const bertForMaskedLMKeyRules: KeyRules = {
  ...bertKeyRules,
  dropped: [...bertKeyRules.dropped, /^(bert\.)?pooler\./],
};

/** Key rules for RoBERTa checkpoints loaded into RobertaModel (the pooler is kept). */
export const robertaKeyRules: KeyRules = {
  basePrefix: 'roberta',
  headPrefixes: ['lm_head.', 'classifier.', 'qa_outputs.'],
  dropped: [BUFFERS, /^lm_head\.decoder\.(weight|bias)$/],
};

/** Key rules for RoBERTa checkpoints loaded into RobertaForMaskedLM (pooler dropped). */
export const robertaForMaskedLMKeyRules: KeyRules = {
  ...robertaKeyRules,
  dropped: [...robertaKeyRules.dropped, /^(roberta\.)?pooler\./],
};

/** TF-era names to PyTorch's, as HF does on load: `LayerNorm.gamma` → `.weight`, `LayerNorm.beta` → `.bias`. */
export function renameLegacy(key: string): string {
  if (key.endsWith('LayerNorm.gamma')) return `${key.slice(0, -'gamma'.length)}weight`;
  if (key.endsWith('LayerNorm.beta')) return `${key.slice(0, -'beta'.length)}bias`;
  return key;
}

/** Checkpoint key → our parameter name (or null to drop): legacy renames, then HF's prefix logic. */
export function bertKeyMapper(rules: KeyRules, headed: boolean): (key: string) => string | null {
  const map = hfKeyMapper(rules, headed);
  return (key) => map(renameLegacy(key));
}
