/**
 * `npm run bench:train`: one training step (forward, backward, AdamW) of a GPT-2-small-shaped model at
 * batch 4 × 128, full finetuning against LoRA (r = 8 on c_attn), each in its own process so peak RSS is
 * that mode's alone. JSON on stdout. Options: --small (2 layers, for a quick check), --steps N, --batch B, --seq T.
 * On the wasm backend, full GPT-2-small training at 4 × 128 exceeds the wasm heap (the run reports the abort).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { Rng } from '../src/backend/rng.js';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/types.js';
import { causalLmLoss } from '../src/training/losses.js';
import { optimizerFromArgs } from '../src/training/trainer.js';
import { applyLora } from '../src/training/lora/apply.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const small = args.includes('--small');
const steps = Number(opt('steps', '3'));
const mode = opt('mode', '');
const B = Number(opt('batch', '4'));
const T = Number(opt('seq', '128'));

async function one(m: 'full' | 'lora'): Promise<Record<string, unknown>> {
  const backend = await initBackend();
  const config = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: small ? 2 : 12, n_head: 12, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
  const model = buildModel(config, 'causal-lm', 1).model as unknown as CausalLM;
  if (m === 'lora') applyLora(model, { r: 8, alpha: 16 });
  const opt = optimizerFromArgs(model, { learning_rate: 1e-4 });
  const rng = new Rng(3);
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(50257)));
  const batch = { inputIds: ids, attentionMask: ids.map((r) => r.map(() => 1)), tokenLabels: ids };
  const trainable = [...model.namedParameters()].filter(([, v]) => v.trainable);
  const byVar = new Map(trainable.map(([n, v]) => [v.name, n]));
  const step = async () => {
    const t = performance.now();
    const { value, grads } = tf.variableGrads(() => causalLmLoss(model, batch as never, { training: true, rng }), trainable.map(([, v]) => v));
    const named = new Map(Object.entries(grads).map(([k, g]) => [byVar.get(k)!, g]));
    opt.step(named);
    await value.data();
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    return performance.now() - t;
  };
  await step(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < steps; i++) times.push(await step());
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  return {
    mode: m, engine: `tfjs-${backend}`, layers: config.n_layer, batch: `${B}x${T}`,
    trainable_parameters: trainable.reduce((s, [, v]) => s + v.size, 0),
    ms_per_step: Math.round(median), tokens_per_second: Math.round((B * T) / (median / 1000)),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

if (mode === 'full' || mode === 'lora') {
  process.stdout.write(JSON.stringify(await one(mode)) + '\n');
} else {
  const self = fileURLToPath(import.meta.url);
  // A mode that fails (e.g. the wasm heap's 4 GB ceiling) is reported, not fatal to the other.
  const run = (m: string): Record<string, number> | { error: string } => {
    try {
      return JSON.parse(execFileSync(process.execPath, [self, '--mode', m, ...args], { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'pipe'] }));
    } catch (e) {
      const err = String((e as { stderr?: string }).stderr ?? e).split('\n').find((l) => /Error|Abort/.test(l)) ?? String(e);
      return { error: err.trim() };
    }
  };
  const full = run('full');
  const lora = run('lora');
  const ratio = 'error' in full || 'error' in lora ? null : { ms_per_step: Math.round((lora.ms_per_step / full.ms_per_step) * 100) / 100, peak_rss: Math.round((lora.peak_rss_mb / full.peak_rss_mb) * 100) / 100 };
  process.stdout.write(JSON.stringify({ full, lora, lora_over_full: ratio }, null, 2) + '\n');
}
