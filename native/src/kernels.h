// Kernel entry points, compiled once per instruction set (kernels_avx2.cc, kernels_generic.cc) and
// chosen at run time from what the CPU reports, so one binary runs on any x86-64 (or other) machine.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace mm {

// Activations of TF.js's fused matmul (`_FusedMatMul`'s `activation` attribute), prelu excepted.
enum Act { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_LEAKYRELU = 3, ACT_ELU = 4, ACT_SIGMOID = 5 };

// What is applied to each output element after the product: act(c + bias[j]).
struct Epilogue {
  const float* bias = nullptr;  // length N (offset to the block's first column), or null
  int act = ACT_LINEAR;
  float alpha = 0.f;  // leakyrelu slope
};

// act(v), scalar (epilogues). Internal linkage, so each instruction-set file keeps its own copy.
static inline float activate(float v, const Epilogue& ep) {
  switch (ep.act) {
    case ACT_RELU: return v > 0.f ? v : 0.f;
    case ACT_RELU6: return std::min(std::max(v, 0.f), 6.f);
    case ACT_LEAKYRELU: return v < 0.f ? ep.alpha * v : v;
    case ACT_ELU: return v > 0.f ? v : std::expm1(v);
    case ACT_SIGMOID: return 1.f / (1.f + std::exp(-v));
    default: return v;
  }
}

// Depth of the GEMM's packed blocks (gemm_impl.h's KC), which the threaded driver sizes its column
// blocks by.
constexpr int kGemmKC = 256;

// A strided matrix view: element (r, c) is p[r * rs + c * cs].
struct Mat {
  const float* p;
  int64_t rs, cs;
};

// One AdamW update (torch's _single_tensor_adamw order; see fused_impl.h), constants as float32.
struct AdamWArgs {
  const float *p, *g, *m, *v;
  float *p_out, *m_out, *v_out;
  bool decay;
  float keep, b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step;
};

struct KernelSet {
  const char* isa;
  // C[M, N] (row stride ldc, unit column stride) = A[M, K] · B[K, N], then the epilogue. One thread.
  // `Apre`: null, or all of A from pack_a_all (used only when will_pack says so).
  void (*gemm)(int M, int N, int K, Mat A, Mat B, float* C, int64_t ldc, const Epilogue& ep, const float* Apre);
  bool (*will_pack)(int M, int N, int K, Mat A, Mat B);
  void (*pack_a_all)(int M, int K, Mat A, float* out);
  size_t (*packed_a_floats)(int M, int K);
  // out = tanh(x), n elements.
  void (*tanh)(const float* x, float* out, int64_t n);
  // The fused kernels of fused_impl.h, each over an element or row range [s, e).
  void (*adamw)(const AdamWArgs& a, int64_t s, int64_t e);
  void (*xent_fwd)(const float* logits, const int32_t* targets, float* nll, float* lse, int64_t s, int64_t e, int V, float* scratch);
  void (*xent_bwd)(const float* logits, const int32_t* targets, const float* lse, const float* dnll, float* dlogits, int64_t s, int64_t e, int V);
  void (*ln_fwd)(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t s, int64_t e, int D, float eps);
  void (*ln_bwd)(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db, int64_t s, int64_t e, int D, float* scratch);
  void (*gelu_fwd)(const float* x, float* y, int64_t s, int64_t e);
  void (*gelu_bwd)(const float* x, const float* dy, float* dx, int64_t s, int64_t e);
  void (*dropout)(const float* x, const float* u, float* y, float keep, int64_t s, int64_t e);
  void (*rms_norm)(const float* x, const float* w, float* y, int64_t s, int64_t e, int D, float eps);
  void (*silu_mul)(const float* g, const float* u, float* out, int64_t s, int64_t e);
  // attention_impl.h: query rows [t0, t1) of one head against L keys and values.
  void (*attention_rows)(const float* q, int64_t q_rs, const float* K, const float* V, int L, int Dh, int t0, int t1,
                         const float* bias, int64_t bias_rs, float scale, float* out, int64_t out_rs, float* scores);
};

const KernelSet& generic_kernels();
#if defined(__x86_64__) || defined(__i386__)
const KernelSet& avx2_kernels();
#endif

// The best set this CPU supports (or the generic one when `force_generic`).
const KernelSet& select_kernels(bool force_generic);

}  // namespace mm
