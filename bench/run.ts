/**
 * `npm run bench`: load time, peak RSS, prefill and greedy decode speed of a GPT-2-small-shaped random
 * checkpoint (12 × 768, 12 heads, vocabulary 50257), as JSON on stdout. Decoding with the cache is
 * compared against recomputing the whole prefix each step (the ratio is the cache's worth).
 * Options: --backend wasm|cpu, --tokens N (decode steps), --small (a 2-layer model, for a quick check).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { disposeAll } from '../src/backend/memory.js';
import { buildModel } from '../src/models/registry.js';
import { AutoModelForCausalLM, savePretrained, type SavableModel } from '../src/models/pretrained.js';
import type { CausalLM } from '../src/models/types.js';
import { generate } from '../src/generation/generate.js';
import { argmaxLast } from './common.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const small = args.includes('--small');
const backend = await initBackend({ backend: opt('backend', 'wasm') as 'wasm' | 'cpu' });
const decodeTokens = Number(opt('tokens', '16'));
const config = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: small ? 2 : 12, n_head: 12 };
const dir = join(process.cwd(), '.bench', small ? 'gpt2-2layer' : 'gpt2-small-random');

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}

if (!existsSync(join(dir, 'model.safetensors'))) {
  const t0 = performance.now();
  const { model } = buildModel(config, 'causal-lm', 1234);
  await savePretrained(model as SavableModel, dir);
  model.dispose();
  process.stderr.write(`wrote random checkpoint to ${dir} in ${ms(t0)} ms\n`);
}

const rssBefore = process.memoryUsage().rss;
let t0 = performance.now();
const model = (await AutoModelForCausalLM.fromPretrained(dir)) as CausalLM;
const loadMs = ms(t0);
const rssAfterLoad = process.memoryUsage().rss;

const prompt = [Array.from({ length: 128 }, (_, i) => (i * 7919) % 50257)];
async function prefill(): Promise<number> {
  const t = performance.now();
  const out = model.forward(prompt);
  await out.logits.data();
  disposeAll(out);
  return performance.now() - t;
}
await prefill(); // warm-up: kernel compilation, allocation
const prefillRuns = [await prefill(), await prefill(), await prefill()];

async function decodeWithCache(n: number): Promise<number> {
  let out = model.forward(prompt);
  let next = await argmaxLast(out.logits);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const step = model.forward([[next]], { cache: out.cache });
    disposeAll(out);
    out = step;
    next = await argmaxLast(out.logits);
  }
  const per = (performance.now() - t) / n;
  disposeAll(out);
  return per;
}

async function decodeWithoutCache(n: number): Promise<number> {
  const ids = prompt[0].slice();
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const out = model.forward([ids]);
    ids.push(await argmaxLast(out.logits));
    disposeAll(out);
  }
  return (performance.now() - t) / n;
}

await decodeWithCache(2);
const cached = await decodeWithCache(decodeTokens);
const uncached = await decodeWithoutCache(Math.max(2, Math.floor(decodeTokens / 4)));

/** generate() ms per new token after the prompt (prefill timed separately and subtracted). */
async function generateMsPerToken(options: Record<string, unknown>): Promise<number> {
  const short = [prompt[0].slice(0, 16)];
  const t0 = performance.now();
  await generate(model, short, { max_new_tokens: 1, min_new_tokens: 1, ...options });
  const prefillMs = performance.now() - t0;
  const t1 = performance.now();
  await generate(model, short, { max_new_tokens: decodeTokens + 1, min_new_tokens: decodeTokens + 1, ...options }); // EOS masked: every run makes all its tokens
  return (performance.now() - t1 - prefillMs) / decodeTokens;
}
const gen = {
  greedy: await generateMsPerToken({}),
  sampling_top_p_0_9: await generateMsPerToken({ do_sample: true, top_p: 0.9, seed: 1 }),
  beam_4: await generateMsPerToken({ num_beams: 4, early_stopping: true }),
};
const result = {
  engine: `tfjs-${backend}`,
  model: { ...config, parameters: model.numParameters() },
  load_ms: loadMs,
  rss_mb: { before_load: Math.round(rssBefore / 2 ** 20), after_load: Math.round(rssAfterLoad / 2 ** 20), peak: Math.round(process.resourceUsage().maxRSS / 1024) },
  prefill_128_ms: { median: prefillRuns.sort((a, b) => a - b)[1], runs: prefillRuns.map((x) => Math.round(x)) },
  greedy_ms_per_token: { with_cache: Math.round(cached * 10) / 10, without_cache: Math.round(uncached * 10) / 10, ratio_without_over_with: Math.round((uncached / cached) * 100) / 100 },
  generate_ms_per_token: {
    greedy: Math.round(gen.greedy * 10) / 10,
    sampling_top_p_0_9: Math.round(gen.sampling_top_p_0_9 * 10) / 10,
    beam_4: Math.round(gen.beam_4 * 10) / 10,
    beam_4_step_over_greedy_step: Math.round((gen.beam_4 / gen.greedy) * 100) / 100,
  },
  live_tensors_after: tf.memory().numTensors,
};
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
model.dispose();
