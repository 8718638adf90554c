/**
 * AdamW with decoupled weight decay, step for step as `torch.optim.AdamW` (torch 1.13
 * `_single_tensor_adamw`): p ← p·(1 − lr·wd) first, then the moments, bias correction, and
 * p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε), with ε outside the square root. Each parameter
 * keeps its own step count, and a parameter without a gradient in an update is skipped entirely (no decay,
 * no step), as torch does for `p.grad is None`.
 *
 * Parameter groups carry their own learning rate and weight decay; HF Trainer's default split
 * (`get_decay_parameter_names`: no decay for biases and norm weights, decay for everything else,
 * embeddings included) is {@link decayParameterNames}. Layer-wise LR decay enters as a per-parameter
 * multiplier rule supplied from outside.
 */
import * as tf from '@tensorflow/tfjs-core';
import { adamwUpdate } from '../../backend/fused.js';
import { adamwHostMoments } from '../../backend/index.js';
import { ConfigError } from '../../errors.js';
import { LayerNorm, RMSNorm } from '../../nn/layers.js';
import type { Module, TensorSource } from '../../nn/module.js';

/** A set of parameters sharing a learning rate and a weight decay (a torch param group). */
export interface ParamGroup {
  /** Label for logs and checkpoints. */
  name: string;
  /** HF names of the group's parameters. */
  params: string[];
  /** Base learning rate; the schedule multiplies it. */
  lr: number;
  weightDecay: number;
}

/** Settings shared by every group. */
export interface AdamWSettings {
  /** (β₁, β₂), default (0.9, 0.999). */
  betas?: [number, number];
  /** Default 1e-8 (HF `adam_epsilon`; torch's own default is the same). */
  eps?: number;
  /** Learning-rate multiplier per parameter name (layer-wise LR decay); default 1. */
  lrScale?: (name: string) => number;
}

/** Options of {@link AdamW.forModel}. */
export interface AdamWOptions extends AdamWSettings {
  lr: number;
  /** Weight decay of the decayed group (HF `weight_decay`, default 0). */
  weightDecay?: number;
  /** Which parameters take weight decay; default HF Trainer's rule ({@link decayParameterNames}). */
  decay?: (name: string) => boolean;
}

/** A moment's values: the live state (read it, do not keep it across steps). */
export interface MomentView {
  readonly shape: number[];
  readonly dtype: 'float32';
  data(): Promise<Float32Array>;
  dataSync(): Float32Array;
}

/** Saved optimizer state: per-parameter step counts, and the moments. */
export interface AdamWState {
  steps: Record<string, number>;
  /** Keys `<name>.exp_avg` and `<name>.exp_avg_sq`. */
  tensors: Map<string, MomentView>;
}

// HF `Trainer.get_decay_parameter_names`: name patterns searched in the lower-cased dotted name.
const NO_DECAY_PATTERNS = [/bias/, /layernorm/, /rmsnorm/, /(?:^|\.)norm(?:$|\.)/, /_norm(?:$|\.)/];

/**
 * Names of the parameters that take weight decay, as HF Trainer's `get_decay_parameter_names`: every
 * parameter except those inside a LayerNorm/RMSNorm module (GPT-2's `ln_1`, `ln_f`) and those whose
 * lower-cased name contains `bias`, `layernorm`, `rmsnorm`, a `norm` component or a `_norm` suffix.
 * Embeddings are decayed.
 */
export function decayParameterNames(model: Module): Set<string> {
  const insideNorm = new Set<string>();
  for (const [prefix, m] of model.namedModules()) {
    if (m instanceof LayerNorm || m instanceof RMSNorm) {
      for (const [n] of m.namedParameters(prefix ? `${prefix}.` : '')) insideNorm.add(n);
    }
  }
  const out = new Set<string>();
  for (const [name] of model.namedParameters()) {
    if (!insideNorm.has(name) && !NO_DECAY_PATTERNS.some((p) => p.test(name.toLowerCase()))) out.add(name);
  }
  return out;
}

/** The name-only form of HF's rule, for names without a module tree (`ln_*` counts as a norm). */
export function decaysByName(name: string): boolean {
  const n = name.toLowerCase();
  return !NO_DECAY_PATTERNS.some((p) => p.test(n)) && !/(?:^|\.)ln_[^.]*\.weight$/.test(n);
}

interface Slot {
  name: string;
  param: tf.Variable;
  group: ParamGroup;
  step: number;
  m?: tf.Variable;
  v?: tf.Variable;
  /** The moments in host memory instead (native kernels on wasm/cpu: they stay out of the wasm heap). */
  hm?: Float32Array;
  hv?: Float32Array;
}

