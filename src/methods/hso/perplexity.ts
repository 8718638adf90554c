/**
 * Streaming perplexity, plain or with hidden-state optimisation (Yoshida & Gimpel 2021, methods.md §4.3).
 *
 * The text is fed in windows of k input tokens; window j feeds inputs x[jk .. jk+k−1] and is scored on the
 * targets x[jk+1 .. jk+k], each predicted in a forward pass whose past is the cache as it stands (the spec's
 * "x_{s_j} predicted from the previous window's last logit" is the same bookkeeping, indexed by targets). No
 * peeking: a window is scored before its own gradient step. With HSO, the window's summed loss is then
 * differentiated with respect to every cached key and value (and, with `updateCurrentWindow`, with respect
 * to a kvDelta on the window's own keys and values), and a {@link SlotAdam} updates them; the window's
 * states are appended and the oldest slots beyond `maxCache` are evicted with their moments.
 *
 * Positions: `absolute` (default for rotary models, whose dims report no length limit) gives window j the
 * positions of its tokens in the stream, so cached keys keep their rotations and relative distances stay
 * true after eviction. `cache` (default for learned position tables such as GPT-2's n_positions) gives new
 * tokens positions S..S+T−1 with S the current cache length, as a sliding cache does: after an eviction the
 * kept keys keep the position embeddings they were computed with (they are never recomputed — they are the
 * optimised variables), and positions stay below n_positions as long as maxCache + window ≤ n_positions.
 *
 * With several steps per window, every step re-runs the window on the updated cache; the first step's
 * log-probabilities are the ones counted, and the states appended are those of the last forward pass
 * (plus, with `updateCurrentWindow`, their accumulated offset).
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeAll } from '../../backend/memory.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { KVCache } from '../../nn/attention.js';
import type { CausalLM, ModelDims } from '../../models/types.js';
import { lossGradsWithAux, pickLogProbs } from './grad.js';
import { SlotAdam, type SlotAdamOptions } from './slot_adam.js';
import { concatSlots, flattenSlots, mapSlots, sliceSlots, slotCount, unflattenSlots, zeroSlots } from './slots.js';

/** HSO settings for streaming evaluation. */
export interface HsoOptions extends SlotAdamOptions {
  /** Gradient steps per window (default 1, as in dynamic evaluation). */
  steps?: number;
  /** Also optimise the window's own new keys/values with its own loss, through kvDelta (default false). */
  updateCurrentWindow?: boolean;
}

/** Streaming evaluation settings. */
export interface StreamingOptions {
  /** Input tokens per forward pass (default 64). */
  window?: number;
  /** Most slots kept; the oldest are evicted. Default: maxPositions − window, or no limit for rotary models. */
  maxCache?: number;
  /** Position ids of new tokens (see the file header); default from the model's position limit. */
  positions?: 'absolute' | 'cache';
  /** Turn HSO on; absent means plain streaming. */
  hso?: HsoOptions;
  /** Stop between windows; the result then covers the windows scored so far. */
  signal?: AbortSignal;
  /** Called after each window. */
  onWindow?: (report: WindowReport) => void;
}

/** What one window contributed. */
export interface WindowReport {
  index: number;
  /** Stream index of the window's first target token. */
  start: number;
  tokens: number;
  /** Summed negative log-likelihood of the window's targets (natural log). */
  nll: number;
  cacheLength: number;
}

/** Result of a streaming evaluation. */
export interface StreamingResult {
  /** Tokens scored (every token but the first). */
  tokens: number;
  nll: number;
  /** exp(nll / tokens) */
  perplexity: number;
  windows: number;
  seconds: number;
  /** log p of each scored token, in stream order. */
  logProbs: number[];
  window: number;
  maxCache: number;
  positions: 'absolute' | 'cache';
  aborted: boolean;
}

interface Resolved {
  window: number;
  maxCache: number;
  positions: 'absolute' | 'cache';
  steps: number;
  update: boolean;
}

