/**
 * ACBS, attribute-conditional beam search (methods.md §5.3): beam search on p(y | x, a), the model
 * conditioned on the event "the output has attribute a". A prefix z + v is ranked by
 *
 *     log p_LM(z + v | x)  +  λ · log q(a | x, z + v)
 *
 * where q is an attribute classifier (the next-token head scores all V continuations at once, so a step
 * costs about what a beam-search step costs). The classifier term is handed to beamSearch as its
 * `rankBonus`: it changes which candidates survive, never the accumulated LM log-probability. When v is
 * EOS (or v reaches max_new_tokens) the output is complete, so the exact indicator log 1[a(y)] (0 or −∞)
 * replaces q whenever the labeller is known. With λ = 0 no bonus is passed: plain beam search.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import { ConfigError } from '../../errors.js';
import type { CausalLM } from '../../models/types.js';
import { beamSearch, type BeamOptions, type BeamSearchOutput, type RankBonus } from '../search/beam.js';
import type { DecoderState } from '../state.js';
import { AttributeClassifier, type AttributeScorer } from './classifier.js';

/** Beam options plus the classifier and its weight. */
export interface ConditionalBeamOptions extends Omit<BeamOptions, 'rankBonus' | 'keepHidden'> {
  classifier: AttributeScorer;
  /** λ ≥ 0 (default 1, the principled value: beam search on log p(z, a | x)). */
  weight?: number;
  /**
   * Complete outputs (EOS, or max_new_tokens reached): the labeller's exact verdict ('exact', the default when
   * the labeller is known) or the head's estimate ('classifier').
   */
  done?: 'exact' | 'classifier';
}

/** Beam output plus the two terms of each returned sequence's score. */
export interface ConditionalOutput extends BeamSearchOutput {
  /** Σ log p_LM(y_t | x, y<t) over the generated tokens (the raw model, before logits processors). */
  lmLogprobs: number[];
  /** Unweighted log q(a | x, y) of the final step (the verdict 0 / −∞ for a complete output when the labeller is used); rankScores = sequenceScores + λ·this. */
  classifierLogprobs: number[];
  /** The labeller on each returned output (EOS removed), when it is known. */
  attributeHolds?: boolean[];
}

function check(model: CausalLM, opts: ConditionalBeamOptions): void {
  const weight = opts.weight ?? 1;
  if (!Number.isFinite(weight) || weight < 0) {
    throw new ConfigError(`conditional.weight must be a finite number ≥ 0, got ${weight}`, 'use 1 (condition on the attribute) or 0 (plain beam search)');
  }
  if (opts.done === 'exact' && !opts.classifier.attribute) {
    throw new ConfigError('conditional.done = "exact" needs the attribute\'s labeller, and this classifier has none',
      'pass the labelling function when loading a classifier trained on a custom attribute, or use done: "classifier"');
  }
  const clf = opts.classifier;
  if (clf instanceof AttributeClassifier) {
    const { vocab, hidden } = model.dims();
    if (clf.config.vocab_size !== vocab || clf.config.hidden_size !== hidden) {
      throw new ConfigError(`attribute classifier expects vocabulary ${clf.config.vocab_size} and hidden size ${clf.config.hidden_size}, the model has ${vocab} and ${hidden}`,
        'use the classifier trained on this model (it is saved beside the model folder)');
    }
  }
}

/**
 * The rank bonus: [N, V] λ·log q, with the exact verdict (0 or −∞) wherever the output is complete — the
 * EOS columns, and every column of a row whose next token reaches max_new_tokens (beam search returns such
 * outputs cut). Rows are grouped by prompt (prompt i owns rows i·numBeams …); rowIds hold prompt + output.
 */
function makeBonus(scorer: AttributeScorer, weight: number, exact: boolean, prompts: number[][], opts: ConditionalBeamOptions): RankBonus {
  const eos = opts.eosTokenIds;
  const eosCols = [...new Set(eos)].sort((x, y) => x - y);
  let eosRow: boolean[] | undefined;
  const verdict = (y: number[]) => (scorer.attribute!.label(y) ? 0 : -Infinity);
  return (state: DecoderState, rowIds: number[][]) => {
    const outputs = rowIds.map((ids, r) => ids.slice(prompts[Math.floor(r / opts.numBeams)].length));
    const N = outputs.length;
    const V = state.logits.shape[1] as number;
    eosRow ??= Array.from({ length: V }, (_, v) => eos.includes(v));
    if (exact && outputs.some((z) => z.length + 1 >= opts.maxNewTokens)) {
      // The last step: every candidate completes an output, so every column gets its verdict.
      // One buffer per row, its last slot rewritten per token (labellers only read their argument).
      return tf.tensor2d(outputs.map((z) => {
        const done = verdict(z);
        const y = [...z, 0];
        return eosRow!.map((isEos, v) => (isEos ? done : ((y[z.length] = v), verdict(y))));
      }), [N, V]);
    }
    return tf.tidy(() => {
      const b = tf.mul(scorer.scoreNext({ hidden: state.hidden, outputs }), weight);
      if (!exact) return b;
      // Splice the verdict column in at each EOS id (slices + concat: tf.where over [N, V] is ~20× slower on wasm).
      const done = tf.tensor2d(outputs.map((z) => [verdict(z)]), [N, 1]);
      const pieces: tf.Tensor[] = [];
      let from = 0;
      for (const e of eosCols) {
        if (e > from) pieces.push(b.slice([0, from], [N, e - from]));
        pieces.push(done);
        from = e + 1;
      }
      if (from < V) pieces.push(b.slice([0, from], [N, V - from]));
      return tf.concat(pieces, 1);
    });
  };
}

