/**
 * GPT-2 with a classification head (HF `GPT2ForSequenceClassification`): `transformer.*` and
 * `score.weight` [num_labels, n_embd] without bias, applied to the hidden state of each row's last
 * real token (see `lastTokenIndices` for how that token is found). Regression when num_labels = 1.
 * Position ids default to 0..T-1 whatever the padding, as in HF; pass `positionIds` for left padding.
 */
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { UnsupportedError } from '../../errors.js';
import { Linear } from '../../nn/layers.js';
import { classificationFields, classifierOutput, gatherPositions, lastTokenIndices, padTokenId, withClassificationFields, type ProblemType, type SequenceClassificationOptions, type SequenceClassifier, type SequenceClassifierOutput } from '../classification.js';
import { idsTensor, type KeyRules } from '../common.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { Ids, ModelDims } from '../types.js';
import { gpt2KeyRules } from './checkpoint.js';
import { gpt2Dims, type GPT2Config } from './config.js';
import { GPT2Model } from './model.js';

/** GPT-2 checkpoints into GPT2ForSequenceClassification (`score.` is the head; an LM head is dropped). */
export const gpt2SeqClsKeyRules: KeyRules = { ...gpt2KeyRules, headPrefixes: ['score.'], dropped: [...gpt2KeyRules.dropped, /^lm_head\./] };

/** GPT-2 transformer plus `score` on the last real token: logits [B, num_labels]. */
export class GPT2ForSequenceClassification extends PreTrainedModel implements SequenceClassifier {
  readonly modelType = 'gpt2';
  readonly className = 'GPT2ForSequenceClassification';
  readonly config: GPT2Config;
  readonly numLabels: number;
  readonly problemType: ProblemType | null;
  readonly transformer: GPT2Model;
  readonly score: Linear;
  /** The head is drawn even with seed null (HF initialises head weights a checkpoint lacks). */
  constructor(config: GPT2Config, seed: number | null = 0) {
    super();
    const f = classificationFields(config);
    this.numLabels = f.num_labels;
    this.problemType = f.problem_type;
    this.config = withClassificationFields(config);
    this.transformer = this.child('transformer', new GPT2Model(config, seed));
    const init = { rng: new Rng(seed ?? 0).split(), std: config.initializer_range };
    this.score = this.child('score', new Linear(config.n_embd, this.numLabels, init, false));
  }
  dims(): ModelDims {
    return gpt2Dims(this.config);
  }
  /** ids [B, T] → logits [B, num_labels] at each row's last real token, and hidden states [B, T, D]. */
  forward(inputIds: Ids, opts: SequenceClassificationOptions = {}): SequenceClassifierOutput {
    if (opts.tokenTypeIds) throw new UnsupportedError('GPT-2 classification does not take token type ids', 'leave tokenTypeIds out (GPT-2 checkpoints have no segment embeddings)');
    return tidy(() => {
      const ids = idsTensor(inputIds, 'input ids');
      const mask = opts.attentionMask ? idsTensor(opts.attentionMask, 'attention mask') : undefined;
      // Found before the forward pass, so a batch HF cannot pool fails without running the model.
      const last = lastTokenIndices(ids, mask, padTokenId(this.config));
      const out = this.transformer.forward(inputIds, { attentionMask: opts.attentionMask, positionIds: opts.positionIds, training: opts.training, rng: opts.rng, returnHidden: opts.returnHidden });
      const logits = this.score.forward(gatherPositions(out.lastHiddenState, last));
      return classifierOutput(logits, out);
    });
  }
}

