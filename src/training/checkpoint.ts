/**
 * Training checkpoints that resume exactly (Node only), laid out as HF Trainer's
 * `<output_dir>/checkpoint-<step>/`: `model.safetensors` (every parameter under its HF name, plus
 * `config.json` when the model has one, so the folder loads as a model), `optimizer.safetensors`
 * (AdamW moments), and `trainer_state.json` (step, data position, RNG state, per-parameter optimizer steps,
 * best metric, early-stopping counter, log history, the arguments the trajectory depends on).
 *
 * Writing is atomic at folder level: everything goes into a hidden temporary folder, every file and the
 * folder are fsynced, and one rename publishes it; a `checkpoint-<step>` folder is therefore always
 * complete, and `kill -9` at any moment leaves earlier checkpoints untouched. Deleting renames first, too.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { openCheckpoint, saveSafetensors } from '../io/hf_folder.js';
import { fileByteSource } from '../io/node_bytes.js';
import { SafetensorsReader, type SaveTensor } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { MetricsRecord } from './metrics.js';
import type { AdamW } from './optim/adamw.js';

/** File names inside a checkpoint folder. */
export const CHECKPOINT_FILES = { model: 'model.safetensors', config: 'config.json', optimizer: 'optimizer.safetensors', state: 'trainer_state.json' };
const PREFIX = 'checkpoint-';
const FORMAT = 'makemost-trainer-1';

/** Everything besides tensors that a resumed run needs (snake_case: it is a JSON file, as HF's). */
export interface TrainerState {
  /** Optimizer updates done. */
  global_step: number;
  /** Fractional epochs done (for logs, as HF). */
  epoch: number;
  /** Data position: the epoch being read and the micro-batches already taken from it. */
  epoch_index: number;
  batch_in_epoch: number;
  /** Dropout stream ({@link Rng.state}). */
  rng_state: number[];
  /** Total updates this run aims at. */
  max_steps: number;
  best_metric?: number;
  best_model_checkpoint?: string;
  /** Early stopping: evaluations without improvement, and the value they are compared to. */
  early_stopping_counter: number;
  early_stopping_best?: number;
  log_history: MetricsRecord[];
  /** Arguments that decide the trajectory; a resumed run must match them. */
  trajectory: Record<string, unknown>;
}

/** What is written besides the state. */
export interface CheckpointParts {
  model: Module;
  optimizer: AdamW;
  state: TrainerState;
  /** Extra files for the folder (e.g. a LoRA adapter in PEFT format); runs before the folder is published. */
  exportModel?: (model: Module, dir: string) => Promise<void> | void;
}

function fail(what: string, e: unknown, hint = 'check that the folder exists, is writable and has free space'): never {
  if (e instanceof CheckpointError) throw e;
  throw new CheckpointError(`${what}: ${(e as Error).message}`, hint);
}

