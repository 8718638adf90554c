/**
 * LoRA adapters in PEFT's on-disk format (PEFT `PeftModel.save_pretrained` / `from_pretrained`,
 * `utils/save_and_load.py`): `adapter_config.json` with LoraConfig's field names and
 * `adapter_model.safetensors` keyed `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`
 * (no adapter name), plus the whole tensors of `modules_to_save` under their own path
 * (`base_model.model.score.weight`). File access is loaded on first use, so browsers can import this.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, ConfigError, UnsupportedError } from '../../errors.js';
import type { Module, TensorSource } from '../../nn/module.js';
import { applyLora, isLoraParameter, loraState, underModules, unloadLora, type LoraConfig, type LoraState } from './apply.js';

/** PEFT's key prefix for a model wrapped by `get_peft_model`. */
export const PEFT_PREFIX = 'base_model.model.';
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** PEFT `TaskType` values we write (null: a plain PeftModel). */
export type PeftTaskType = 'SEQ_CLS' | 'CAUSAL_LM' | 'FEATURE_EXTRACTION' | 'TOKEN_CLS' | 'QUESTION_ANS' | 'SEQ_2_SEQ_LM';

/** The fields of adapter_config.json we write (PEFT fills the rest with LoraConfig's defaults). */
export interface AdapterConfigJson {
  peft_type: 'LORA';
  task_type: PeftTaskType | null;
  base_model_name_or_path: string | null;
  revision: null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string;
  fan_in_fan_out: boolean;
  bias: 'none';
  modules_to_save: string[] | null;
  use_rslora: boolean;
  use_dora: false;
  init_lora_weights: true;
  inference_mode: true;
  layers_to_transform: null;
  layers_pattern: null;
  rank_pattern: Record<string, never>;
  alpha_pattern: Record<string, never>;
}

/** Options for writing an adapter. */
export interface SaveLoraOptions {
  /** Recorded as `base_model_name_or_path` (PEFT loads the base from it); default null. */
  baseModelNameOrPath?: string | null;
  /** Default from the model's class: SEQ_CLS, CAUSAL_LM, FEATURE_EXTRACTION, else null. */
  taskType?: PeftTaskType | null;
}

/** PEFT's task type for one of our model classes. */
export function taskTypeOf(model: Module): PeftTaskType | null {
  const c = String((model as { className?: unknown }).className ?? '');
  if (c.endsWith('ForSequenceClassification')) return 'SEQ_CLS';
  if (c.endsWith('ForCausalLM') || c.endsWith('LMHeadModel')) return 'CAUSAL_LM';
  if (c.endsWith('Model')) return 'FEATURE_EXTRACTION';
  return null;
}

function stateOf(model: Module): LoraState {
  const s = loraState(model);
  if (!s) throw new ConfigError('this model has no LoRA adapters to save', 'call applyLora (or loadLora) before saving an adapter');
  return s;
}

