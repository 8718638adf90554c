// Multi-threaded operations over the chosen kernel set (what the N-API functions call).
#pragma once
#include <cstdint>

#include "kernels.h"

namespace mm {

// out[b] = op(A[b]) · op(B[b]) (+ bias, activation) for every batch item b, all row-major float32.
// A item is [M, K] ([K, M] when trans_a), B item [K, N] ([N, K] when trans_b), out item [M, N].
struct MatmulJob {
  const float* a;
  const float* b;
  float* c;
  int batch, M, N, K;
  bool trans_a, trans_b;
  int64_t a_batch_stride, b_batch_stride;  // in elements; 0 broadcasts one item to every b
  const int32_t* a_index = nullptr;         // optional per-b item index (general broadcasting)
  const int32_t* b_index = nullptr;
  Epilogue ep;
};

void matmul(const KernelSet& ks, const MatmulJob& job);
void tanh(const KernelSet& ks, const float* x, float* out, int64_t n);
void adamw(const KernelSet& ks, const AdamWArgs& a, int64_t n);
void xent_fwd(const KernelSet& ks, const float* logits, const int32_t* targets, float* nll, float* lse, int64_t rows, int V);
void xent_bwd(const KernelSet& ks, const float* logits, const int32_t* targets, const float* lse, const float* dnll, float* dlogits, int64_t rows, int V);
void layernorm_fwd(const KernelSet& ks, const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows, int D, float eps);
// dw and db are overwritten with sums over all rows (in a fixed order, whatever the thread count).
void layernorm_bwd(const KernelSet& ks, const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db, int64_t rows, int D);
void gelu_fwd(const KernelSet& ks, const float* x, float* y, int64_t n);
void gelu_bwd(const KernelSet& ks, const float* x, const float* dy, float* dx, int64_t n);
void dropout(const KernelSet& ks, const float* x, const float* u, float* y, float keep, int64_t n);
// Llama's pieces, each the exact computation the Llama layer kernel does: RMSNorm over rows of D; rotary
// on x [B, H, T, Dh] with tables cos, sin [Bc, T, Dh] (rot_batch_stride = T·Dh, or 0 when Bc = 1);
// out = silu(g) · u over n elements.
void rms_norm(const KernelSet& ks, const float* x, const float* w, float* y, int64_t rows, int D, float eps);
void rotary(const float* x, const float* cos, const float* sin, float* y, int B, int H, int T, int Dh, int64_t rot_batch_stride);
void silu_mul(const KernelSet& ks, const float* g, const float* u, float* out, int64_t n);

// Attention with the cache (one layer): key = past_k ++ k and value = past_v ++ v along time, then for
// every query head h (reading key/value head h / (H / Hkv)) out[b, t, h·Dh : (h+1)·Dh] =
// softmax(scale · q kᵀ + bias) v. q [B, H, T, Dh]; k, v [B, Hkv, T, Dh]; past_k, past_v [B, Hkv, S, Dh]
// (null when S = 0); bias [B or 1, 1, T, S + T] (null: none; bias_batch_stride 0 broadcasts);
// key, value [B, Hkv, S + T, Dh]; out [B, T, H·Dh]. `packed`: q is GPT-2's fused projection
// [B, T, (H + 2 Hkv)·Dh] holding queries, keys and values side by side per token (k, v unused).
struct AttentionJob {
  bool packed = false;
  const float *q, *k, *v, *past_k = nullptr, *past_v = nullptr, *bias = nullptr;
  float *key, *value, *out;
  int B, H, Hkv, T, S, Dh;
  int64_t bias_batch_stride = 0;
  float scale;
};
void attention(const KernelSet& ks, const AttentionJob& job);

// One pre-LayerNorm transformer block (GPT-2's), inference only:
//   h = x + proj(attention(c_attn(ln_1(x)))), y = h + fc_proj(gelu_tanh(fc(ln_2(h)))),
// with fused q/k/v (c_attn, [D, 3D]) and weights in [in, out] layout. Each step is the same kernel, on
// the same thread split, as the separate ops, so the result is bit-identical to running them one by one.
// `attn` carries the cache, bias, head counts and outputs key/value; its q/out are set here.
struct BlockJob {
  const float* x;
  float* y;  // [rows, D]
  const float *ln1_w, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *fc_proj_w, *fc_proj_b;
  int64_t rows;
  int D, inner;
  float eps;
  AttentionJob attn;
};
void pre_ln_block(const KernelSet& ks, BlockJob& job);

// One Llama decoder layer, inference only:
//   h = x + o(attention(rotary(q(n1)), rotary(k(n1)), v(n1))), n1 = rmsnorm_1(x),
//   y = h + down(silu(gate(n2)) · up(n2)), n2 = rmsnorm_2(h),
// weights in HF Linear's [out, in] layout, biases optional (null). cos/sin [Bc, T, Dh] (Bc = 1 or B)
// hold the rotary tables for the new positions (rotate_half pairing: i with i + Dh/2). `attn` carries
// the cache, bias, head counts and outputs key/value; its q/out are set here.
struct LlamaBlockJob {
  const float* x;
  float* y;  // [rows, D]
  const float *norm1_w, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b, *norm2_w, *gate_w, *gate_b, *up_w, *up_b, *down_w, *down_b;
  const float *cos, *sin;
  int64_t rot_batch_stride;  // 0 when the tables are shared by the batch
  int64_t rows;
  int D, inner;
  float eps;
  AttentionJob attn;
};
void llama_block(const KernelSet& ks, LlamaBlockJob& job);

}  // namespace mm
