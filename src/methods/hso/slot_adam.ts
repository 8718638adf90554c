/**
 * Adam whose variables are cache slots (Yoshida & Gimpel 2021, "Reconsidering the Past": separate moment
 * estimates for each hidden state, consistent as states move through the cache; methods.md §4.3).
 * `tf.train.adam` cannot do this: it keeps one global step and its moments cannot shift. Here the
 * optimised values, the moments m and v, and the step counts all live in the cache's layout, and the only
 * ways to change that layout — {@link SlotAdam.append} and {@link SlotAdam.evictOldest} — act on all of
 * them together, so a slot keeps its own moments wherever it moves.
 *
 * A slot is one (layer, position, key|value) vector. All slots of one position are always appended,
 * updated and evicted together, so one step counter per position is exact; it is kept as a JS array.
 * The update is torch's Adam: p ← p − (lr / (1 − β₁ᶜ)) · m / (√v / √(1 − β₂ᶜ) + ε), with c the slot's own
 * count (`per-slot`, default) or the number of updates this optimiser has made (`global`, like a
 * parameter that was always present — the paper does not say which it used).
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeAll, tidy } from '../../backend/memory.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { KVCache } from '../../nn/attention.js';
import { concatSlots, mapSlots, sliceSlots, slotCount, zerosLikeSlots } from './slots.js';

/** Adam settings for slot updates. */
export interface SlotAdamOptions {
  /** Learning rate η (default 1e-3). */
  lr?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Step count used for bias correction: each slot's own (default) or the optimiser's. */
  biasCorrection?: 'per-slot' | 'global';
}

/** Settings with every default filled in and checked. */
export function resolveSlotAdam(o: SlotAdamOptions = {}): Required<SlotAdamOptions> {
  const r = { lr: o.lr ?? 1e-3, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, biasCorrection: o.biasCorrection ?? 'per-slot' } as Required<SlotAdamOptions>;
  if (!(r.lr >= 0) || !Number.isFinite(r.lr)) throw new ConfigError(`HSO learning rate must be a finite number >= 0, got ${r.lr}`, 'try 1e-3');
  for (const k of ['beta1', 'beta2'] as const) if (!(r[k] >= 0 && r[k] < 1)) throw new ConfigError(`HSO ${k} must lie in [0, 1), got ${r[k]}`, 'the usual values are 0.9 and 0.999');
  if (!(r.eps > 0)) throw new ConfigError(`HSO eps must be > 0, got ${r.eps}`, 'the usual value is 1e-8');
  if (r.biasCorrection !== 'per-slot' && r.biasCorrection !== 'global') throw new ConfigError(`HSO biasCorrection must be 'per-slot' or 'global', got '${String(r.biasCorrection)}'`);
  return r;
}

/** Values in cache layout with per-slot Adam state; owns every tensor it holds. */
export class SlotAdam {
  readonly options: Required<SlotAdamOptions>;
  private p: KVCache = [];
  private m: KVCache = [];
  private v: KVCache = [];
  private counts: number[] = [];
  private updates = 0;

  constructor(options: SlotAdamOptions = {}) {
    this.options = resolveSlotAdam(options);
  }

  /** Number of time slots held. */
  get length(): number {
    return this.counts.length;
  }

  /** The optimised values, per layer [B, Hkv, S, Dh]: borrowed, valid until the next call that changes them. */
  get params(): KVCache {
    return this.p;
  }

  /** First and second moments in the same layout (borrowed, for inspection). */
  get moments(): { m: KVCache; v: KVCache } {
    return { m: this.m, v: this.v };
  }

  /** Each position's update count, oldest first. */
  get steps(): readonly number[] {
    return this.counts;
  }

  /** Updates made so far (the `global` bias-correction count). */
  get globalStep(): number {
    return this.updates;
  }

  /** Append slots at the end with zero moments and zero counts; takes ownership of `kv`. */
  append(kv: KVCache): void {
    const T = slotCount(kv);
    if (T === 0) return disposeAll(kv);
    if (this.p.length && kv.length !== this.p.length) throw new ShapeError(`SlotAdam.append: ${kv.length} layers, the held values have ${this.p.length}`);
    const zeros = zerosLikeSlots(kv);
    this.replace(concatSlots(this.p, kv), concatSlots(this.m, zeros), concatSlots(this.v, zeros));
    disposeAll([kv, zeros]);
    this.counts.push(...new Array<number>(T).fill(0));
  }

  /** Drop the `n` oldest slots together with their moments and counts. */
  evictOldest(n: number): void {
    if (n <= 0) return;
    if (n >= this.length) {
      this.replace([], [], []);
      this.counts = [];
      return;
    }
    this.replace(sliceSlots(this.p, n), sliceSlots(this.m, n), sliceSlots(this.v, n));
    this.counts = this.counts.slice(n);
  }

  /** One Adam update of every held slot from `grads` (same layout; the caller keeps ownership). */
  step(grads: KVCache): void {
    if (slotCount(grads) !== this.length || grads.length !== this.p.length) {
      throw new ShapeError(`SlotAdam.step: gradients have ${grads.length} layers × ${slotCount(grads)} slots, the held values ${this.p.length} × ${this.length}`);
    }
    if (this.length === 0) return;
    const { lr, beta1, beta2, eps, biasCorrection } = this.options;
    this.updates++;
    this.counts = this.counts.map((c) => c + 1);
    const c = biasCorrection === 'global' ? this.counts.map(() => this.updates) : this.counts;
    const S = this.length;
    // Per-position factors, computed in float64 and broadcast over batch, heads and head size.
    const [f1, f2] = tidy(() => [
      tf.tensor(c.map((n) => lr / (1 - beta1 ** n)), [1, 1, S, 1]),
      tf.tensor(c.map((n) => 1 / Math.sqrt(1 - beta2 ** n)), [1, 1, S, 1]),
    ]);
    const m = mapSlots(this.m, (mt, g) => tf.add(tf.mul(mt, beta1), tf.mul(g, 1 - beta1)), grads);
    const v = mapSlots(this.v, (vt, g) => tf.add(tf.mul(vt, beta2), tf.mul(tf.square(g), 1 - beta2)), grads);
    const p = mapSlots(this.p, (pt, mt, vt) => tf.sub(pt, tf.div(tf.mul(mt, f1), tf.add(tf.mul(tf.sqrt(vt), f2), eps))), m, v);
    disposeAll([f1, f2]);
    this.replace(p, m, v);
  }

  /** Add `offset` (same layout, the caller keeps it) to the newest slots' values; moments unchanged. */
  addToTail(offset: KVCache): void {
    const T = slotCount(offset);
    if (T === 0) return;
    if (T > this.length) throw new ShapeError(`SlotAdam.addToTail: ${T} slots, only ${this.length} held`);
    const S = this.length;
    const p = tidy(() => concatSlots(S > T ? sliceSlots(this.p, 0, S - T) : [], mapSlots(sliceSlots(this.p, S - T), (a, b) => tf.add(a, b), offset)));
    disposeAll(this.p);
    this.p = p;
  }

  /** Hand the values over to the caller (who then owns them) and free the moments; the optimiser is empty after. */
  take(): KVCache {
    const p = this.p;
    this.p = [];
    this.replace([], [], []);
    this.counts = [];
    return p;
  }

  /** Free every tensor held. */
  dispose(): void {
    this.replace([], [], []);
    this.counts = [];
  }

  private replace(p: KVCache, m: KVCache, v: KVCache): void {
    disposeAll([this.p, this.m, this.v]);
    this.p = p;
    this.m = m;
    this.v = v;
  }
}
