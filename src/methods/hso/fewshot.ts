/**
 * Few-shot prompt-based classification with hidden-state optimisation (Yoshida & Gimpel 2021; methods.md
 * §4.4). The prompt's keys and values are optimised for a few Adam steps on the language-model loss of
 * the prompt itself (through kvDelta on the prompt's own K/V: no extra parameters, no extra data), then
 * every test input is scored by its label words against the optimised cache, all candidates sharing that
 * one cache ({@link continuationLogProbs}). Steps = 0 is the plain prompt, the baseline. Contextual
 * calibration (Zhao et al. 2021, "Calibrate Before Use") divides each class probability by its
 * probability for a content-free input ("N/A"), scored against the same (optimised or not) cache.
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeAll, tidy } from '../../backend/memory.js';
import { ConfigError, ShapeError } from '../../errors.js';
import { continuationLogProbs, type SharedPrefix } from '../../generation/prefix_score.js';
import type { CausalLM } from '../../models/types.js';
import { pickLogProbs } from './grad.js';
import type { EncodedFewShot, FewShotFormat, LabelledText, PromptTokenizer } from './prompt.js';
import { encodeFewShot } from './prompt.js';
import { SlotAdam, type SlotAdamOptions } from './slot_adam.js';
import { flattenSlots, unflattenSlots, zeroSlots } from './slots.js';

/** Settings of the prompt optimisation. */
export interface PromptHsoOptions extends SlotAdamOptions {
  /** Adam steps on the prompt's keys and values (default 0: the plain prompt). */
  steps?: number;
  /** Which prompt tokens the loss sums over: all of them (default) or only the label words. */
  lossOn?: 'all' | 'labels';
  /** Per prompt token, whether it is a label-word token (needed for lossOn 'labels'). */
  labelMask?: boolean[];
}

/** A prompt's cache after optimisation, with the loss along the way. */
export interface OptimisedPrompt extends SharedPrefix {
  /** Prompt loss (summed NLL over the loss tokens) before each step, and after the last. */
  losses: number[];
}

/** The prompt's cache after `steps` HSO steps on its own keys and values; the caller owns the tensors. */
export async function optimisePrompt(model: CausalLM, prompt: number[], opts: PromptHsoOptions = {}): Promise<OptimisedPrompt> {
  const steps = opts.steps ?? 0;
  if (!Number.isInteger(steps) || steps < 0) throw new ConfigError(`HSO steps must be a non-negative integer, got ${steps}`, 'try 10');
  const T = prompt.length;
  if (T === 0) throw new ShapeError('the prompt is empty', 'give demonstrations, or start the prompt with BOS');
  const weights = prompt.slice(1).map((_, t) => (opts.lossOn === 'labels' ? (opts.labelMask?.[t + 1] ? 1 : 0) : 1));
  if (opts.lossOn === 'labels' && !opts.labelMask) throw new ConfigError("lossOn 'labels' needs the prompt's labelMask", 'pass labelMask from encodeFewShot');
  if (steps > 0 && !weights.some((w) => w > 0)) throw new ConfigError(`the prompt (${T} tokens) has no token for the HSO loss (lossOn ${opts.lossOn ?? 'all'})`, 'give at least one demonstration');
  const targets = [prompt.slice(1)];
  const lossOf = (logits: tf.Tensor): tf.Tensor => tf.tidy(() => {
    if (T < 2) return tf.scalar(0);
    const lp = pickLogProbs(logits.slice([0, 0, 0], [1, T - 1, -1]), targets);
    return tf.neg(tf.sum(tf.mul(lp, tf.tensor2d([weights]))));
  });
  const { layers, kvHeads, headDim } = model.dims();
  const adam = new SlotAdam(opts);
  const losses: number[] = [];
  try {
    if (steps > 0) adam.append(zeroSlots(layers, [1, kvHeads, T, headDim]));
    for (let s = 0; s < steps; s++) {
      const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const out = model.forward([prompt], { kvDelta: unflattenSlots(xs) });
        return lossOf(out.logits);
      })(flattenSlots(adam.params));
      losses.push((await value.data())[0]);
      value.dispose();
      adam.step(unflattenSlots(grads));
      disposeAll(grads);
    }
    const out = model.forward([prompt], steps > 0 ? { kvDelta: adam.params } : {});
    const [loss, lastLogits] = tidy(() => [lossOf(out.logits), out.logits.slice([0, T - 1, 0], [1, 1, -1]).reshape([1, -1])]);
    out.logits.dispose();
    losses.push((await loss.data())[0]);
    loss.dispose();
    return { cache: out.cache, lastLogits, position: T, losses };
  } finally {
    adam.dispose();
  }
}

