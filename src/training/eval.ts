/**
 * Evaluation: loss and perplexity of language models over batches; perplexity of a long token stream by
 * HF's sliding-window method ("Perplexity of fixed-length models": windows of `maxLength` tokens
 * advanced by `stride`, each scoring only the tokens no earlier window scored, with the rest of the
 * window as context); pseudo-perplexity of masked LMs (Salazar et al. 2020, "Masked Language Model
 * Scoring": mask each token in turn, score it, PPPL = exp(−mean log p)); and accuracy and F1 of
 * classifiers (F1 as scikit-learn's f1_score: binary on class 1 when there are two classes, else the
 * macro mean over the classes present in labels or predictions; a class with no support scores 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';
import { sequenceClassificationLoss, type SequenceClassifier } from '../models/classification.js';
import type { CausalLM, EncoderModel } from '../models/types.js';
import type { Batch } from './data_batches.js';
import { causalLmNll, classifierLogits, IGNORE_INDEX, labelsTensor, maskedLmNll, tokenNll } from './losses.js';

/** Token-weighted loss of a language model over batches. */
export interface LmEvaluation {
  /** Mean NLL per scored token (nats). */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Scored tokens. */
  tokens: number;
}

async function take(s: tf.Scalar): Promise<number> {
  const v = (await s.data())[0];
  s.dispose();
  return v;
}

async function lmEval(batches: readonly Batch[], nll: (b: Batch) => { sum: tf.Scalar; count: number }): Promise<LmEvaluation> {
  let sum = 0;
  let tokens = 0;
  for (const b of batches) {
    const r = nll(b);
    sum += await take(r.sum);
    tokens += r.count;
  }
  if (!tokens) throw new ConfigError('the evaluation data scores no token', 'check the evaluation data (it may be empty, or too short)');
  return { loss: sum / tokens, perplexity: Math.exp(sum / tokens), tokens };
}

/** Causal-LM loss over batches (labels shifted as in training), dropout off. */
export function evaluateCausalLm(model: CausalLM, batches: readonly Batch[]): Promise<LmEvaluation> {
  return lmEval(batches, (b) => causalLmNll(model, b));
}

/** Masked-LM loss over batches at their masked positions; perplexity is exp(loss), as HF run_mlm. */
export function evaluateMaskedLm(model: EncoderModel, batches: readonly Batch[]): Promise<LmEvaluation> {
  return lmEval(batches, (b) => maskedLmNll(model, b));
}

/** Classifier metrics over batches. */
export interface ClassifierEvaluation {
  /** Mean loss per example (cross-entropy, or MSE for regression). */
  loss: number;
  /** Absent for regression. */
  accuracy?: number;
  f1?: number;
  examples: number;
}

/** Loss, accuracy and F1 of a sequence classifier (dropout off). */
export async function evaluateClassifier(model: SequenceClassifier, batches: readonly Batch[]): Promise<ClassifierEvaluation> {
  let lossSum = 0;
  let n = 0;
  const preds: number[] = [];
  const gold: number[] = [];
  const regression = model.problemType === 'regression' || (model.problemType === null && model.numLabels === 1);
  for (const b of batches) {
    if (!b.labels) throw new ShapeError('classification batches need labels', "build batches with kind 'classification'");
    const [loss, argmax] = tf.tidy(() => {
      const logits = classifierLogits(model, b);
      return [sequenceClassificationLoss(logits, labelsTensor(b.labels!, model.problemType, model.numLabels), model.problemType), tf.argMax(logits, -1)];
    });
    lossSum += (await take(loss as tf.Scalar)) * b.labels.length;
    n += b.labels.length;
    preds.push(...(await argmax.data()));
    argmax.dispose();
    gold.push(...b.labels);
  }
  if (!n) throw new ConfigError('the evaluation data holds no examples', 'check the evaluation data');
  if (regression) return { loss: lossSum / n, examples: n };
  return { loss: lossSum / n, ...classificationMetrics(preds, gold, model.numLabels), examples: n };
}

/** Accuracy, and F1 (binary on class 1 for two classes, else macro); labels -100 are skipped. */
export function classificationMetrics(preds: readonly number[], labels: readonly number[], numLabels: number): { accuracy: number; f1: number } {
  const keep = labels.map((y, i) => [preds[i], y] as const).filter(([, y]) => y !== IGNORE_INDEX);
  const p = keep.map(([x]) => x);
  const y = keep.map(([, v]) => v);
  const accuracy = y.length ? y.filter((v, i) => v === p[i]).length / y.length : NaN;
  return { accuracy, f1: numLabels === 2 ? f1Score(p, y, 'binary') : f1Score(p, y, 'macro') };
}