function fsyncPath(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

function writeJson(path: string, value: unknown): void {
  const fd = fs.openSync(path, 'w');
  try {
    fs.writeFileSync(fd, JSON.stringify(value, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

async function floatData(t: { data(): Promise<unknown>; shape: number[]; dtype: string }, name: string): Promise<SaveTensor> {
  const data = (await t.data()) as Float32Array | Int32Array;
  if (t.dtype === 'float32') {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new CheckpointError(`refusing to save a checkpoint: '${name}' holds ${data[i]} at index ${i}`, 'training diverged; lower learning_rate or set max_grad_norm, and resume from the last good checkpoint');
      }
    }
  }
  return { shape: t.shape.slice(), dtype: t.dtype === 'int32' ? 'int32' : 'float32', data };
}

let counter = 0;

/** Move a folder aside by rename, then delete it (a half-deleted folder never carries a checkpoint name). */
export function removeCheckpoint(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const trash = join(dir, '..', `.trash-${Date.now()}-${process.pid}-${++counter}`);
  fs.renameSync(dir, trash);
  fs.rmSync(trash, { recursive: true, force: true });
}

/** The folder of the checkpoint at `step` (HF's `checkpoint-<step>`). */
export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, `${PREFIX}${step}`);
}

/**
 * Write a checkpoint folder atomically; returns its path (`<outputDir>/checkpoint-<global_step>`).
 * Non-finite weights or moments are refused, so a diverged run never overwrites good state.
 */
export async function saveCheckpoint(outputDir: string, parts: CheckpointParts): Promise<string> {
  const { model, optimizer, state } = parts;
  const final = checkpointDir(outputDir, state.global_step);
  const tmp = join(outputDir, `.tmp-${PREFIX}${state.global_step}-${process.pid}-${++counter}`);
  try {
    fs.mkdirSync(outputDir, { recursive: true });
    for (const e of fs.readdirSync(outputDir)) {
      // Leftovers of an earlier crash; never a published checkpoint.
      if (e.startsWith('.tmp-') || e.startsWith('.trash-')) fs.rmSync(join(outputDir, e), { recursive: true, force: true });
    }
    fs.mkdirSync(tmp);
  } catch (e) {
    fail(`cannot prepare checkpoint folder in '${outputDir}'`, e);
  }
  try {
    const weights = new Map<string, SaveTensor>();
    for (const [name, v] of model.namedParameters()) weights.set(name, await floatData(v, name));
    const moments = new Map<string, SaveTensor>();
    const opt = optimizer.state();
    for (const [name, t] of opt.tensors) moments.set(name, await floatData(t, `optimizer ${name}`));
    saveSafetensors(join(tmp, CHECKPOINT_FILES.model), weights);
    saveSafetensors(join(tmp, CHECKPOINT_FILES.optimizer), moments);
    const m = model as Module & { config?: Record<string, unknown>; className?: string };
    if (m.config && typeof m.className === 'string') {
      // The same config.json `save()` writes, so the checkpoint folder loads as an HF model.
      writeJson(join(tmp, CHECKPOINT_FILES.config), { ...m.config, architectures: [m.className], torch_dtype: 'float32' });
    }
    if (parts.exportModel) await parts.exportModel(model, tmp);
    writeJson(join(tmp, CHECKPOINT_FILES.state), { format: FORMAT, ...state, optimizer_steps: opt.steps });
    fsyncTree(tmp);
    if (fs.existsSync(final)) removeCheckpoint(final);
    fs.renameSync(tmp, final);
    fsyncPath(outputDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    fail(`cannot write checkpoint '${final}'`, e);
  }
  return final;
}

/** Published checkpoints in `outputDir`, oldest first. */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!fs.existsSync(outputDir)) return [];
  return fs.readdirSync(outputDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^checkpoint-\d+$/.test(e.name))
    .map((e) => ({ step: Number(e.name.slice(PREFIX.length)), dir: join(outputDir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/** The newest checkpoint folder in `outputDir`, or undefined. */
export function latestCheckpoint(outputDir: string): string | undefined {
  return listCheckpoints(outputDir).at(-1)?.dir;
}

/**
 * Delete old checkpoints beyond `limit`, as HF's `_rotate_checkpoints`: the newest are kept, and `best`
 * always survives next to the newest (with limit 1 and a best that is not the newest, two remain).
 * Returns the deleted folders.
 */
export function rotateCheckpoints(outputDir: string, limit: number, best?: string): string[] {
  let list = listCheckpoints(outputDir).map((c) => c.dir);
  // HF moves the best to second-to-last place, so the newest (needed to resume) also survives.
  if (best && list.includes(best) && list.at(-1) !== best) list = [...list.filter((d) => d !== best).slice(0, -1), best, list.at(-1)!];
  const keep = limit === 1 && best && list.at(-1) !== best ? 2 : limit;
  const doomed = list.slice(0, Math.max(0, list.length - keep)).filter((d) => d !== best);
  for (const d of doomed) removeCheckpoint(d);
  return doomed;
}

/** Read and check a checkpoint's trainer_state.json. */
export function readTrainerState(dir: string): TrainerState & { optimizer_steps: Record<string, number> } {
  const path = join(dir, CHECKPOINT_FILES.state);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    fail(`cannot read the trainer state '${path}'`, e, `pass a folder written by train() (it holds ${CHECKPOINT_FILES.state})`);
  }
  const s = raw as Record<string, unknown>;
  if (s?.format !== FORMAT) throw new CheckpointError(`'${path}' is not a makemost trainer state (format ${JSON.stringify(s?.format)}, expected '${FORMAT}')`, 'pass a checkpoint folder written by train()');
  const ints = ['global_step', 'epoch_index', 'batch_in_epoch', 'max_steps', 'early_stopping_counter'];
  const bad = ints.filter((k) => !Number.isInteger(s[k]) || (s[k] as number) < 0);
  if (!Array.isArray(s.rng_state) || s.rng_state.length !== 4) bad.push('rng_state');
  if (typeof s.optimizer_steps !== 'object' || s.optimizer_steps === null) bad.push('optimizer_steps');
  if (bad.length) throw new CheckpointError(`'${path}' has missing or invalid fields: ${bad.join(', ')}`, 'the file was edited or written by another program; use another checkpoint');
  return s as unknown as TrainerState & { optimizer_steps: Record<string, number> };
}

/** Load a checkpoint's weights into `model` (strict: every name and shape must match). */
export function loadWeights(dir: string, model: Module): void {
  const src = openCheckpoint(dir);
  try {
    model.loadStateDict(src, { strict: true, origin: dir });
  } finally {
    src.close();
  }
}

/**
 * Restore a checkpoint into a model and optimizer built as for the run that wrote it: weights, moments
 * and per-parameter steps. Returns the trainer state (data position, RNG, best metric, …).
 */
export function resume(dir: string, model: Module, optimizer: AdamW): TrainerState {
  const state = readTrainerState(dir);
  loadWeights(dir, model);
  const file = fileByteSource(join(dir, CHECKPOINT_FILES.optimizer));
  try {
    optimizer.loadState(state.optimizer_steps, SafetensorsReader.open(file), join(dir, CHECKPOINT_FILES.optimizer));
  } finally {
    file.close();
  }
  return state;
}