/** The adapter_config.json object for the adapters on `model`. */
export function adapterConfig(model: Module, opts: SaveLoraOptions = {}): AdapterConfigJson {
  const c = stateOf(model).config;
  return {
    peft_type: 'LORA',
    task_type: opts.taskType === undefined ? taskTypeOf(model) : opts.taskType,
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    revision: null,
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    target_modules: typeof c.targetModules === 'string' ? c.targetModules : c.targetModules.slice(),
    fan_in_fan_out: c.fanInFanOut,
    bias: 'none',
    modules_to_save: c.modulesToSave.length ? c.modulesToSave.slice() : null,
    use_rslora: c.useRslora,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
}

/** PEFT key → live variable, for every adapter tensor and every `modules_to_save` parameter. */
export function adapterTensors(model: Module): Map<string, tf.Variable> {
  const { modulesToSave } = stateOf(model).config;
  const out = new Map<string, tf.Variable>();
  for (const [name, v] of model.namedParameters()) {
    if (isLoraParameter(name) || underModules(name, modulesToSave)) out.set(PEFT_PREFIX + name, v);
  }
  return out;
}

// Keys that never change the computation; everything else unknown must be "off" (null, false, {}, []).
const INERT = new Set(['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'peft_version', 'auto_mapping', 'inference_mode', 'init_lora_weights', 'fan_in_fan_out', 'megatron_core', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'modules_to_save', 'use_rslora', 'bias']);

function isOff(v: unknown): boolean {
  if (v === null || v === undefined || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.values(v as object).every(isOff);
  return false;
}

/** Validate adapter_config.json and turn it into our LoRA config; unsupported PEFT features fail by name. */
export function parseAdapterConfig(raw: unknown, origin = ADAPTER_CONFIG): LoraConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${origin} must hold a JSON object`);
  const c = raw as Record<string, unknown>;
  if (c.peft_type !== 'LORA') throw new UnsupportedError(`${origin}: peft_type ${JSON.stringify(c.peft_type)} is not supported`, 'only LoRA adapters (peft_type "LORA") can be loaded');
  if (c.bias !== undefined && c.bias !== 'none') throw new UnsupportedError(`${origin}: bias "${String(c.bias)}" is not supported`, 'train the adapter with bias="none" (PEFT\'s default)');
  const active = Object.keys(c).filter((k) => !INERT.has(k) && !isOff(c[k]));
  if (active.length) throw new UnsupportedError(`${origin} uses PEFT features we do not implement: ${active.map((k) => `${k}=${JSON.stringify(c[k])}`).join(', ')}`, 'use a plain LoRA adapter (no DoRA, rank/alpha patterns, layer selection or extra trainable tokens)');
  const num = (k: string): number | undefined => {
    if (c[k] === undefined || c[k] === null) return undefined;
    if (typeof c[k] !== 'number') throw new ConfigError(`${origin}: ${k} must be a number, found ${JSON.stringify(c[k])}`);
    return c[k] as number;
  };
  const tm = c.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.length && tm.every((t) => typeof t === 'string')))) {
    throw new ConfigError(`${origin}: target_modules must be a list of module names or a regular expression, found ${JSON.stringify(tm)}`);
  }
  const mts = c.modules_to_save;
  if (mts !== undefined && mts !== null && !(Array.isArray(mts) && mts.every((t) => typeof t === 'string'))) {
    throw new ConfigError(`${origin}: modules_to_save must be a list of module names or null, found ${JSON.stringify(mts)}`);
  }
  return { r: num('r'), alpha: num('lora_alpha'), dropout: num('lora_dropout'), targetModules: tm as string[] | string, modulesToSave: (mts as string[] | null | undefined) ?? [], useRslora: c.use_rslora === true };
}

/**
 * Copy adapter tensors from `source` (PEFT keys) into the adapters on `model`. Every missing,
 * unexpected and mis-shaped key is reported in one CheckpointError before anything is assigned.
 */
export function loadAdapterTensors(model: Module, source: TensorSource, origin = ADAPTER_WEIGHTS): void {
  const want = adapterTensors(model);
  const have = new Set(source.keys());
  const missing = [...want.keys()].filter((k) => !have.has(k));
  const unexpected = [...have].filter((k) => !want.has(k));
  const misShaped = [...want].filter(([k, v]) => have.has(k) && source.shape(k).join(',') !== v.shape.join(',')).map(([k, v]) => `${k}: file [${source.shape(k).join(', ')}], model [${v.shape.join(', ')}]`);
  if (missing.length || unexpected.length || misShaped.length) {
    const parts = [missing.length ? `missing: ${missing.join(', ')}` : '', unexpected.length ? `unexpected: ${unexpected.join(', ')}` : '', misShaped.length ? `wrong shape: ${misShaped.join('; ')}` : ''].filter(Boolean);
    throw new CheckpointError(`adapter tensors in ${origin} do not match the adapters on the model:\n  ${parts.join('\n  ')}`, 'load the adapter onto the base model (and task head) it was trained on');
  }
  for (const [k, v] of want) {
    const t = tf.tensor(source.read(k), v.shape, v.dtype);
    v.assign(t);
    t.dispose();
  }
}

/** Write adapter_config.json and adapter_model.safetensors (float32) into `dir`, each atomically. */
export async function saveLora(model: Module, dir: string, opts: SaveLoraOptions = {}): Promise<void> {
  const fs = await import('node:fs');
  const { join } = await import('node:path');
  const { saveSafetensors } = await import('../../io/hf_folder.js');
  const config = adapterConfig(model, opts);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`cannot create the adapter folder ${dir}: ${(e as Error).message}`, 'choose a writable folder');
  }
  const tensors = new Map<string, { shape: number[]; dtype: 'float32'; data: Float32Array }>();
  for (const [k, v] of adapterTensors(model)) tensors.set(k, { shape: v.shape.slice(), dtype: 'float32', data: (await v.data()) as Float32Array });
  saveSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const tmp = join(dir, `.${ADAPTER_CONFIG}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
    fs.renameSync(tmp, join(dir, ADAPTER_CONFIG));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new CheckpointError(`cannot write ${join(dir, ADAPTER_CONFIG)}: ${(e as Error).message}`, 'check that the folder is writable and has free space');
  }
}

/** Options for loading an adapter. */
export interface LoadLoraOptions {
  /** Keep the adapters (and modules_to_save) trainable; default false, as PEFT's `is_trainable`. */
  trainable?: boolean;
}

/** Read a PEFT LoRA folder and put its adapters on `model` (its base and head must match the adapter's). */
export async function loadLora(model: Module, dir: string, opts: LoadLoraOptions = {}): Promise<LoraState> {
  const fs = await import('node:fs');
  const { join } = await import('node:path');
  const { openCheckpoint, readJsonFile } = await import('../../io/hf_folder.js');
  const cfgPath = join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(cfgPath)) throw new CheckpointError(`no ${ADAPTER_CONFIG} in '${dir}'`, 'pass a folder written by saveLora or PEFT\'s save_pretrained');
  const config = parseAdapterConfig(readJsonFile(cfgPath, 'adapter config'), cfgPath);
  const file = [ADAPTER_WEIGHTS, 'adapter_model.bin'].map((f) => join(dir, f)).find((p) => fs.existsSync(p));
  if (!file) throw new CheckpointError(`no ${ADAPTER_WEIGHTS} (or adapter_model.bin) in '${dir}'`, 'pass a folder written by saveLora or PEFT\'s save_pretrained');
  const state = applyLora(model, config);
  const src = openCheckpoint(file);
  try {
    loadAdapterTensors(model, src, file);
  } catch (e) {
    unloadLora(model);
    throw e;
  } finally {
    src.close();
  }
  if (!opts.trainable) for (const v of adapterTensors(model).values()) v.trainable = false;
  return state;
}
