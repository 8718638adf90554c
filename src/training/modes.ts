/**
 * The finetuning modes of the CLI (`--mode full|last-layer|freeze-lower:K|llrd:0.9|reinit-top:K|bitfit|
 * lora:r=8,alpha=16,dropout=0.05,targets=c_attn+c_proj`) as values, and the one step that turns a mode
 * into a prepared model plus its parameter rule: adapters attached (lora), top blocks re-drawn
 * (reinit-top), trainable flags set. The trainer then only reads the returned policies.
 */
import { ConfigError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { applyRule, bitfitRule, freezeLowerRule, fullRule, lastLayerRule, layerCount, llrdRule, loraRule, paramPlace, type ParamPolicy, type ParamRule } from './freeze.js';
import { applyLora, type LoraConfig, type LoraState } from './lora/apply.js';
import { reinitTopLayers } from './reinit.js';

/** One finetuning mode. */
export type FinetuneMode =
  | { kind: 'full' }
  | { kind: 'last-layer' }
  | { kind: 'freeze-lower'; k: number }
  | { kind: 'llrd'; decay: number }
  | { kind: 'reinit-top'; k: number }
  | { kind: 'bitfit' }
  | { kind: 'lora'; lora: LoraConfig };

const GRAMMAR = 'full | last-layer | freeze-lower:K | llrd:DECAY | reinit-top:K | bitfit | lora[:r=8,alpha=16,dropout=0.05,targets=c_attn+c_proj]';

function bad(spec: string, why: string): never {
  throw new ConfigError(`finetuning mode '${spec}': ${why}`, `write one of: ${GRAMMAR}`);
}

function intArg(spec: string, v: string, min: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min) bad(spec, `expected an integer ≥ ${min}, found '${v}'`);
  return Number(v);
}

function numArg(spec: string, key: string, v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) bad(spec, `${key} must be a number, found '${v}'`);
  return x;
}

function parseLora(spec: string, args: string | undefined): LoraConfig {
  const lora: LoraConfig = {};
  if (args === undefined) return lora;
  for (const part of args.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) bad(spec, `'${part}' is not key=value`);
    const key = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (key === 'r') lora.r = intArg(spec, v, 1);
    else if (key === 'alpha') lora.alpha = numArg(spec, key, v);
    else if (key === 'dropout') lora.dropout = numArg(spec, key, v);
    else if (key === 'targets') {
      const t = v.split('+').map((s) => s.trim());
      if (t.some((s) => !s)) bad(spec, `targets must be module names joined by '+', found '${v}'`);
      lora.targetModules = t;
    } else bad(spec, `unknown LoRA option '${key}' (known: r, alpha, dropout, targets)`);
  }
  if (lora.alpha !== undefined && !(lora.alpha > 0)) bad(spec, `alpha must be positive, found ${lora.alpha}`);
  if (lora.dropout !== undefined && !(lora.dropout >= 0 && lora.dropout < 1)) bad(spec, `dropout must lie in [0, 1), found ${lora.dropout}`);
  return lora;
}

/** Parse a CLI mode string; errors name the part that is wrong and show the grammar. */
export function parseFinetuneMode(spec: string): FinetuneMode {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const head = colon < 0 ? s : s.slice(0, colon);
  const arg = colon < 0 ? undefined : s.slice(colon + 1);
  const needArg = (): string => (arg === undefined || arg === '' ? bad(spec, `'${head}' needs a value after ':'`) : arg);
  const noArg = (): void => {
    if (arg !== undefined) bad(spec, `'${head}' takes no value`);
  };
  switch (head) {
    case 'full': noArg(); return { kind: 'full' };
    case 'last-layer': noArg(); return { kind: 'last-layer' };
    case 'bitfit': noArg(); return { kind: 'bitfit' };
    case 'freeze-lower': return { kind: 'freeze-lower', k: intArg(spec, needArg(), 0) };
    case 'reinit-top': return { kind: 'reinit-top', k: intArg(spec, needArg(), 1) };
    case 'llrd': {
      const d = numArg(spec, 'decay', needArg());
      if (!(d > 0 && d <= 1)) bad(spec, `decay must lie in (0, 1], found ${d}`);
      return { kind: 'llrd', decay: d };
    }
    case 'lora': return { kind: 'lora', lora: parseLora(spec, arg === '' ? undefined : arg) };
    default: return bad(spec, `unknown mode '${head}'`);
  }
}

/** The canonical string of a mode (for logs and metrics). */
export function formatFinetuneMode(m: FinetuneMode): string {
  switch (m.kind) {
    case 'freeze-lower': case 'reinit-top': return `${m.kind}:${m.k}`;
    case 'llrd': return `llrd:${m.decay}`;
    case 'lora': {
      const l = m.lora;
      const parts = [l.r !== undefined ? `r=${l.r}` : '', l.alpha !== undefined ? `alpha=${l.alpha}` : '', l.dropout !== undefined ? `dropout=${l.dropout}` : '', Array.isArray(l.targetModules) ? `targets=${l.targetModules.join('+')}` : ''].filter(Boolean);
      return parts.length ? `lora:${parts.join(',')}` : 'lora';
    }
    default: return m.kind;
  }
}

/** A model prepared for a mode. */
export interface FinetuneSetup {
  rule: ParamRule;
  /** Name → policy for every parameter (trainable flags are already set on the variables). */
  policies: Map<string, ParamPolicy>;
  /** Learning-rate multiplier by name (1 for unknown names), the form the optimizer takes. */
  lrScale: (name: string) => number;
  /** The adapters, in lora mode. */
  lora?: LoraState;
  /** Names re-drawn, in reinit-top mode. */
  reinitialized?: string[];
}

/** The rule of a mode that needs no model change (every mode but lora, whose rule depends on its config). */
export function ruleForMode(m: Exclude<FinetuneMode, { kind: 'lora' }>): ParamRule {
  switch (m.kind) {
    case 'full': case 'reinit-top': return fullRule;
    case 'last-layer': return lastLayerRule;
    case 'freeze-lower': return freezeLowerRule(m.k);
    case 'llrd': return llrdRule(m.decay);
    case 'bitfit': return bitfitRule;
  }
}

/**
 * Prepare `model` for a mode: attach LoRA adapters or re-draw the top blocks (seeded by `seed`), then
 * set every parameter's trainable flag from the mode's rule and return the policies.
 */
export function prepareFinetune(model: Module, mode: FinetuneMode, opts: { seed?: number } = {}): FinetuneSetup {
  const setup = prepare(model, mode, opts.seed);
  return { ...setup, lrScale: (name) => setup.policies.get(name)?.lrScale ?? 1 };
}

function prepare(model: Module, mode: FinetuneMode, seed: number | undefined): Omit<FinetuneSetup, 'lrScale'> {
  const layers = layerCount(model);
  for (const [n] of model.namedParameters()) paramPlace(n);
  if (mode.kind === 'lora') {
    const lora = applyLora(model, { seed, ...mode.lora });
    const rule = loraRule(lora.config.modulesToSave);
    return { rule, policies: applyRule(model, rule, layers), lora };
  }
  const rule = ruleForMode(mode);
  // Check every name and K before changing any weight.
  for (const [n] of model.namedParameters()) rule(n, layers);
  if (mode.kind === 'reinit-top') {
    const reinitialized = reinitTopLayers(model, mode.k, { seed });
    return { rule, policies: applyRule(model, rule, layers), reinitialized };
  }
  return { rule, policies: applyRule(model, rule, layers) };
}