function resolve(dims: ModelDims, o: StreamingOptions): Resolved {
  const window = o.window ?? 64;
  if (!Number.isInteger(window) || window < 1) throw new ConfigError(`window must be a positive integer, got ${window}`, 'try 64');
  const limited = Number.isFinite(dims.maxPositions);
  if (window > dims.maxPositions) throw new ConfigError(`window (${window}) exceeds the model's ${dims.maxPositions} positions`, `use a window of at most ${Math.floor(dims.maxPositions / 2)}`);
  const positions = o.positions ?? (limited ? 'cache' : 'absolute');
  const maxCache = o.maxCache ?? (limited ? dims.maxPositions - window : Infinity);
  if (!(maxCache >= 0) || (Number.isFinite(maxCache) && !Number.isInteger(maxCache))) throw new ConfigError(`maxCache must be a non-negative integer, got ${maxCache}`);
  if (positions === 'cache' && maxCache + window > dims.maxPositions) {
    throw new ConfigError(`maxCache (${maxCache}) + window (${window}) exceeds the model's ${dims.maxPositions} positions`, `use maxCache <= ${Math.max(0, dims.maxPositions - window)} or a smaller window`);
  }
  const steps = o.hso?.steps ?? 1;
  if (!Number.isInteger(steps) || steps < 1) throw new ConfigError(`HSO steps per window must be a positive integer, got ${steps}`, 'the usual value is 1');
  return { window, maxCache, positions, steps, update: !!o.hso?.updateCurrentWindow };
}

/**
 * A stream being evaluated: feed windows in order; each is scored against the cache, then (with HSO)
 * the cache is optimised on it. Owns its cache and optimiser state; dispose it.
 */
export class HsoStream {
  private readonly r: Resolved;
  private readonly dims: ModelDims;
  private readonly adam?: SlotAdam;
  private plain: KVCache = [];
  private fed = 0;

  constructor(readonly model: CausalLM, opts: StreamingOptions = {}) {
    this.dims = model.dims();
    this.r = resolve(this.dims, opts);
    if (opts.hso) this.adam = new SlotAdam(opts.hso);
  }

  /** The settings in force (defaults filled in). */
  get settings(): Readonly<Resolved> {
    return this.r;
  }

  /** Slots cached now. */
  get cacheLength(): number {
    return this.adam ? this.adam.length : slotCount(this.plain);
  }

  /** The optimiser holding cache and moments (undefined for plain streaming). */
  get optimiser(): SlotAdam | undefined {
    return this.adam;
  }

  /** The cache (borrowed; valid until the next feed). */
  get cache(): KVCache {
    return this.adam ? this.adam.params : this.plain;
  }

  /** Score `targets` (targets[t] follows inputs[t]) against the cache, then update and extend it; returns log p per target. */
  async feed(inputs: number[], targets: number[]): Promise<number[]> {
    const T = inputs.length;
    if (T === 0 || targets.length !== T) throw new ShapeError(`feed needs as many targets as inputs (>= 1), got ${T} inputs and ${targets.length} targets`);
    const S = this.cacheLength;
    const p0 = this.r.positions === 'absolute' ? this.fed : S;
    const positionIds = [Array.from({ length: T }, (_, t) => p0 + t)];
    const lps = this.adam && (S > 0 || this.r.update) ? await this.hsoWindow(inputs, targets, positionIds, S) : await this.plainWindow(inputs, targets, positionIds, S);
    this.fed += T;
    const excess = this.cacheLength - this.r.maxCache;
    if (this.adam) {
      this.adam.evictOldest(excess);
    } else if (excess > 0) {
      const kept = sliceSlots(this.plain, excess);
      disposeAll(this.plain);
      this.plain = kept;
    }
    return lps;
  }

  private async plainWindow(inputs: number[], targets: number[], positionIds: number[][], S: number): Promise<number[]> {
    const out = this.model.forward([inputs], { cache: S ? this.cache : undefined, positionIds });
    const lp = pickLogProbs(out.logits, [targets]);
    out.logits.dispose();
    const values = Array.from(await lp.data());
    lp.dispose();
    if (this.adam) {
      this.adam.append(out.cache); // S = 0: every slot is new
    } else {
      disposeAll(this.plain);
      this.plain = out.cache;
    }
    return values;
  }

