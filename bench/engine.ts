/**
 * `npm run bench:engine`: our engine against ONNX Runtime and PyTorch CPU on the same GPT-2-small-shaped
 * random checkpoint (12 x 768, vocabulary 50257), and a large fp32 matmul against numpy/OpenBLAS, all in
 * one run, each in its own process. Prints a table (stderr) and JSON (stdout) with every ratio beside
 * the absolute figures and which engine produced them. Not a test: nothing here asserts a time.
 *
 * Engines run in alternation for --rounds rounds (default 2: ours, ONNX Runtime, PyTorch, ours, …) and each
 * figure is the best of its rounds, so a burst of other work on the machine hits every engine alike rather
 * than one; every round's figures are kept in the JSON. Beside the ratio of the best figures, `paired` is the
 * median over rounds of the ratio within each round.
 *
 * Options: --threads N (default 2), --tokens N (decode steps, 16), --train-batch N (4), --rounds N (2),
 * --skip plain,ort,torch,numpy,train (leave parts out), --small (2 layers, a quick check).
 * ONNX Runtime is installed on first use into .bench/ort with `npm install --no-save --ignore-scripts`
 * (its CPU binary ships inside the npm package); the ONNX file is exported by bench/torch_gpt2.py with
 * Debian's python3-torch. Neither is a dependency of the library.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/backend/index.js';
import { buildModel } from '../src/models/registry.js';
import { savePretrained, type SavableModel } from '../src/models/pretrained.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const skip = new Set(opt('skip', '').split(',').filter(Boolean));
const threads = opt('threads', '2');
const tokens = opt('tokens', '16');
const trainBatch = skip.has('train') ? '0' : opt('train-batch', '4');
const small = args.includes('--small');
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const benchDir = join(root, '.bench');
const modelDir = join(benchDir, small ? 'gpt2-2layer' : 'gpt2-small-random');
const log = (s: string) => process.stderr.write(s + '\n');
type Json = Record<string, unknown>;

async function ensureCheckpoint(): Promise<void> {
  if (existsSync(join(modelDir, 'model.safetensors'))) return;
  await initBackend({ backend: 'cpu', native: false });
  const config = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: small ? 2 : 12, n_head: 12 };
  const { model } = buildModel(config, 'causal-lm', 1234);
  await savePretrained(model as SavableModel, modelDir);
  model.dispose();
  log(`wrote random checkpoint to ${modelDir}`);
}

/** Runs a child that prints one JSON line; a failure becomes {error}. */
function child(cmd: string, argv: string[], env: Record<string, string> = {}, what = cmd): Json {
  log(`… ${what}`);
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Json;
  } catch {
    const err = `${what} failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`;
    log(err);
    return { error: err };
  }
}

/** Our engine in two processes (inference, then training), so that a training step that runs out of
 * memory still leaves the inference figures. */
function ours(native: boolean): Json {
  const base = [join(here, 'engine_worker.js'), '--model', modelDir, '--native', native ? '1' : '0', '--threads', threads, '--tokens', tokens];
  const label = `tfjs-wasm ${native ? 'with native kernels' : 'plain'}`;
  const infer = child(process.execPath, [...base, '--skip', 'train'], {}, `${label}: inference`);
  if (trainBatch === '0') return infer;
  const train = child(process.execPath, [...base, '--train-batch', trainBatch, '--skip', 'matmul,prefill,decode'], {}, `${label}: training step`);
  return { ...infer, ...(train.error ? { train_error: train.error } : { train_step_ms: train.train_step_ms, train_loss: train.train_loss, wasm_heap_mb: train.wasm_heap_mb }) };
}

const PY = '/usr/bin/python3';

function ortPackage(): string | { error: string } {
  const dir = join(benchDir, 'ort');
  const pkg = join(dir, 'node_modules', 'onnxruntime-node');
  if (!existsSync(pkg)) {
    mkdirSync(dir, { recursive: true });
    log('… installing onnxruntime-node into .bench/ort (npm install --no-save --ignore-scripts)');
    const r = spawnSync('npm', ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', dir, 'onnxruntime-node'], { encoding: 'utf8' });
    if (r.status !== 0) return { error: `npm install onnxruntime-node failed: ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}` };
  }
  // With --ignore-scripts nothing is downloaded: the CPU binary must already be inside the package.
  const bin = join(pkg, 'bin');
  const found = existsSync(bin) && walk(bin).some((f) => f.endsWith('onnxruntime_binding.node'));
  return found ? dir : { error: `onnxruntime-node has no onnxruntime_binding.node under ${bin} for this platform` };
}

function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
}

