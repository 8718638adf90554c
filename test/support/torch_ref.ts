/**
 * Node side of the PyTorch reference (test/support/reference.py): writes the input JSON, runs Debian's
 * /usr/bin/python3 on it, and decodes the base64 float32 tensors of the answer. The reference is an
 * independent re-implementation of HF transformers' GPT-2, BERT, RoBERTa and Llama semantics.
 *
 * Contract (in.json): input_ids [B][T]; attention_mask? ([B][T], decoders: [B][S+T]); token_type_ids?;
 * position_ids?; output_hidden_states?; output_cache?; steps? (decoders: cached continuation, each step
 * {input_ids [B][T'], attention_mask? [B][S+T'] else the previous mask extended by ones, position_ids?
 * else S..S+T'-1}); with grad: labels [B][T] (one per logits row, no shift, -100 skipped) and grad_of
 * (names or "all"). Logits at padded query positions follow no contract: compare where the mask is 1.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's Python, the one with python3-torch (the python3 first on PATH has no torch). */
export const PYTHON = '/usr/bin/python3';

/** A decoded reference tensor: row-major float32 data with its shape. */
export interface RefTensor {
  shape: number[];
  data: Float32Array;
}

/** One cached continuation step (decoders only). */
export interface ReferenceStepInput {
  input_ids: number[][];
  attention_mask?: number[][];
  position_ids?: number[][];
}

/** The in.json contract of reference.py (snake_case, as HF's forward arguments). */
export interface ReferenceInput {
  input_ids: number[][];
  attention_mask?: number[][];
  token_type_ids?: number[][];
  position_ids?: number[][];
  steps?: ReferenceStepInput[];
  output_hidden_states?: boolean;
  output_cache?: boolean;
  /** --grad: target id per logits row ([B][T] for LM heads), -100 = ignored; not shifted. */
  labels?: number[][];
  /** --grad: HF parameter names (tied aliases share one gradient), or "all". */
  grad_of?: string[] | 'all';
}

/** Per-layer cache entry: key/value [B, Hkv, S+T, Dh] (GPT-2 before scaling; Llama after RoPE, before GQA repeat). */
export interface RefCacheEntry {
  key: RefTensor;
  value: RefTensor;
}

/** Outputs of one forward pass. */
export interface ReferenceStepOutput {
  /** [B, T, V] for LM heads, [B, labels] for sequence classification; absent for bare models. */
  logits?: RefTensor;
  /** [B, T, D], after the final norm for decoders. */
  last_hidden_state?: RefTensor;
  /** [B, D] for BertModel / RobertaModel. */
  pooler_output?: RefTensor;
  /** L+1 tensors [B, T, D]: each layer's input, then the final (normed) output, as HF. */
  hidden_states?: RefTensor[];
  cache?: RefCacheEntry[];
}

/** The out.json contract: the first pass, each step, and with --grad the objective and gradients. */
export interface ReferenceOutput extends ReferenceStepOutput {
  steps?: ReferenceStepOutput[];
  /** sum of log_softmax(logits)[labels] over labels != -100. */
  objective?: number;
  grads?: Record<string, RefTensor>;
}

/** The repository root: the nearest folder above this file holding package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Absolute path of reference.py in the source tree. */
export function referenceScript(): string {
  return join(repoRoot(), 'test', 'support', 'reference.py');
}

let torchChecked: Promise<void> | undefined;

/** Throws unless /usr/bin/python3 can import torch (checked once per process). */
export function assertTorchAvailable(): Promise<void> {
  torchChecked ??= run(PYTHON, ['-c', 'import torch, numpy'])
    .then(() => undefined)
    .catch((err: unknown) => {
      torchChecked = undefined;
      throw new Error(
        `the PyTorch reference needs torch and numpy in ${PYTHON}, which failed: ${String(err)}\n` +
          'HINT: install Debian\'s python3-torch: apt-get install -y python3-torch',
      );
    });
  return torchChecked;
}

function decodeTensor(value: unknown, where: string): RefTensor {
  const v = value as { shape?: unknown; data?: unknown };
  if (!Array.isArray(v?.shape) || typeof v.data !== 'string') {
    throw new Error(`reference output ${where}: expected {shape, data}, found ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  const bytes = Buffer.from(v.data, 'base64');
  // Copy into a fresh buffer: a Buffer's byteOffset need not be a multiple of 4.
  const data = new Float32Array(new Uint8Array(bytes).buffer);
  const count = (v.shape as number[]).reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`reference output ${where}: ${data.length} floats for shape [${v.shape}]`);
  return { shape: v.shape as number[], data };
}

function decodeStep(raw: Record<string, unknown>, where: string): ReferenceStepOutput {
  const out: ReferenceStepOutput = {};
  for (const key of ['logits', 'last_hidden_state', 'pooler_output'] as const) {
    if (raw[key] !== undefined) out[key] = decodeTensor(raw[key], `${where}${key}`);
  }
  if (Array.isArray(raw.hidden_states)) {
    out.hidden_states = raw.hidden_states.map((h, i) => decodeTensor(h, `${where}hidden_states[${i}]`));
  }
  if (Array.isArray(raw.cache)) {
    out.cache = raw.cache.map((c: { key: unknown; value: unknown }, i) => ({
      key: decodeTensor(c.key, `${where}cache[${i}].key`),
      value: decodeTensor(c.value, `${where}cache[${i}].value`),
    }));
  }
  return out;
}

/** Decode out.json as written by reference.py. */
export function decodeReferenceOutput(raw: Record<string, unknown>): ReferenceOutput {
  const out: ReferenceOutput = decodeStep(raw, '');
  if (Array.isArray(raw.steps)) out.steps = raw.steps.map((s, i) => decodeStep(s, `steps[${i}].`));
  if (typeof raw.objective === 'number') out.objective = raw.objective;
  if (raw.grads && typeof raw.grads === 'object') {
    out.grads = {};
    for (const [name, t] of Object.entries(raw.grads)) out.grads[name] = decodeTensor(t, `grads.${name}`);
  }
  return out;
}

async function runPython(args: string[]): Promise<string> {
  await assertTorchAvailable();
  try {
    const { stdout } = await run(PYTHON, [referenceScript(), ...args], { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message?: string };
    const detail = [e.stdout, e.stderr].filter(Boolean).join('\n') || e.message;
    throw new Error(`reference.py ${args.join(' ')} failed:\n${detail}`);
  }
}

/** Run the PyTorch reference on an HF folder (config.json + model.safetensors) and decode its answer. */
export async function runReference(
  modelDir: string,
  input: ReferenceInput,
  opts: { grad?: boolean; arch?: string } = {},
): Promise<ReferenceOutput> {
  const dir = await mkdtemp(join(tmpdir(), 'makemost-ref-'));
  try {
    const inPath = join(dir, 'in.json');
    const outPath = join(dir, 'out.json');
    await writeFile(inPath, JSON.stringify(input));
    const args = ['--model', modelDir, '--input', inPath, '--output', outPath];
    if (opts.grad) args.push('--grad');
    if (opts.arch) args.push('--arch', opts.arch);
    await runPython(args);
    return decodeReferenceOutput(JSON.parse(await readFile(outPath, 'utf8')) as Record<string, unknown>);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Run `reference.py --selftest` (the reference against naive formulas); resolves to its report. */
export function runReferenceSelfTest(): Promise<string> {
  return runPython(['--selftest']);
}
