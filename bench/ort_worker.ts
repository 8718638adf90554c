/**
 * ONNX Runtime baseline for `bench/engine.ts`, in its own process: the same GPT-2 weights exported by
 * bench/torch_gpt2.py (per-layer past/present keys and values), `onnxruntime-node` loaded from the bench's
 * scratch folder. Prefill of 128 tokens and greedy decode with the cache; prints one JSON object.
 *
 *   node dist/bench/ort_worker.js --onnx FILE --ort DIR --threads 2 [--tokens 16]
 */
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

interface OrtTensor { dims: readonly number[]; data: Float32Array | BigInt64Array }
interface OrtSession { run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>; inputNames: readonly string[] }
interface Ort {
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(path: string, opts: Record<string, unknown>): Promise<OrtSession> };
  env: { versions?: Record<string, string> };
}

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const threads = Number(opt('threads', '2'));
const tokens = Number(opt('tokens', '16'));
const req = createRequire(join(resolve(opt('ort', '')), 'package.json'));
const ort = req('onnxruntime-node') as Ort;
const version = (req('onnxruntime-node/package.json') as { version: string }).version;
const session = await ort.InferenceSession.create(opt('onnx', ''), { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
const pastNames = session.inputNames.filter((n) => n.startsWith('past_'));
const heads = Number(opt('heads', '12'));
const headDim = Number(opt('head-dim', '64'));
const vocab = Number(opt('vocab', '50257'));
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function idsTensor(ids: number[]): OrtTensor {
  return new ort.Tensor('int64', BigInt64Array.from(ids.map((x) => BigInt(x))), [1, ids.length]);
}

async function step(ids: number[], past: OrtTensor[]): Promise<{ next: number; present: OrtTensor[] }> {
  const feeds: Record<string, OrtTensor> = { input_ids: idsTensor(ids) };
  pastNames.forEach((n, i) => (feeds[n] = past[i]));
  const res = await session.run(feeds);
  const logits = res.logits.data as Float32Array;
  const last = logits.subarray(logits.length - vocab);
  let best = 0;
  for (let j = 1; j < vocab; j++) if (last[j] > last[best]) best = j;
  return { next: best, present: pastNames.map((n) => res[n.replace('past_', 'present_')]) };
}

const empty = () => pastNames.map(() => new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]));
const prompt = Array.from({ length: 128 }, (_, i) => (i * 7919) % vocab);
const runs: number[] = [];
for (let r = 0; r < 4; r++) {
  const t = performance.now();
  await step(prompt, empty());
  runs.push(performance.now() - t);
}
let { next, present } = await step(prompt, empty());
const times: number[] = [];
for (let i = 0; i < tokens + 2; i++) {
  const t = performance.now();
  ({ next, present } = await step([next], present));
  times.push(performance.now() - t);
}
process.stdout.write(JSON.stringify({
  engine: `onnxruntime-node ${version}`,
  threads,
  prefill_128_ms: Math.round(median(runs.slice(1)) * 10) / 10,
  decode_ms_per_token: Math.round(median(times.slice(2)) * 100) / 100,
}) + '\n');
