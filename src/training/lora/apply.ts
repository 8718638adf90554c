/**
 * Put LoRA adapters on a model from outside, take them off, merge them (PEFT `LoraModel`:
 * `inject_adapter`, `merge_adapter` / `unmerge_adapter`, `merge_and_unload`, `unload`; mlx-lm's
 * `from_base` / `fuse`). Target modules match PEFT's rule: a module path equal to a target or ending in
 * `.<target>` (a single string is a regular expression matched against the whole path). Base parameters
 * are frozen; the adapters and PEFT's `modules_to_save` (the head of a classifier) are trainable.
 * The adapters' dropout follows the `training` / `rng` options of the model's own `forward`.
 */
import { Rng } from '../../backend/rng.js';
import { ConfigError, UnsupportedError } from '../../errors.js';
import { Conv1D, Linear } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import { LoraLayer, type DropoutContext } from './lora_linear.js';

/** PEFT's default `target_modules` per model_type (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const DEFAULT_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
};

/** The heads PEFT trains and saves beside the adapters of a sequence classifier (task SEQ_CLS). */
export const CLASSIFIER_MODULES: readonly string[] = ['classifier', 'score'];

/** What the user chooses (PEFT `LoraConfig` fields; unset ones take PEFT's defaults). */
export interface LoraConfig {
  /** Rank (PEFT default 8). */
  r?: number;
  /** lora_alpha (PEFT default 8). */
  alpha?: number;
  /** lora_dropout (PEFT default 0). */
  dropout?: number;
  /** Module names (suffix match) or one regular expression; default per model_type. */
  targetModules?: string[] | string;
  /** Modules trained and saved whole; default `classifier`/`score` for sequence classifiers, else none. */
  modulesToSave?: string[];
  useRslora?: boolean;
  /** Seed of lora_A's initial values (default 0). */
  seed?: number;
}

/** A LoRA config with every default filled in. */
export interface ResolvedLoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: string[] | string;
  modulesToSave: string[];
  useRslora: boolean;
  /** True when any wrapped layer is a Conv1D (PEFT's `fan_in_fan_out`). */
  fanInFanOut: boolean;
}

/** The adapters on one model. */
export interface LoraState {
  readonly config: ResolvedLoraConfig;
  /** Module path → adapter, in model order. */
  readonly layers: ReadonlyMap<string, LoraLayer>;
}

interface Internal extends LoraState {
  ctx: DropoutContext;
  /** Trainable flags before applyLora, restored on unload. */
  trainableBefore: Map<string, boolean>;
  ownForward?: unknown;
  patched: boolean;
}

const STATES = new WeakMap<Module, Internal>();

type Forwarding = Module & { forward?: (ids: unknown, opts?: DropoutContext) => unknown };

function modelType(model: Module): string | undefined {
  const cfg = (model as { config?: { model_type?: unknown } }).config;
  return typeof cfg?.model_type === 'string' ? cfg.model_type : undefined;
}

/** PEFT's module-name match: equal, or ending in `.<target>`; a string is a full-match regex. */
export function matchesTarget(path: string, targets: readonly string[] | string): boolean {
  if (typeof targets === 'string') return new RegExp(`^(?:${targets})$`).test(path);
  return targets.some((t) => path === t || path.endsWith(`.${t}`));
}

/** Whether parameter `name` belongs to a module matched by one of `modules` (PEFT's modules_to_save rule). */
export function underModules(name: string, modules: readonly string[]): boolean {
  const parts = name.split('.');
  for (let j = 1; j < parts.length; j++) if (matchesTarget(parts.slice(0, j).join('.'), modules)) return true;
  return false;
}

/** Whether a parameter name is a LoRA adapter tensor. */
export function isLoraParameter(name: string): boolean {
  return /(^|\.)lora_[AB]\.weight$/.test(name);
}

function check(cond: boolean, what: string, hint: string): void {
  if (!cond) throw new ConfigError(what, hint);
}

function resolve(model: Module, c: LoraConfig): Omit<ResolvedLoraConfig, 'fanInFanOut'> {
  const r = c.r ?? 8;
  const alpha = c.alpha ?? 8;
  const dropout = c.dropout ?? 0;
  check(Number.isInteger(r) && r >= 1, `LoRA rank r must be a positive integer, found ${r}`, 'use e.g. r=8');
  check(Number.isFinite(alpha) && alpha > 0, `LoRA alpha must be a positive number, found ${alpha}`, 'use e.g. alpha=16 (commonly 2·r)');
  check(dropout >= 0 && dropout < 1, `LoRA dropout must lie in [0, 1), found ${dropout}`, 'use e.g. dropout=0.05');
  const mt = modelType(model);
  const targetModules = c.targetModules ?? (mt ? DEFAULT_TARGET_MODULES[mt]?.slice() : undefined);
  if (!targetModules || targetModules.length === 0) {
    throw new ConfigError(`no LoRA target modules given and none known for model_type '${mt ?? '?'}'`, `name them, e.g. targets=q_proj+v_proj; defaults exist for ${Object.keys(DEFAULT_TARGET_MODULES).join(', ')}`);
  }
  if (typeof targetModules === 'string') {
    try {
      new RegExp(targetModules);
    } catch (e) {
      throw new ConfigError(`LoRA target_modules regular expression ${JSON.stringify(targetModules)} is invalid: ${(e as Error).message}`, 'give module names (a list) or a valid regular expression');
    }
  }
  const className = String((model as { className?: unknown }).className ?? '');
  const dflt = className.endsWith('ForSequenceClassification') ? CLASSIFIER_MODULES.slice() : [];
  const modulesToSave = c.modulesToSave ? [...new Set([...c.modulesToSave, ...dflt])] : dflt;
  return { r, alpha, dropout, targetModules, modulesToSave, useRslora: c.useRslora ?? false };
}

