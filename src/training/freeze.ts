/**
 * Finetuning modes as rules over HF parameter names (DESIGN "Training", STYLE habit 11): a rule maps
 * a name and the model's layer count to {trainable, lrScale}; the trainer reads the result and never
 * branches on the mode. Names are placed by pattern for every family: embeddings (`transformer.wte`,
 * `model.embed_tokens`, `bert.embeddings`), block N (`transformer.h.N.`, `model.layers.N.`,
 * `bert|roberta.encoder.layer.N.`), the top of the stack (`ln_f`, `model.norm`, BERT's pooler) and the
 * head (everything outside the base: `classifier`, `score`, `lm_head`, `cls`).
 * Choices, after the finetuning-stability literature (Howard & Ruder 2018; Sun et al. 2019;
 * Zhang et al. 2021; Mosbach et al. 2021; Ben Zaken et al. 2022 for BitFit):
 * - last-layer ("freeze everything except the last layer"): the head, the top block and what sits
 *   between them (final norm, pooler) train; a tied LM head is the embedding matrix and stays frozen.
 * - freeze-lower:K: embeddings and blocks 0..K-1 frozen (K = 0 freezes nothing).
 * - llrd:γ: all train; block i gets lr·γ^(L-1-i), embeddings lr·γ^L, top norm / pooler / head lr.
 * - bitfit: every `.bias` (LayerNorm's too) plus the head.
 * - lora: adapter tensors plus PEFT's modules_to_save (a classifier's head); see lora/apply.ts.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { isLoraParameter, underModules } from './lora/apply.js';

/** What a rule decides for one parameter. */
export interface ParamPolicy {
  trainable: boolean;
  /** Multiplier on the learning rate (1 = the schedule's lr). */
  lrScale: number;
}

/** A finetuning mode: HF parameter name and number of blocks → policy. */
export type ParamRule = (name: string, layers: number) => ParamPolicy;

/** Where a parameter sits in the network. */
export type ParamPlace = { kind: 'embeddings' } | { kind: 'layer'; index: number } | { kind: 'top' } | { kind: 'head' };

const BASE = '(?:(?:transformer|model|bert|roberta)\\.)?';
const LAYER = new RegExp(`^${BASE}(?:h|layers|encoder\\.layer)\\.(\\d+)\\.`);
const EMBED = new RegExp(`^${BASE}(?:wte|wpe|embed_tokens|embeddings)\\.`);
const TOP = new RegExp(`^${BASE}(?:ln_f|norm|pooler)\\.`);
const BASE_ROOT = /^(?:transformer|model|bert|roberta)\./;

/** The block index in a parameter name (`transformer.h.3.…` → 3), or null outside the blocks. */
export function layerIndex(name: string): number | null {
  const m = LAYER.exec(name);
  return m ? Number(m[1]) : null;
}

/** Place a parameter name; fails for a name inside a base model that fits no known part. */
export function paramPlace(name: string): ParamPlace {
  const i = layerIndex(name);
  if (i !== null) return { kind: 'layer', index: i };
  if (EMBED.test(name)) return { kind: 'embeddings' };
  if (TOP.test(name)) return { kind: 'top' };
  if (BASE_ROOT.test(name)) throw new ConfigError(`cannot place parameter '${name}' in embeddings, blocks or the top of the stack`, 'finetuning rules know GPT-2, Llama and BERT/RoBERTa names; use mode "full" for other models');
  return { kind: 'head' };
}

const TRAIN: ParamPolicy = { trainable: true, lrScale: 1 };
const FREEZE: ParamPolicy = { trainable: false, lrScale: 1 };
const on = (b: boolean): ParamPolicy => (b ? TRAIN : FREEZE);

/** Every parameter trains at the full rate. */
export const fullRule: ParamRule = (name) => {
  paramPlace(name);
  return TRAIN;
};

/** Only the head, the top block and the final norm / pooler train. */
export const lastLayerRule: ParamRule = (name, layers) => {
  const p = paramPlace(name);
  return on(p.kind === 'head' || p.kind === 'top' || (p.kind === 'layer' && p.index === layers - 1));
};

function checkK(k: number, layers: number, mode: string): void {
  if (!Number.isInteger(k) || k < 0 || k > layers) throw new ConfigError(`${mode}:${k} needs 0 ≤ K ≤ ${layers} (the model has ${layers} blocks)`, `choose K between 0 and ${layers}`);
}

/** Embeddings and blocks 0..k-1 frozen (nothing for k = 0), the rest trains. */
export function freezeLowerRule(k: number): ParamRule {
  return (name, layers) => {
    checkK(k, layers, 'freeze-lower');
    const p = paramPlace(name);
    return on(!((p.kind === 'embeddings' && k > 0) || (p.kind === 'layer' && p.index < k)));
  };
}

/** Layer-wise LR decay: block i at γ^(L-1-i), embeddings at γ^L, top and head at 1. */
export function llrdRule(decay: number): ParamRule {
  if (!(decay > 0 && decay <= 1)) throw new ConfigError(`llrd decay must lie in (0, 1], found ${decay}`, 'use e.g. llrd:0.9');
  return (name, layers) => {
    const p = paramPlace(name);
    if (p.kind === 'layer') return { trainable: true, lrScale: decay ** (layers - 1 - p.index) };
    if (p.kind === 'embeddings') return { trainable: true, lrScale: decay ** layers };
    return TRAIN;
  };
}

/** BitFit: biases (of every layer, norms included) and the head. */
export const bitfitRule: ParamRule = (name) => on(paramPlace(name).kind === 'head' || name.endsWith('.bias'));

/** LoRA: adapter tensors and the parameters of `modulesToSave` (PEFT's rule). */
export function loraRule(modulesToSave: readonly string[]): ParamRule {
  return (name) => {
    paramPlace(name);
    return on(isLoraParameter(name) || underModules(name, modulesToSave));
  };
}

/** Number of blocks: `dims().layers` when the model has it, else 1 + the highest block index in its names. */
export function layerCount(model: Module): number {
  const dims = (model as { dims?: () => { layers: number } }).dims;
  if (typeof dims === 'function') return dims.call(model).layers;
  let top = -1;
  for (const [n] of model.namedParameters()) top = Math.max(top, layerIndex(n) ?? -1);
  return top + 1;
}

/** Evaluate `rule` on every parameter, set each variable's `trainable` flag, and return the policies. */
export function applyRule(model: Module, rule: ParamRule, layers = layerCount(model)): Map<string, ParamPolicy> {
  const out = new Map<string, ParamPolicy>();
  const vars: [tf.Variable, boolean][] = [];
  for (const [name, v] of model.namedParameters()) {
    const p = rule(name, layers);
    out.set(name, p);
    vars.push([v, p.trainable]);
  }
  // Flags change only after every name was accepted, so a failing rule leaves the model untouched.
  for (const [v, t] of vars) v.trainable = t;
  return out;
}