  private async hsoWindow(inputs: number[], targets: number[], positionIds: number[][], S: number): Promise<number[]> {
    const adam = this.adam!;
    const { layers: L, kvHeads, headDim } = this.dims;
    const T = inputs.length;
    const shape = [1, kvHeads, T, headDim];
    if (this.r.update) adam.append(zeroSlots(L, shape));
    let scored: number[] | undefined;
    let carry: KVCache | undefined; // what the window leaves in the cache (states, or states minus the delta used)
    for (let s = 0; s < this.r.steps; s++) {
      const past = S ? (this.r.update ? sliceSlots(adam.params, 0, S) : adam.params) : undefined;
      const delta = this.r.update ? sliceSlots(adam.params, S) : undefined;
      const nPast = past ? 2 * L : 0;
      const r = await lossGradsWithAux((xs) => {
        const out = this.model.forward([inputs], { cache: past && unflattenSlots(xs.slice(0, nPast)), kvDelta: delta && unflattenSlots(xs.slice(nPast)), positionIds });
        const lp = pickLogProbs(out.logits, [targets]).reshape([T]);
        return { loss: tf.neg(tf.sum(lp)), aux: [lp, ...flattenSlots(sliceSlots(out.cache, S))] };
      }, [...(past ? flattenSlots(past) : []), ...(delta ? flattenSlots(delta) : [])], [[T], ...new Array<number[]>(2 * L).fill(shape)]);
      const [lp, ...fresh] = r.aux;
      if (s === 0) scored = Array.from(await lp.data());
      const gPast = past ? unflattenSlots(r.grads.slice(0, nPast)) : undefined;
      const gDelta = delta ? unflattenSlots(r.grads.slice(nPast)) : undefined;
      const grads = concatSlots(gPast, gDelta);
      adam.step(grads);
      const states = unflattenSlots(fresh);
      disposeAll(carry);
      carry = delta ? mapSlots(states, (a, d) => tf.sub(a, d), delta) : states;
      disposeAll([lp, r.grads, grads, delta]);
      if (delta) disposeAll(states);
      if (past && this.r.update) disposeAll(past);
    }
    // The tail holds the accumulated delta; adding (states − delta used) leaves states + final delta.
    if (this.r.update) {
      adam.addToTail(carry!);
      disposeAll(carry);
    } else {
      adam.append(carry!);
    }
    return scored!;
  }

  /** Free the cache and the optimiser state. */
  dispose(): void {
    this.adam?.dispose();
    disposeAll(this.plain);
    this.plain = [];
  }
}

/**
 * Perplexity of `ids` (every token after the first is scored) read as a stream in windows, plain or with
 * HSO (`opts.hso`). The first token is context only: prepend BOS to score the text's first token.
 */
export async function streamingPerplexity(model: CausalLM, ids: number[], opts: StreamingOptions = {}): Promise<StreamingResult> {
  if (ids.length < 2) throw new ShapeError(`streaming perplexity needs at least 2 tokens (a context and a token), got ${ids.length}`, 'score a longer text, or prepend the BOS token');
  const stream = new HsoStream(model, opts);
  const { window, maxCache, positions } = stream.settings;
  const max = model.dims().maxPositions;
  if (positions === 'absolute' && ids.length - 1 > max) {
    stream.dispose();
    throw new ConfigError(`absolute positions over a stream of ${ids.length - 1} inputs exceed the model's ${max} positions`, "use positions: 'cache' (a sliding cache)");
  }
  const t0 = performance.now();
  const logProbs: number[] = [];
  let windows = 0;
  let aborted = false;
  try {
    for (let start = 0; start < ids.length - 1; start += window) {
      if (opts.signal?.aborted) {
        aborted = true;
        break;
      }
      const end = Math.min(start + window, ids.length - 1);
      const lps = await stream.feed(ids.slice(start, end), ids.slice(start + 1, end + 1));
      logProbs.push(...lps);
      opts.onWindow?.({ index: windows, start: start + 1, tokens: lps.length, nll: -lps.reduce((a, b) => a + b, 0), cacheLength: stream.cacheLength });
      windows++;
    }
  } finally {
    stream.dispose();
  }
  const nll = -logProbs.reduce((a, b) => a + b, 0);
  const tokens = logProbs.length;
  return { tokens, nll, perplexity: tokens ? Math.exp(nll / tokens) : NaN, windows, seconds: (performance.now() - t0) / 1000, logProbs, window, maxCache, positions, aborted };
}