/** One test input's class scores. */
export interface FewShotPrediction {
  /** log p(label words | prompt, input) per class. */
  logProbs: number[];
  /** Those renormalised over the classes. */
  probs: number[];
  predicted: number;
  /** After contextual calibration, when asked. */
  calibrated?: { probs: number[]; predicted: number };
}

/** Predictions for a test set. */
export interface FewShotResult {
  predictions: FewShotPrediction[];
  /** Prompt loss before each HSO step and after the last. */
  promptLosses: number[];
  /** p(class | content-free input), renormalised, when calibrating. */
  contentFree?: number[];
}

/** Options of {@link classifyFewShot}. */
export interface FewShotOptions extends PromptHsoOptions {
  /** Query ids of a content-free input (e.g. the template filled with "N/A"): turns calibration on. */
  contentFree?: number[];
  /** Candidates per batched forward pass (default 16). */
  batchSize?: number;
}

function normalise(logps: number[]): number[] {
  const m = Math.max(...logps);
  const e = logps.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

const argmax = (xs: number[]): number => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/**
 * Classify each query (its ids after the prompt) by the log-probability of each class's label ids, against
 * the prompt's cache after `opts.steps` HSO steps.
 */
export async function classifyFewShot(model: CausalLM, prompt: number[], queries: number[][], labelIds: number[][], opts: FewShotOptions = {}): Promise<FewShotResult> {
  const max = model.dims().maxPositions;
  const longest = Math.max(...[...queries, opts.contentFree ?? []].map((q) => q.length)) + Math.max(...labelIds.map((l) => l.length));
  if (prompt.length + longest > max) throw new ShapeError(`prompt (${prompt.length} tokens) + test input + label (up to ${longest}) exceeds the model's ${max} positions`, 'use fewer demonstrations or shorter texts');
  const all = opts.contentFree ? [...queries, opts.contentFree] : queries;
  const opt = await optimisePrompt(model, prompt, opts);
  try {
    const cands = all.flatMap((q) => labelIds.map((l) => [...q, ...l]));
    const lps = await continuationLogProbs(model, opt, cands, { batchSize: opts.batchSize });
    const scores = all.map((q, i) => labelIds.map((_, y) => lps[i * labelIds.length + y].slice(q.length).reduce((a, b) => a + b, 0)));
    const cf = opts.contentFree ? normalise(scores.pop()!) : undefined;
    const predictions = scores.map((logProbs): FewShotPrediction => {
      const probs = normalise(logProbs);
      const p: FewShotPrediction = { logProbs, probs, predicted: argmax(probs) };
      if (cf) {
        const q = normalise(logProbs.map((x, y) => x - Math.log(cf[y])));
        p.calibrated = { probs: q, predicted: argmax(q) };
      }
      return p;
    });
    return cf ? { predictions, promptLosses: opt.losses, contentFree: cf } : { predictions, promptLosses: opt.losses };
  } finally {
    disposeAll([opt.cache, opt.lastLogits]);
  }
}

/** Options of {@link fewShotFromText}. */
export interface TextFewShotOptions extends Omit<FewShotOptions, 'contentFree' | 'labelMask'> {
  /** Calibrate against this content-free input (Zhao et al. use "N/A"); off when absent. */
  contentFree?: string;
}

/** Text-level few-shot classification: render, tokenize, classify; accuracy when the tests carry labels. */
export async function fewShotFromText(model: CausalLM, tok: PromptTokenizer, format: FewShotFormat, demos: LabelledText[], tests: { text: string; label?: number }[], opts: TextFewShotOptions = {}): Promise<FewShotResult & { encoded: EncodedFewShot; accuracy?: number; calibratedAccuracy?: number }> {
  const encoded = encodeFewShot(tok, format, demos);
  const { contentFree, ...rest } = opts;
  const r = await classifyFewShot(model, encoded.prompt, tests.map((t) => encoded.query(t.text)), encoded.labelIds, {
    ...rest,
    labelMask: encoded.labelMask,
    contentFree: contentFree === undefined ? undefined : encoded.query(contentFree),
  });
  const gold = tests.map((t) => t.label);
  if (gold.some((g) => g === undefined)) return { ...r, encoded };
  const acc = (pick: (p: FewShotPrediction) => number) => r.predictions.filter((p, i) => pick(p) === gold[i]).length / Math.max(1, gold.length);
  return { ...r, encoded, accuracy: acc((p) => p.predicted), ...(contentFree !== undefined ? { calibratedAccuracy: acc((p) => p.calibrated!.predicted) } : {}) };
}