/**
 * Wrap every target Linear / Conv1D of `model` with a LoRA adapter (lora_A kaiming-uniform, lora_B zero,
 * so the model's output is unchanged), freeze every other parameter except `modulesToSave`, and return
 * the adapters. Fails when nothing matches or a match is not a Linear / Conv1D.
 */
export function applyLora(model: Module, config: LoraConfig = {}): LoraState {
  if (STATES.has(model)) throw new ConfigError('this model already has LoRA adapters', 'call mergeLora or unloadLora first, or keep training the existing adapters');
  const base = resolve(model, config);
  const found: [string, Linear | Conv1D][] = [];
  const modules = [...model.namedModules()];
  for (const [path, m] of modules) {
    if (!path || !matchesTarget(path, base.targetModules)) continue;
    if (!(m instanceof Linear || m instanceof Conv1D)) {
      throw new UnsupportedError(`LoRA target '${path}' is a ${m.constructor.name}; only Linear and Conv1D layers can take adapters`, 'name the projection layers themselves (e.g. c_attn, q_proj, query)');
    }
    found.push([path, m]);
  }
  if (!found.length) {
    const leaves = [...new Set(modules.filter(([, m]) => m instanceof Linear || m instanceof Conv1D).map(([p]) => p.split('.').pop()!))];
    throw new ConfigError(`LoRA target modules ${JSON.stringify(base.targetModules)} match no layer of this model`, `layer names here: ${leaves.join(', ')}`);
  }
  const trainableBefore = new Map([...model.namedParameters()].map(([n, v]) => [n, v.trainable]));
  const ctx: DropoutContext = {};
  const rng = new Rng(config.seed ?? 0);
  const layers = new Map<string, LoraLayer>();
  for (const [path, m] of found) layers.set(path, new LoraLayer(m, base, rng, ctx));
  for (const [name, v] of model.namedParameters()) v.trainable = isLoraParameter(name) || underModules(name, base.modulesToSave);
  const state: Internal = { config: { ...base, fanInFanOut: found.some(([, m]) => m instanceof Conv1D) }, layers, ctx, trainableBefore, patched: false };
  patchForward(model as Forwarding, state);
  STATES.set(model, state);
  return state;
}

// The adapters see `training`/`rng` only for the duration of the model's own forward call, so dropout
// follows the same switch as the rest of the model and no flag outlives the call.
function patchForward(model: Forwarding, state: Internal): void {
  const orig = model.forward;
  if (typeof orig !== 'function') return;
  state.ownForward = Object.prototype.hasOwnProperty.call(model, 'forward') ? orig : undefined;
  state.patched = true;
  model.forward = (ids: unknown, opts?: DropoutContext) => withLoraContext(model, { training: opts?.training, rng: opts?.rng }, () => orig.call(model, ids, opts));
}

/** Run `fn` with the adapters' dropout switched by `ctx` (for callers that run a submodule directly). */
export function withLoraContext<T>(model: Module, ctx: DropoutContext, fn: () => T): T {
  const s = STATES.get(model);
  if (!s) return fn();
  const saved = { training: s.ctx.training, rng: s.ctx.rng };
  s.ctx.training = ctx.training;
  s.ctx.rng = ctx.rng;
  try {
    return fn();
  } finally {
    s.ctx.training = saved.training;
    s.ctx.rng = saved.rng;
  }
}

/** The adapters on `model`, if any. */
export function loraState(model: Module): LoraState | undefined {
  return STATES.get(model);
}

function stateOf(model: Module, what: string): Internal {
  const s = STATES.get(model);
  if (!s) throw new ConfigError(`${what}: this model has no LoRA adapters`, 'call applyLora or loadLora first');
  return s;
}

/** Fold every adapter into its base weight, keeping the adapters (PEFT `merge_adapter`). */
export function mergeAdapters(model: Module): void {
  for (const l of stateOf(model, 'mergeAdapters').layers.values()) l.merge();
}

/** Undo {@link mergeAdapters} (PEFT `unmerge_adapter`). */
export function unmergeAdapters(model: Module): void {
  for (const l of stateOf(model, 'unmergeAdapters').layers.values()) l.unmerge();
}

function unload(model: Module, merge: boolean, what: string): void {
  const s = stateOf(model, what);
  for (const l of s.layers.values()) {
    if (merge) l.merge();
    else l.unmerge();
    l.remove();
  }
  for (const [name, v] of model.namedParameters()) v.trainable = s.trainableBefore.get(name) ?? true;
  if (s.patched) {
    const m = model as Forwarding;
    if (s.ownForward) m.forward = s.ownForward as Forwarding['forward'];
    else delete m.forward;
  }
  STATES.delete(model);
}

/** Fold the adapters into the base weights and remove them: a plain HF model again (PEFT `merge_and_unload`). */
export function mergeLora(model: Module): void {
  unload(model, true, 'mergeLora');
}

/** Remove the adapters without merging, restoring the base model (PEFT `unload`). */
export function unloadLora(model: Module): void {
  unload(model, false, 'unloadLora');
}
