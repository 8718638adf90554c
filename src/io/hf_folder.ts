/**
 * Hugging Face model folders on disk (Node only): config.json, generation_config.json and the weights in
 * the layouts `save_pretrained` writes — `model.safetensors`, sharded `model.safetensors.index.json`,
 * `pytorch_model.bin` (and its sharded index). File names and the index format follow transformers'
 * `modeling_utils.py` (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME).
 */
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CheckpointError, ConfigError, type MakemostError } from '../errors.js';
import type { TensorSource } from './bytes.js';
import type { Dtype } from './dtypes.js';
import { fileByteSource, type FileByteSource } from './node_bytes.js';
import { SafetensorsReader, safetensorsChunks, type SaveTensors } from './safetensors.js';
import { TorchBinReader } from './torch_bin.js';

/** An open checkpoint: tensors read on demand from one or more files. Call `close()` when done. */
export interface Checkpoint extends TensorSource {
  /** The stored element type of a tensor (before widening to float32/int32). */
  dtype(key: string): Dtype;
  /** The weight files this checkpoint reads (absolute or as given). */
  readonly files: string[];
  readonly format: 'safetensors' | 'pytorch';
  /** safetensors `__metadata__` of the first file ({} for PyTorch files). */
  readonly metadata: Readonly<Record<string, string>>;
  close(): void;
}

/** Weight file names, in the order HF prefers them. */
export const WEIGHT_FILES = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'];

type Reader = SafetensorsReader | TorchBinReader;

function openFile(path: string): { reader: Reader; file: FileByteSource } {
  const file = fileByteSource(path);
  try {
    const reader = path.endsWith('.safetensors') ? SafetensorsReader.open(file) : TorchBinReader.open(file);
    return { reader, file };
  } catch (e) {
    file.close();
    throw e;
  }
}

function single(path: string): Checkpoint {
  const { reader, file } = openFile(path);
  return {
    keys: () => reader.keys(),
    shape: (k) => reader.shape(k),
    read: (k) => reader.read(k),
    dtype: (k) => reader.dtype(k),
    files: [path],
    format: reader instanceof SafetensorsReader ? 'safetensors' : 'pytorch',
    metadata: reader instanceof SafetensorsReader ? reader.metadata : {},
    close: () => file.close(),
  };
}

function isPlainFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\]/.test(name);
}

/** A sharded checkpoint: every key's shard must exist and hold it, and no shard may hold another's key. */
function sharded(indexPath: string): Checkpoint {
  const dir = dirname(indexPath);
  const fail = (problem: string, hint = 'the index does not match the shard files; re-download the folder or re-save it'): never => {
    throw new CheckpointError(`checkpoint index '${indexPath}': ${problem}`, hint);
  };
  const index = readJson(indexPath, 'checkpoint index', CheckpointError);
  const map = (index as Record<string, unknown> | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail('has no "weight_map" object');
  const weightMap = new Map(Object.entries(map as Record<string, unknown>));
  for (const [k, f] of weightMap) {
    if (typeof f !== 'string' || !isPlainFileName(f)) fail(`key '${k}' maps to ${JSON.stringify(f)}, not a file name in the same folder`);
  }
  const shardNames = [...new Set(weightMap.values() as Iterable<string>)];
  const absent = shardNames.filter((f) => !fs.existsSync(join(dir, f)));
  if (absent.length) fail(`shard file(s) missing from ${dir}: ${absent.join(', ')}`, 'download every shard listed in the index');
  const shards = new Map<string, { reader: Reader; file: FileByteSource }>();
  try {
    for (const f of shardNames) shards.set(f, openFile(join(dir, f)));
    const problems: string[] = [];
    for (const [k, f] of weightMap) {
      if (!shards.get(f as string)!.reader.keys().includes(k)) problems.push(`'${k}' is mapped to ${f} but is not in it`);
    }
    for (const [f, { reader }] of shards) {
      for (const k of reader.keys()) {
        const owner = weightMap.get(k);
        if (owner === undefined) problems.push(`${f} holds '${k}', which the index does not list`);
        else if (owner !== f) problems.push(`${f} also holds '${k}', which the index maps to ${owner}`);
      }
    }
    if (problems.length) {
      const more = problems.length > 10 ? '; …' : '';
      fail(`${problems.length} disagreement(s) with the shards: ${problems.slice(0, 10).join('; ')}${more}`);
    }
  } catch (e) {
    for (const s of shards.values()) s.file.close();
    throw e;
  }
  const readerOf = (k: string): Reader => {
    const f = weightMap.get(k);
    if (f === undefined) throw new CheckpointError(`checkpoint '${indexPath}' has no tensor '${k}' (it has ${weightMap.size})`);
    return shards.get(f as string)!.reader;
  };
  const first = shards.values().next().value?.reader;
  return {
    keys: () => [...weightMap.keys()],
    shape: (k) => readerOf(k).shape(k),
    read: (k) => readerOf(k).read(k),
    dtype: (k) => readerOf(k).dtype(k),
    files: shardNames.map((f) => join(dir, f)),
    format: indexPath.endsWith('.safetensors.index.json') ? 'safetensors' : 'pytorch',
    metadata: first instanceof SafetensorsReader ? first.metadata : {},
    close: () => { for (const s of shards.values()) s.file.close(); },
  };
}

/**
 * Open the weights of a model folder (or a single weight file / index path): model.safetensors, else a
 * sharded safetensors index, else pytorch_model.bin (restricted reader), else a sharded .bin index.
 */
export function openCheckpoint(dir: string): Checkpoint {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new CheckpointError(`checkpoint folder '${dir}' does not exist`, 'pass the folder that holds config.json and the weights');
  }
  if (st.isFile()) return dir.endsWith('.index.json') ? sharded(dir) : single(dir);
  for (const name of WEIGHT_FILES) {
    const path = join(dir, name);
    if (fs.existsSync(path)) return name.endsWith('.index.json') ? sharded(path) : single(path);
  }
  const found = fs.readdirSync(dir);
  const other = found.filter((f) => /\.(h5|msgpack|ckpt|pt|pth|gguf|onnx)$/.test(f));
  throw new CheckpointError(
    `no weights in '${dir}': expected one of ${WEIGHT_FILES.join(', ')}; found ${found.length ? found.slice(0, 20).join(', ') : 'an empty folder'}`,
    other.length
      ? `${other.join(', ')} is not a format we read; save the model in Python with model.save_pretrained(dir) (writes model.safetensors)`
      : 'pass a Hugging Face model folder written by save_pretrained (or by makemost)',
  );
}