function onnxRuntime(): Json {
  const dir = ortPackage();
  if (typeof dir !== 'string') return dir;
  const onnx = join(modelDir, 'model.onnx');
  const ckpt = join(modelDir, 'model.safetensors');
  if (!existsSync(onnx) || statSync(onnx).mtimeMs < statSync(ckpt).mtimeMs) {
    const ex = child(PY, [join(root, 'bench', 'torch_gpt2.py'), 'export', '--model', modelDir, '--out', onnx], {}, 'export to ONNX (python3-torch)');
    if (ex.error) return ex;
  }
  return child(process.execPath, [join(here, 'ort_worker.js'), '--onnx', onnx, '--ort', dir, '--threads', threads, '--tokens', tokens], {}, 'onnxruntime-node');
}

/**
 * PyTorch CPU in two configurations, keeping the faster per figure: intra-op threads = N, and one
 * intra-op thread with an N-thread BLAS (Debian's torch calls OpenBLAS, whose own threads otherwise
 * compete with torch's OpenMP ones: 2 + 2 threads on 2 cores ran prefill 2.5x slower here).
 */
function pytorch(): Json {
  const run = (intra: string) => child(PY, [join(root, 'bench', 'torch_gpt2.py'), 'time', '--model', modelDir, '--threads', intra, '--tokens', tokens, '--train-batch', trainBatch], { OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: intra }, `PyTorch CPU (intra-op ${intra}, BLAS ${threads} threads)`);
  const configs = [run(threads), ...(threads === '1' ? [] : [run('1')])].filter((r) => !r.error);
  if (!configs.length) return { error: 'PyTorch failed in every configuration' };
  const best: Json = { ...configs[0], configs };
  for (const key of ['prefill_128_ms', 'decode_ms_per_token', 'train_step_ms']) {
    const vals = configs.map((c) => c[key]).filter((v): v is number => typeof v === 'number');
    if (vals.length) best[key] = Math.min(...vals);
  }
  return best;
}

/** numpy's matmul on every Python we can find; the fastest is the baseline. */
function numpy(): Json {
  const pythons = [PY, 'python3'].filter((p, i, a) => a.indexOf(p) === i);
  const results = pythons.map((p) => child(p, [join(root, 'bench', 'torch_gpt2.py'), 'blas', '--threads', threads], { OPENBLAS_NUM_THREADS: threads }, `numpy (${p})`)).filter((r) => !r.error);
  if (!results.length) return { error: 'no python3 with numpy found' };
  results.sort((a, b) => (b.gflops_512x768x3072 as number) - (a.gflops_512x768x3072 as number));
  return { ...results[0], others: results.slice(1) };
}

const num = (j: Json | undefined, k: string) => (j && typeof j[k] === 'number' ? (j[k] as number) : undefined);
const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 100) / 100 : undefined);

await ensureCheckpoint();
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadavg_before: loadavg().map((x) => Math.round(x * 100) / 100) };
const LOWER_IS_BETTER = ['prefill_128_ms', 'decode_ms_per_token', 'train_step_ms'];
const HIGHER_IS_BETTER = ['matmul_gflops_512x768x3072', 'matmul_gflops_1024x1024x1024', 'gflops_512x768x3072', 'gflops_1024x1024x1024'];

/** The best figure of each kind over rounds, with every round's figures beside it. */
function bestOf(runs: Json[]): Json {
  const ok = runs.filter((r) => !r.error);
  if (!ok.length) return runs[0] ?? { error: 'not run' };
  const best: Json = { ...ok[0] };
  for (const [keys, pick] of [[LOWER_IS_BETTER, Math.min], [HIGHER_IS_BETTER, Math.max]] as const) {
    for (const k of keys) {
      const vals = ok.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
      if (vals.length) best[k] = pick(...vals);
    }
  }
  best.rounds = runs.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => r.error ? k === 'error' : [...LOWER_IS_BETTER, ...HIGHER_IS_BETTER].includes(k))));
  return best;
}

const rounds = Math.max(1, Number(opt('rounds', '2')));
const fastRuns: Json[] = [];
const onnxRuns: Json[] = [];
const torchRuns: Json[] = [];
for (let r = 0; r < rounds; r++) {
  log(`round ${r + 1} of ${rounds}`);
  fastRuns.push(ours(true));
  if (!skip.has('ort')) onnxRuns.push(onnxRuntime());
  if (!skip.has('torch')) torchRuns.push(pytorch());
}
const fast = bestOf(fastRuns);
const onnx = skip.has('ort') ? undefined : bestOf(onnxRuns);
const torch = skip.has('torch') ? undefined : bestOf(torchRuns);
// The plain backend (the 'before' column) and numpy once: they are far from the ratios' thresholds.
const plain = skip.has('plain') ? undefined : ours(false);
const np = skip.has('numpy') ? undefined : numpy();

