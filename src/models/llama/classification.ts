/**
 * Llama with a classification head (HF `LlamaForSequenceClassification`, now transformers'
 * `GenericForSequenceClassification`): `model.*` and `score.weight` [num_labels, hidden_size] without
 * bias, applied to the hidden state of each row's last real token (see `lastTokenIndices`).
 * Regression when num_labels = 1. Position ids default to 0..T-1 whatever the padding, as in HF.
 */
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { UnsupportedError } from '../../errors.js';
import { Linear } from '../../nn/layers.js';
import { classificationFields, classifierOutput, gatherPositions, lastTokenIndices, padTokenId, withClassificationFields, type ProblemType, type SequenceClassificationOptions, type SequenceClassifier, type SequenceClassifierOutput } from '../classification.js';
import { idsTensor, type KeyRules } from '../common.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { Ids, ModelDims } from '../types.js';
import { llamaDims, type LlamaConfig } from './config.js';
import { LlamaModel } from './model.js';

/** Llama checkpoints into LlamaForSequenceClassification (`score.` is the head; a causal-LM head is dropped). */
export const llamaSeqClsKeyRules: KeyRules = { basePrefix: 'model', headPrefixes: ['score.'], dropped: [/(^|\.)rotary_emb\.inv_freq$/, /^lm_head\./] };

/** Llama decoder plus `score` on the last real token: logits [B, num_labels]. */
export class LlamaForSequenceClassification extends PreTrainedModel implements SequenceClassifier {
  readonly modelType = 'llama';
  readonly className = 'LlamaForSequenceClassification';
  readonly config: LlamaConfig;
  readonly numLabels: number;
  readonly problemType: ProblemType | null;
  readonly model: LlamaModel;
  readonly score: Linear;
  /** The head is drawn even with seed null (HF initialises head weights a checkpoint lacks). */
  constructor(config: LlamaConfig, seed: number | null = 0) {
    super();
    const f = classificationFields(config);
    this.numLabels = f.num_labels;
    this.problemType = f.problem_type;
    this.config = withClassificationFields(config);
    this.model = this.child('model', new LlamaModel(config, seed));
    const init = { rng: new Rng(seed ?? 0).split(), std: config.initializer_range };
    this.score = this.child('score', new Linear(config.hidden_size, this.numLabels, init, false));
  }
  dims(): ModelDims {
    return llamaDims(this.config);
  }
  /** ids [B, T] → logits [B, num_labels] at each row's last real token, and hidden states [B, T, D]. */
  forward(inputIds: Ids, opts: SequenceClassificationOptions = {}): SequenceClassifierOutput {
    if (opts.tokenTypeIds) throw new UnsupportedError('Llama classification does not take token type ids', 'leave tokenTypeIds out');
    return tidy(() => {
      const ids = idsTensor(inputIds, 'input ids');
      const mask = opts.attentionMask ? idsTensor(opts.attentionMask, 'attention mask') : undefined;
      // Found before the forward pass, so a batch HF cannot pool fails without running the model.
      const last = lastTokenIndices(ids, mask, padTokenId(this.config));
      const out = this.model.forward(inputIds, { attentionMask: opts.attentionMask, positionIds: opts.positionIds, training: opts.training, rng: opts.rng, returnHidden: opts.returnHidden });
      const logits = this.score.forward(gatherPositions(out.lastHiddenState, last));
      return classifierOutput(logits, out);
    });
  }
}