function readJson(path: string, what: string, Err: new (m: string, h?: string) => MakemostError): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Err(`cannot read ${what} '${path}': ${missing ? 'file not found' : (e as Error).message}`,
      missing ? `check the path; the ${what} should be at ${path}` : 'check file permissions');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Err(`${what} '${path}' is not valid JSON: ${(e as Error).message}`, 'fix or re-download the file');
  }
}

/** Read and parse a JSON file; `what` ("config", "tokenizer") names it in the ConfigError on failure. */
export function readJsonFile(path: string, what: string): unknown {
  return readJson(path, what, ConfigError);
}

function readObject(path: string, what: string): Record<string, unknown> {
  const v = readJsonFile(path, what);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    const found = Array.isArray(v) ? 'an array' : typeof v;
    throw new ConfigError(`${what} '${path}' must hold a JSON object, found ${found}`, 'fix or re-download the file');
  }
  return v as Record<string, unknown>;
}

/** The raw config.json of a model folder (parsing and defaults are each model's `parseConfig`). */
export function readConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  if (!fs.existsSync(path)) {
    const why = fs.existsSync(dir) ? 'has no config.json' : 'does not exist';
    throw new ConfigError(`model folder '${dir}' ${why}`,
      'pass a Hugging Face model folder: config.json next to the weights, as written by save_pretrained');
  }
  return readObject(path, 'model config');
}

/** The folder's generation_config.json, or undefined when it has none. */
export function readGenerationConfig(dir: string): Record<string, unknown> | undefined {
  const path = join(dir, 'generation_config.json');
  return fs.existsSync(path) ? readObject(path, 'generation config') : undefined;
}

let tmpCounter = 0;

/**
 * Write a safetensors file atomically: stream to a temporary file in the same folder, fsync, rename.
 * Tensors are sorted by name and `__metadata__` has `format: "pt"`, so HF's loader accepts the file.
 */
export function saveSafetensors(path: string, tensors: SaveTensors, metadata: Record<string, string> = {}): void {
  const chunks = safetensorsChunks(tensors, metadata); // validates before any file is touched
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tmpCounter}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    for (const chunk of chunks) {
      // write(2) moves at most ~2 GB per call; large tensors go in slices.
      for (let at = 0; at < chunk.byteLength;) at += fs.writeSync(fd, chunk, at, Math.min(chunk.byteLength - at, 1 << 30));
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw new CheckpointError(`cannot write '${path}': ${(e as Error).message}`, 'check that the folder exists, is writable and has free space');
  }
}
