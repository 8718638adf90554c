/**
 * `fromPretrained` / `save` for HF model folders on disk (Node): config.json → registry entry →
 * model with zero weights → strict, name-mapped load from safetensors / shards / pytorch_model.bin.
 * Saving writes config.json (with `architectures`) and model.safetensors that HF's loader accepts.
 */
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { openCheckpoint, readConfig, saveSafetensors } from '../io/hf_folder.js';
import { CheckpointError } from '../errors.js';
import type { LoadReport, Module } from '../nn/module.js';
import { renamedSource } from './common.js';
import { architectureFor, buildModel, type Task } from './registry.js';
import type { CausalLM, EncoderModel } from './types.js';

/** Options for loading. */
export interface FromPretrainedOptions {
  /** Fail on missing or unexpected tensors (default true; wrong shapes always fail). */
  strict?: boolean;
  /** Told which tensors were not in the checkpoint (e.g. a new classification head, freshly initialised). */
  onLoadReport?: (report: LoadReport) => void;
}

/** Head parameters a sequence classifier may lack in a base or LM checkpoint: they keep their seeded init, as in HF. */
const NEW_HEAD = /^(classifier|score)\./;

/** Load a model folder as the given task. */
export async function fromPretrained(dir: string, task: Task, opts: FromPretrainedOptions = {}): Promise<Module> {
  const raw = readConfig(dir);
  const arch = architectureFor(raw, join(dir, 'config.json'));
  const { model, config } = buildModel(raw, task, null);
  const src = openCheckpoint(dir);
  try {
    const view = renamedSource(src, arch.keyMapper(config, task));
    const allowMissing = task === 'sequence-classification' ? (k: string) => NEW_HEAD.test(k) : undefined;
    const report = model.loadStateDict(view, { strict: opts.strict ?? true, origin: dir, allowMissing });
    opts.onLoadReport?.(report);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    src.close();
  }
  return model;
}

/** HF-style entry points. */
export const AutoModel = { fromPretrained: (dir: string, opts?: FromPretrainedOptions) => fromPretrained(dir, 'base', opts) };
export const AutoModelForCausalLM = { fromPretrained: (dir: string, opts?: FromPretrainedOptions) => fromPretrained(dir, 'causal-lm', opts) as Promise<CausalLM> };
export const AutoModelForMaskedLM = { fromPretrained: (dir: string, opts?: FromPretrainedOptions) => fromPretrained(dir, 'masked-lm', opts) as Promise<EncoderModel> };
export const AutoModelForSequenceClassification = { fromPretrained: (dir: string, opts?: FromPretrainedOptions) => fromPretrained(dir, 'sequence-classification', opts) };

/** A model that knows its config and HF class name. */
export interface SavableModel extends Module {
  readonly config: Record<string, unknown>;
  readonly className: string;
}

/**
 * Write `config.json` and `model.safetensors` (float32, HF names, tied weights once) into `dir`,
 * each written to a temporary file and renamed, so an interrupted save never leaves a torn file.
 */
export async function savePretrained(model: SavableModel, dir: string): Promise<void> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`cannot create the output folder ${dir}: ${(e as Error).message}`, 'choose a writable folder');
  }
  const adapters = [...model.namedParameters()].map(([n]) => n).filter((n) => /\.lora_[AB]\./.test(n));
  if (adapters.length) {
    throw new CheckpointError(`the model has LoRA adapters attached (${adapters[0]}, …), which HF's loader would ignore in model.safetensors`, 'save the adapter with saveLora(model, dir), or fold it in with mergeLora(model) first');
  }
  const tensors = new Map<string, { shape: number[]; dtype: 'float32' | 'int32'; data: Float32Array | Int32Array }>();
  for (const [name, v] of model.namedParameters()) {
    const data = (await v.data()) as Float32Array | Int32Array;
    tensors.set(name, { shape: v.shape.slice(), dtype: v.dtype === 'int32' ? 'int32' : 'float32', data });
  }
  saveSafetensors(join(dir, 'model.safetensors'), tensors);
  const config = { ...model.config, architectures: [model.className], torch_dtype: 'float32' };
  const tmp = join(dir, `.config.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
  renameSync(tmp, join(dir, 'config.json'));
}

/** Max |a − b| over two models' parameters (for tests and round-trip checks). */
export function maxParamDiff(a: Module, b: Module): number {
  const pb = b.stateDict();
  let worst = 0;
  for (const [k, v] of a.namedParameters()) {
    const w = pb.get(k);
    if (!w) return Infinity;
    worst = Math.max(worst, tf.tidy(() => tf.max(tf.abs(tf.sub(v, w))).dataSync()[0]));
  }
  return worst;
}
