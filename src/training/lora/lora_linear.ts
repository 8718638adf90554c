/**
 * One LoRA adapter on an existing layer (PEFT `tuners/lora/layer.py`, LoRA paper §4.1): the base layer
 * keeps its weight W frozen and gains `lora_A` [r, in] and `lora_B` [out, r] as child modules, so their
 * names are PEFT's (`…c_attn.lora_A.weight`). The output becomes y = base(x) + s·B·A·dropout(x) with
 * s = alpha / r (alpha / √r with rsLoRA). GPT-2's Conv1D stores W as [in, out] (PEFT's
 * `fan_in_fan_out=True`), so the merged delta is transposed for it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../backend/rng.js';
import { Conv1D, dropout, Linear, matMulWT } from '../../nn/layers.js';

/** Layers LoRA can wrap. */
export type LoraBase = Linear | Conv1D;

/** Hyper-parameters of one adapter. */
export interface LoraLayerOptions {
  r: number;
  alpha: number;
  /** Dropout on the adapter's input while training. */
  dropout: number;
  /** rsLoRA scaling alpha / √r instead of alpha / r. */
  useRslora?: boolean;
}

/** Training switch and mask stream for the adapter's dropout during one forward pass. */
export interface DropoutContext {
  training?: boolean;
  rng?: Rng;
}

/** PyTorch's kaiming_uniform_(a=√5) on [r, in]: U(−1/√in, 1/√in), as PEFT initialises lora_A. */
function kaimingUniformA(rng: Rng, r: number, fanIn: number): tf.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  const v = new Float32Array(r * fanIn);
  for (let i = 0; i < v.length; i++) v[i] = (2 * rng.random() - 1) * bound;
  return tf.tensor2d(v, [r, fanIn]);
}

/** The adapter state of one wrapped layer; A and B live on the base layer as children. */
export class LoraLayer {
  readonly lora_A: Linear;
  readonly lora_B: Linear;
  readonly scaling: number;
  /** True for Conv1D, whose weight is [in, out]. */
  readonly fanInFanOut: boolean;
  private mergedFlag = false;

  constructor(readonly base: LoraBase, readonly options: LoraLayerOptions, rng: Rng, private readonly ctx: DropoutContext) {
    const { r, alpha } = options;
    if (!(Number.isInteger(r) && r >= 1)) throw new RangeError(`LoRA rank r must be a positive integer, got ${r}`);
    this.fanInFanOut = base instanceof Conv1D;
    this.scaling = options.useRslora ? alpha / Math.sqrt(r) : alpha / r;
    this.lora_A = base.attach('lora_A', new Linear(base.inFeatures, r, { std: 0 }, false));
    this.lora_B = base.attach('lora_B', new Linear(r, base.outFeatures, { std: 0 }, false));
    const a = kaimingUniformA(rng, r, base.inFeatures);
    this.lora_A.weight.assign(a);
    a.dispose();
    base.delta = (x) => this.forward(x);
  }

  /** Whether the delta is currently folded into the base weight. */
  get merged(): boolean {
    return this.mergedFlag;
  }

  /** The adapter's term for x [N, in] → [N, out]: s · (dropout(x) Aᵀ) Bᵀ. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = dropout(x, this.options.dropout, this.ctx);
      return tf.mul(matMulWT(matMulWT(h, this.lora_A.weight), this.lora_B.weight), this.scaling);
    });
  }

  /** s·B·A in the base weight's layout: [out, in] for Linear, [in, out] for Conv1D. */
  deltaWeight(): tf.Tensor {
    return tf.tidy(() => {
      const ba = tf.mul(tf.matMul(this.lora_B.weight, this.lora_A.weight), this.scaling);
      return this.fanInFanOut ? tf.transpose(ba) : ba;
    });
  }

  /** Fold the delta into the base weight; the base then computes alone (PEFT `merge`). */
  merge(): void {
    if (this.mergedFlag) return;
    this.shiftBase(1);
    this.base.delta = undefined;
    this.mergedFlag = true;
  }

  /** Subtract the delta again and restore the adapter path (PEFT `unmerge`). */
  unmerge(): void {
    if (!this.mergedFlag) return;
    this.shiftBase(-1);
    this.base.delta = (x) => this.forward(x);
    this.mergedFlag = false;
  }

  /** Detach and free A and B; the base layer is left as it is (merged or not). */
  remove(): void {
    this.base.delta = undefined;
    for (const name of ['lora_A', 'lora_B']) this.base.detach(name)?.dispose();
  }

  private shiftBase(sign: 1 | -1): void {
    const w = tf.tidy(() => tf.add(this.base.weight, tf.mul(this.deltaWeight(), sign)));
    this.base.weight.assign(w);
    w.dispose();
  }
}