/**
 * Median over rounds of ours / baseline within the same round: the two ran minutes apart at most, so slow
 * changes in the load of the shared machine cancel, where the best-of ratio pairs figures from different rounds.
 */
function pairedRatio(key: string, baseRuns: Json[] | undefined): number | undefined {
  if (!baseRuns) return undefined;
  const rs = fastRuns.map((o, i) => ratio(num(o, key), num(baseRuns[i], key))).filter((x): x is number => x !== undefined).sort((x, y) => x - y);
  if (!rs.length) return undefined;
  const mid = Math.floor(rs.length / 2);
  return rs.length % 2 ? rs[mid] : Math.round(((rs[mid - 1] + rs[mid]) / 2) * 100) / 100;
}

const rows: [string, string, Json | undefined, Json[] | undefined, string, string][] = [
  ['greedy decode, ms/token', 'decode_ms_per_token', onnx, onnxRuns, 'ONNX Runtime', '<= 1.0'],
  ['prefill 128 tokens, ms', 'prefill_128_ms', onnx, onnxRuns, 'ONNX Runtime', '<= 1.2'],
  ['prefill 128 tokens, ms', 'prefill_128_ms', torch, torchRuns, 'PyTorch', '<= 1.0'],
  ['greedy decode, ms/token', 'decode_ms_per_token', torch, torchRuns, 'PyTorch', '(info)'],
  [`train step ${trainBatch}x128, ms`, 'train_step_ms', torch, torchRuns, 'PyTorch', '<= 1.5'],
  ['matmul 512x768x3072, GFLOP/s', 'matmul_gflops_512x768x3072', np && { ...np, matmul_gflops_512x768x3072: np.gflops_512x768x3072 }, undefined, 'numpy', '>= 0.7'],
  ['matmul 1024^3, GFLOP/s', 'matmul_gflops_1024x1024x1024', np && { ...np, matmul_gflops_1024x1024x1024: np.gflops_1024x1024x1024 }, undefined, 'numpy', '(info)'],
];
const table = rows.map(([what, key, base, baseRuns, name, goal]) => {
  const [f, p, b] = [num(fast, key), num(plain, key), num(base, key)];
  return { what, ours: f, ours_plain_wasm: p, baseline: name, baseline_value: b, ratio: ratio(f, b), ratio_paired_median: pairedRatio(key, base && baseRuns), ratio_plain_wasm: ratio(p, b), goal };
});
const result = {
  machine: { ...machine, loadavg_after: loadavg().map((x) => Math.round(x * 100) / 100) },
  threads: Number(threads),
  rounds,
  model: modelDir,
  engines: { ours: fast, ours_plain_wasm: plain, onnxruntime: onnx, pytorch: torch, numpy: np },
  ratios: table,
};

const fmt = (x: number | undefined) => (x === undefined ? '—' : String(x));
const head = ['what', 'ours', 'plain wasm', 'baseline', 'ratio', 'paired', 'ratio (plain)', 'goal'];
const body = table.map((r) => [r.what, fmt(r.ours), fmt(r.ours_plain_wasm), `${r.baseline} ${fmt(r.baseline_value)}`, fmt(r.ratio), fmt(r.ratio_paired_median), fmt(r.ratio_plain_wasm), r.goal]);
const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
log('');
log(`ours: ${String(fast.engine)} native ${JSON.stringify((fast.native as Json | undefined)?.isa ?? 'off')} x${threads} threads; ONNX Runtime: ${String(onnx?.engine ?? '—')}; PyTorch: ${String(torch?.torch ?? '—')} (BLAS ${JSON.stringify(torch?.blas ?? '—')}); numpy: ${String(np?.python ?? '—')} (${JSON.stringify(np?.blas ?? '—')})`);
log(`load average before ${machine.loadavg_before.join(' ')}, after ${result.machine.loadavg_after.join(' ')} on ${machine.cpus} CPUs (other work on the machine skews every figure)`);
log(line(head));
for (const r of body) log(line(r));
mkdirSync(benchDir, { recursive: true });
writeFileSync(join(benchDir, 'engine.json'), JSON.stringify(result, null, 2) + '\n');
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