/** Beam search ranked by log p_LM + λ·log q(attribute); returns each result's two terms. */
export async function conditionalBeamSearch(model: CausalLM, prompts: number[][], opts: ConditionalBeamOptions): Promise<ConditionalOutput> {
  check(model, opts);
  const weight = opts.weight ?? 1;
  const scorer = opts.classifier;
  const exact = (opts.done ?? (scorer.attribute ? 'exact' : 'classifier')) === 'exact';
  const eos = opts.eosTokenIds;
  const rankBonus = makeBonus(scorer, weight, exact, prompts, opts);
  const { classifier: _c, weight: _w, done: _d, ...beamOpts } = opts;
  const out = await beamSearch(model, prompts, weight === 0 ? beamOpts : { ...beamOpts, rankBonus, keepHidden: scorer.usesHidden });
  const per = opts.numReturnSequences;
  const terms = await Promise.all(out.newTokens.map((gen, i) => {
    const complete = exact && (eos.includes(gen[gen.length - 1]) || out.finishReason[i] === 'length');
    return rescore(model, prompts[Math.floor(i / per)], gen, scorer, complete, eos);
  }));
  const result: ConditionalOutput = { ...out, lmLogprobs: terms.map((t) => t.lm), classifierLogprobs: terms.map((t) => t.clf) };
  if (scorer.attribute) {
    result.attributeHolds = out.newTokens.map((g) => scorer.attribute!.label(g.length && eos.includes(g[g.length - 1]) ? g.slice(0, -1) : g));
  }
  return result;
}

/**
 * One forward pass over prompt + generated: Σ log p_LM of the generated tokens (float64 sum) and the
 * classifier term of the final step — the labeller's verdict when the output is `complete` (it ended on
 * EOS or at max_new_tokens and the labeller is used), else the head's log q for the last token.
 */
async function rescore(model: CausalLM, prompt: number[], gen: number[], scorer: AttributeScorer, complete: boolean, eos: number[]): Promise<{ lm: number; clf: number }> {
  if (gen.length === 0) return { lm: 0, clf: 0 };
  const ids = [...prompt, ...gen];
  const P = prompt.length;
  const T = ids.length;
  const last = gen[gen.length - 1];
  const before = gen.slice(0, -1);
  const wantHidden = !complete && scorer.usesHidden;
  const t = tidy(() => {
    const out = model.forward([ids.slice(0, -1)], { returnHidden: wantHidden });
    const lp = tf.logSoftmax(out.logits.squeeze([0])); // [T−1, V]: row t predicts ids[t+1]
    const rows = lp.slice([P - 1, 0], [T - P, -1]);
    const picked = tf.sum(tf.mul(rows, tf.oneHot(tf.tensor1d(gen, 'int32'), rows.shape[1] as number)), 1);
    if (wantHidden && !out.hidden) {
      throw new ConfigError(`model ${model.modelType} returned no hidden states`, 'the attribute classifier needs a CausalLM that supports returnHidden');
    }
    const hidden = out.hidden ? out.hidden[out.hidden.length - 1].slice([0, T - 2, 0], [1, 1, -1]).squeeze([1]) : undefined;
    const clf = complete ? undefined : scorer.scoreNext({ hidden, outputs: [before] }).slice([0, last], [1, 1]);
    return { picked, clf };
  });
  try {
    const [picked, clf] = await Promise.all([t.picked.data(), t.clf?.data()]);
    const lm = Array.from(picked as Float32Array).reduce((s, x) => s + x, 0);
    return { lm, clf: clf ? clf[0] : scorer.attribute!.label(eos.includes(last) ? before : gen) ? 0 : -Infinity };
  } finally {
    tf.dispose(t.clf ? [t.picked, t.clf] : [t.picked]);
  }
}