function tensorView(t: tf.Tensor): MomentView {
  return { shape: t.shape.slice(), dtype: 'float32', data: async () => (await t.data()) as Float32Array, dataSync: () => t.dataSync() as Float32Array };
}

function hostView(a: Float32Array, shape: number[]): MomentView {
  return { shape: shape.slice(), dtype: 'float32', data: async () => a, dataSync: () => a };
}

/** A non-trainable variable holding `init`'s values (the initial tensor is released). */
function stateVariable(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init, false);
  init.dispose();
  return v;
}

function positive(v: number, what: string, allowZero = false): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new ConfigError(`AdamW: ${what} must be a finite number ${allowZero ? '>= 0' : '> 0'}, got ${v}`);
  }
}

/** AdamW over named parameters; owns its moment tensors (call `dispose()`). */
export class AdamW {
  readonly groups: readonly ParamGroup[];
  readonly betas: [number, number];
  readonly eps: number;
  private readonly slots = new Map<string, Slot>();
  private readonly lrScale: (name: string) => number;

  /** Every named parameter must belong to exactly one group. */
  constructor(params: Iterable<[string, tf.Variable]>, groups: ParamGroup[], settings: AdamWSettings = {}) {
    this.betas = settings.betas ?? [0.9, 0.999];
    this.eps = settings.eps ?? 1e-8;
    this.lrScale = settings.lrScale ?? (() => 1);
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new ConfigError(`AdamW: betas must lie in [0, 1), got (${b1}, ${b2})`);
    positive(this.eps, 'eps', true);
    const byName = new Map(params);
    const owner = new Map<string, ParamGroup>();
    for (const g of groups) {
      positive(g.lr, `group '${g.name}' lr`, true);
      positive(g.weightDecay, `group '${g.name}' weight decay`, true);
      for (const n of g.params) {
        if (!byName.has(n)) throw new ConfigError(`AdamW: group '${g.name}' names parameter '${n}', which the model does not have`);
        if (owner.has(n)) throw new ConfigError(`AdamW: parameter '${n}' is in groups '${owner.get(n)!.name}' and '${g.name}'`, 'put each parameter in one group');
        owner.set(n, g);
      }
    }
    const orphans = [...byName.keys()].filter((n) => !owner.has(n));
    if (orphans.length) throw new ConfigError(`AdamW: ${orphans.length} parameter(s) in no group: ${orphans.slice(0, 8).join(', ')}${orphans.length > 8 ? ', …' : ''}`, 'list every parameter in one group');
    this.groups = groups.map((g) => ({ ...g, params: g.params.slice() }));
    const copyOf = new Map(groups.map((g, i) => [g, this.groups[i]]));
    for (const [n, p] of byName) this.slots.set(n, { name: n, param: p, group: copyOf.get(owner.get(n)!)!, step: 0 });
  }

  /** HF Trainer's optimizer: a decayed group and a no-decay group over every parameter of `model`. */
  static forModel(model: Module, opts: AdamWOptions): AdamW {
    const named = [...model.namedParameters()];
    const decayed = opts.decay ?? ((s: Set<string>) => (n: string) => s.has(n))(decayParameterNames(model));
    const wd = opts.weightDecay ?? 0;
    const groups: ParamGroup[] = [
      { name: 'decay', params: named.filter(([n]) => decayed(n)).map(([n]) => n), lr: opts.lr, weightDecay: wd },
      { name: 'no_decay', params: named.filter(([n]) => !decayed(n)).map(([n]) => n), lr: opts.lr, weightDecay: 0 },
    ];
    return new AdamW(named, groups, opts);
  }

  /** The learning rate a parameter gets at schedule factor `lrFactor` (group lr × factor × scale). */
  lrOf(name: string, lrFactor = 1): number {
    const slot = this.slots.get(name);
    if (!slot) throw new ConfigError(`AdamW: unknown parameter '${name}'`);
    return slot.group.lr * lrFactor * this.lrScale(name);
  }

  /** Updates made so far to one parameter. */
  stepOf(name: string): number {
    return this.slots.get(name)?.step ?? 0;
  }

