/**
 * Rotary position embedding (RoPE; Su et al. 2021) as HF implements it: `modeling_rope_utils.py` for the
 * inverse frequencies ('default', 'linear', 'llama3') and `modeling_llama.py` for cos/sin and
 * `rotate_half` — the first half of each head pairs with the second half (GPT-NeoX layout), not
 * interleaved pairs. Nothing here is Llama-specific; it may move to src/nn.
 */
import * as tf from '@tensorflow/tfjs-core';
import { rotary } from '../../backend/fused_llama.js';

/** The rope scalings we implement; other HF `rope_type`s (dynamic, yarn, longrope…) are rejected at config time. */
export type RopeScaling =
  | { rope_type: 'default' }
  | { rope_type: 'linear'; factor: number }
  | { rope_type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };

/** Names of the supported `rope_type`s, for error messages. */
export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3'] as const;

const f32 = Math.fround;

/**
 * HF's default inverse frequencies θ_i = 1 / base^(2i/dim), i < dim/2, rounded step by step to float32
 * as PyTorch computes them (arange → float32, /dim, pow, reciprocal), so long positions match too.
 */
export function defaultInvFreq(dim: number, base: number): Float32Array {
  const out = new Float32Array(dim / 2);
  const b = f32(base);
  for (let i = 0; i < dim / 2; i++) out[i] = f32(1 / f32(Math.pow(b, f32((2 * i) / dim))));
  return out;
}

/**
 * Llama 3.1's frequency-dependent scaling (HF `_compute_llama3_parameters`): wavelengths shorter than
 * original/high_freq_factor are kept, longer than original/low_freq_factor are divided by `factor`,
 * and the band between is interpolated smoothly. float32 throughout, in PyTorch's order (`c / t` is
 * `t.reciprocal() * c`), so the result is bit-identical to HF's.
 */
export function llama3InvFreq(invFreq: Float32Array, s: { factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number }): Float32Array {
  const old = s.original_max_position_embeddings;
  const lowWavelen = f32(old / s.low_freq_factor);
  const highWavelen = f32(old / s.high_freq_factor);
  const factor = f32(s.factor);
  const out = new Float32Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    const f = invFreq[i];
    const wavelen = f32(f32(1 / f) * f32(2 * Math.PI));
    if (wavelen < highWavelen) {
      out[i] = f;
    } else if (wavelen > lowWavelen) {
      out[i] = f32(f / factor);
    } else {
      const smooth = f32(f32(f32(f32(1 / wavelen) * f32(old)) - f32(s.low_freq_factor)) / f32(s.high_freq_factor - s.low_freq_factor));
      out[i] = f32(f32(f32(f32(1 - smooth) * f) / factor) + f32(smooth * f));
    }
  }
  return out;
}

/** Inverse frequencies [dim/2] for a head of size `dim` under `scaling` (null = default). */
export function ropeInvFreq(dim: number, base: number, scaling: RopeScaling | null): Float32Array {
  const inv = defaultInvFreq(dim, base);
  if (!scaling || scaling.rope_type === 'default') return inv;
  if (scaling.rope_type === 'linear') {
    // Dividing the frequencies is dividing the positions: (p/factor)·θ = p·(θ/factor).
    const factor = f32(scaling.factor);
    return inv.map((f) => f32(f / factor));
  }
  return llama3InvFreq(inv, scaling);
}

/** cos and sin tables, each [B, 1, T, Dh]: angles p·θ_i for the positions, the half-table repeated twice. */
export interface RotaryTables {
  cos: tf.Tensor;
  sin: tf.Tensor;
}

/**
 * Angles from position ids (so left-padded rows with their own positions rotate correctly).
 * @param positionIds [B, T] (int32 or float32; [1, T] broadcasts over the batch)
 */
export function rotaryTables(invFreq: Float32Array, positionIds: tf.Tensor): RotaryTables {
  return tf.tidy(() => {
    const [B, T] = positionIds.shape as number[];
    const half = invFreq.length;
    // One float32 product per angle, exactly like HF's [B, Dh/2, 1] @ [B, 1, T] matmul with inner size 1.
    const freqs = tf.mul(tf.cast(positionIds, 'float32').reshape([B, T, 1]), tf.tensor1d(invFreq).reshape([1, 1, half]));
    const emb = tf.concat([freqs, freqs], -1).reshape([B, 1, T, 2 * half]);
    return { cos: tf.cos(emb), sin: tf.sin(emb) };
  });
}

/** x·cos + rotate_half(x)·sin (one kernel with the native kernels on). @param x [B, H, T, Dh] @returns [B, H, T, Dh] */
export function applyRotary(x: tf.Tensor, t: RotaryTables): tf.Tensor {
  return rotary(x, t.cos, t.sin);
}
