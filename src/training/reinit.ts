/**
 * Re-initialise the top K blocks of a pretrained model (Zhang et al. 2021, "Revisiting Few-sample BERT
 * Fine-tuning": re-drawing the pooler and the top layers helps small datasets) with HF's `_init_weights`
 * for each family: Linear / Conv1D weights N(0, initializer_range), biases 0; LayerNorm / RMSNorm weight 1,
 * bias 0; GPT-2's `c_proj.weight` with std / √(2·n_layer) (GPT-2 paper §2.3). Draws come from one seeded
 * stream in module order, so the same seed gives the same weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../backend/rng.js';
import { ConfigError } from '../errors.js';
import { Conv1D, Embedding, LayerNorm, Linear, RMSNorm } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { layerCount, layerIndex } from './freeze.js';

/** Options for {@link reinitTopLayers}. */
export interface ReinitOptions {
  /** Seed of the draws (default 0). */
  seed?: number;
  /** Also re-draw BERT's pooler, which sits above the top block (default true, as Zhang et al.). */
  pooler?: boolean;
}

function set(v: tf.Variable, t: tf.Tensor): void {
  v.assign(t);
  t.dispose();
}

/** Re-draw the parameters of the top `k` blocks (and BERT's pooler); returns the names re-initialised. */
export function reinitTopLayers(model: Module, k: number, opts: ReinitOptions = {}): string[] {
  const layers = layerCount(model);
  if (!Number.isInteger(k) || k < 1 || k > layers) throw new ConfigError(`reinit-top:${k} needs 1 ≤ K ≤ ${layers} (the model has ${layers} blocks)`, `choose K between 1 and ${layers}`);
  const cfg = ((model as { config?: Record<string, unknown> }).config ?? {}) as Record<string, unknown>;
  const std = typeof cfg.initializer_range === 'number' ? cfg.initializer_range : 0.02;
  const gpt2 = cfg.model_type === 'gpt2';
  const nLayer = typeof cfg.n_layer === 'number' ? cfg.n_layer : layers;
  const rng = new Rng(opts.seed ?? 0);
  const pooler = opts.pooler ?? true;
  const done: string[] = [];
  for (const [path, m] of model.namedModules()) {
    const i = layerIndex(`${path}.`);
    const inTop = i !== null && i >= layers - k;
    const isPooler = pooler && /(^|\.)pooler(\.|$)/.test(path);
    // LoRA adapters are children of the layers they wrap; they keep their own init.
    if (!(inTop || isPooler) || /(^|\.)lora_[AB]$/.test(path)) continue;
    if (m instanceof Linear || m instanceof Conv1D || m instanceof Embedding) {
      const s = gpt2 && path.endsWith('.c_proj') ? std / Math.sqrt(2 * nLayer) : std;
      set(m.weight, tf.tensor(rng.normalArray(m.weight.size, s), m.weight.shape));
      done.push(`${path}.weight`);
      if (!(m instanceof Embedding) && m.bias) {
        set(m.bias, tf.zeros(m.bias.shape));
        done.push(`${path}.bias`);
      }
    } else if (m instanceof LayerNorm || m instanceof RMSNorm) {
      set(m.weight, tf.ones(m.weight.shape));
      done.push(`${path}.weight`);
      if (m instanceof LayerNorm) {
        set(m.bias, tf.zeros(m.bias.shape));
        done.push(`${path}.bias`);
      }
    }
  }
  return done;
}