/** F1 from predictions and labels: 'binary' scores `positive` (default 1); 'macro' averages the classes seen. */
export function f1Score(preds: readonly number[], labels: readonly number[], average: 'binary' | 'macro', positive = 1): number {
  if (preds.length !== labels.length) throw new ShapeError(`f1Score: ${preds.length} predictions for ${labels.length} labels`);
  const f1Of = (c: number) => {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    preds.forEach((p, i) => {
      if (p === c && labels[i] === c) tp += 1;
      else if (p === c) fp += 1;
      else if (labels[i] === c) fn += 1;
    });
    return tp + fp + fn === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  };
  if (average === 'binary') return f1Of(positive);
  const classes = [...new Set([...labels, ...preds])];
  return classes.length ? classes.reduce((s, c) => s + f1Of(c), 0) / classes.length : 0;
}

/** Result of a sliding-window perplexity. */
export interface SlidingWindowResult {
  /** Mean NLL of the scored tokens. */
  nll: number;
  perplexity: number;
  /** Tokens scored: all but the first with overlapping windows; disjoint windows also skip each window's first. */
  tokens: number;
  windows: number;
}

/**
 * Perplexity of `ids` by HF's sliding window: windows [begin, begin + maxLength) for begin = 0, stride,
 * 2·stride, …; each scores the tokens from the previous window's end to its own (a token needs one
 * token of context inside its window, so disjoint windows, stride = maxLength, leave each window's first
 * token unscored, as HF's code does). NLL is summed exactly per token (HF's guide weights each window's
 * mean by its count minus one, a small approximation we do not copy).
 */
export async function slidingWindowPerplexity(model: CausalLM, ids: readonly number[], opts: { maxLength: number; stride: number }): Promise<SlidingWindowResult> {
  const { maxLength, stride } = opts;
  if (!(Number.isInteger(maxLength) && maxLength >= 2)) throw new ConfigError(`the window length must be an integer >= 2, found ${maxLength}`);
  if (maxLength > model.dims().maxPositions) throw new ConfigError(`the window length ${maxLength} exceeds the model's context of ${model.dims().maxPositions} tokens`, 'use a shorter window (--block-size)');
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= maxLength)) throw new ConfigError(`the stride must be an integer in [1, ${maxLength}] (the window length), found ${stride}`, 'a stride longer than the window would skip tokens');
  if (ids.length < 2) throw new ShapeError(`perplexity needs at least 2 tokens, found ${ids.length}`, 'evaluate a longer text');
  let sum = 0;
  let tokens = 0;
  let windows = 0;
  let prevEnd = 0;
  for (let begin = 0; begin < ids.length; begin += stride) {
    const end = Math.min(begin + maxLength, ids.length);
    const window = ids.slice(begin, end);
    // Logit j predicts the token at begin + j + 1; only tokens at or after prevEnd are new.
    const labels = [window.map((_, j) => {
      const target = begin + j + 1;
      return target < end && target >= Math.max(prevEnd, 1) ? ids[target] : IGNORE_INDEX;
    })];
    const r = tf.tidy(() => {
      const out = model.forward([window]);
      return tokenNll(out.logits, labels);
    });
    sum += await take(r.sum);
    tokens += r.count;
    windows += 1;
    prevEnd = end;
    if (end === ids.length) break;
  }
  return { nll: sum / tokens, perplexity: Math.exp(sum / tokens), tokens, windows };
}

/** Result of a pseudo-perplexity. */
export interface PseudoPerplexityResult {
  /** Σ log p(token | rest) over the scored tokens (PLL). */
  pseudoLogLikelihood: number;
  tokens: number;
  /** exp(−PLL / tokens). */
  pseudoPerplexity: number;
}

/**
 * Pseudo-perplexity of rows of token ids (each with its special tokens): every non-special token is
 * replaced by the mask token in a copy of its row and scored there; copies run `batchSize` at a time.
 */
export async function pseudoPerplexity(model: EncoderModel, rows: readonly number[][], opts: { maskTokenId: number; specialIds: readonly number[]; batchSize?: number; tokenTypeIds?: readonly number[][] }): Promise<PseudoPerplexityResult> {
  const special = new Set(opts.specialIds);
  const size = opts.batchSize ?? 16;
  let pll = 0;
  let tokens = 0;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const positions = row.flatMap((id, t) => (special.has(id) ? [] : [t]));
    for (let i = 0; i < positions.length; i += size) {
      const part = positions.slice(i, i + size);
      const ids = part.map((t) => row.map((id, j) => (j === t ? opts.maskTokenId : id)));
      const labels = part.map((t) => row.map((id, j) => (j === t ? id : IGNORE_INDEX)));
      const types = opts.tokenTypeIds ? part.map(() => opts.tokenTypeIds![r] as number[]) : undefined;
      const res = tf.tidy(() => {
        const out = model.forward(ids, { tokenTypeIds: types });
        if (!out.logits) throw new ShapeError('the model has no masked-LM head', "load it with task 'masked-lm'");
        return tokenNll(out.logits, labels);
      });
      pll -= await take(res.sum);
      tokens += res.count;
    }
  }
  if (!tokens) throw new ConfigError('no token to score: every token is a special token', 'evaluate texts with words in them');
  return { pseudoLogLikelihood: pll, tokens, pseudoPerplexity: Math.exp(-pll / tokens) };
}