  /**
   * One update. `grads` maps parameter names to gradients (not disposed here); parameters without a
   * gradient, and those whose `trainable` flag is false, are left exactly as they are.
   */
  step(grads: ReadonlyMap<string, tf.Tensor>, lrFactor = 1): void {
    positive(lrFactor, 'learning-rate factor', true);
    const [b1, b2] = this.betas;
    for (const [name, g] of grads) {
      const slot = this.slots.get(name);
      if (!slot) throw new ConfigError(`AdamW: gradient for '${name}', which is in no parameter group`, 'create the optimizer after adding parameters (LoRA, heads)');
      if (!slot.param.trainable) continue;
      const p = slot.param;
      const host = adamwHostMoments();
      if (!slot.m && !slot.hm) {
        if (host) {
          slot.hm = new Float32Array(p.size);
          slot.hv = new Float32Array(p.size);
        } else {
          slot.m = stateVariable(tf.zerosLike(p));
          slot.v = stateVariable(tf.zerosLike(p));
        }
      }
      const lr = this.lrOf(name, lrFactor);
      const wd = slot.group.weightDecay;
      slot.step += 1;
      const bc1 = 1 - b1 ** slot.step;
      const bc2Sqrt = Math.sqrt(1 - b2 ** slot.step);
      const c = { lr, weightDecay: wd, beta1: b1, beta2: b2, eps: this.eps, bc2Sqrt, stepSize: lr / bc1 };
      if (slot.hm && host && g.dtype === 'float32' && g.size === p.size) {
        const p2 = host(p, g, slot.hm, slot.hv!, c);
        p.assign(p2);
        p2.dispose();
        continue;
      }
      if (slot.hm) this.toTensors(slot);
      // One fused kernel when the backend has it, else the same ops in torch's order (bit-identical).
      const [p2, m2, v2] = adamwUpdate(p, slot.m!, slot.v!, g, c);
      p.assign(p2);
      slot.m!.assign(m2);
      slot.v!.assign(v2);
      tf.dispose([p2, m2, v2]);
    }
  }

  /** Host moments back into variables (the native kernels were switched off since they were made). */
  private toTensors(slot: Slot): void {
    slot.m = stateVariable(tf.tensor(slot.hm!, slot.param.shape, 'float32'));
    slot.v = stateVariable(tf.tensor(slot.hv!, slot.param.shape, 'float32'));
    slot.hm = slot.hv = undefined;
  }

  /** Step counts and moments, for checkpoints (the tensors are the live state: copy before changing). */
  state(): AdamWState {
    const steps: Record<string, number> = {};
    const tensors = new Map<string, MomentView>();
    for (const [n, s] of this.slots) {
      if (s.hm) {
        steps[n] = s.step;
        tensors.set(`${n}.exp_avg`, hostView(s.hm, s.param.shape));
        tensors.set(`${n}.exp_avg_sq`, hostView(s.hv!, s.param.shape));
      } else if (s.m) {
        steps[n] = s.step;
        tensors.set(`${n}.exp_avg`, tensorView(s.m));
        tensors.set(`${n}.exp_avg_sq`, tensorView(s.v!));
      }
    }
    return { steps, tensors };
  }

  /** Restore {@link state}: every listed parameter must exist with moments of its shape. */
  loadState(steps: Record<string, number>, source: TensorSource, origin = 'optimizer state'): void {
    const problems: string[] = [];
    for (const [n, step] of Object.entries(steps)) {
      const slot = this.slots.get(n);
      if (!slot) problems.push(`'${n}' is not a parameter of this optimizer`);
      else if (!Number.isInteger(step) || step < 1) problems.push(`'${n}' has step ${step}`);
      else {
        for (const k of [`${n}.exp_avg`, `${n}.exp_avg_sq`]) {
          if (!source.keys().includes(k)) problems.push(`missing ${k}`);
          else if (source.shape(k).join(',') !== slot.param.shape.join(',')) problems.push(`${k} has shape [${source.shape(k)}], parameter [${slot.param.shape}]`);
        }
      }
    }
    if (problems.length) throw new ConfigError(`${origin} does not fit this optimizer:\n  ${problems.join('\n  ')}`, 'resume with the same model, finetuning mode and parameter groups that wrote the checkpoint');
    for (const s of this.slots.values()) this.clearSlot(s);
    for (const [n, step] of Object.entries(steps)) {
      const slot = this.slots.get(n)!;
      slot.step = step;
      const m = Float32Array.from(source.read(`${n}.exp_avg`));
      const v = Float32Array.from(source.read(`${n}.exp_avg_sq`));
      if (adamwHostMoments()) {
        slot.hm = m;
        slot.hv = v;
      } else {
        slot.m = stateVariable(tf.tensor(m, slot.param.shape, 'float32'));
        slot.v = stateVariable(tf.tensor(v, slot.param.shape, 'float32'));
      }
    }
  }

  private clearSlot(s: Slot): void {
    s.m?.dispose();
    s.v?.dispose();
    s.m = s.v = undefined;
    s.hm = s.hv = undefined;
    s.step = 0;
  }

  /** Free the moments (the parameters belong to the model). */
  dispose(): void {
    for (const s of this.slots.values()) this.clearSlot(s);
  }
}
