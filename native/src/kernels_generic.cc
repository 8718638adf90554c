// Portable kernels in plain C++ (the compiler vectorises them for the baseline instruction set): used
// when the CPU lacks AVX2/FMA, on other architectures, or with MAKEMOST_NATIVE_ISA=generic.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels.h"

namespace mm {
namespace generic {

constexpr int GMR = 6, GNR = 16;

// Two passes over 8-column halves keep the 6 x 8 accumulators in registers even with 16 SSE registers.
static inline void micro(int kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr, bool first) {
  for (int h = 0; h < GNR; h += 8) {
    float acc[GMR][8] = {};
    const float* a = Ap;
    const float* b = Bp + h;
    for (int k = 0; k < kc; k++, a += GMR, b += GNR)
      for (int r = 0; r < GMR; r++)
        for (int j = 0; j < 8; j++) acc[r][j] += a[r] * b[j];
    const int cols = std::min(8, nr - h);
    for (int r = 0; r < mr; r++) {
      float* c = C + r * ldc + h;
      if (first)
        for (int j = 0; j < cols; j++) c[j] = acc[r][j];
      else
        for (int j = 0; j < cols; j++) c[j] += acc[r][j];
    }
  }
}

static inline float dot(const float* a, const float* b, int n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int u = 0; u < 8; u++) s[u] += a[k + u] * b[k + u];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; k < n; k++) t += a[k] * b[k];
  return t;
}

static inline void axpy(float* y, float a, const float* x, int n) {
  for (int j = 0; j < n; j++) y[j] += a * x[j];
}

static inline void axpy4(float* y, float a0, float a1, float a2, float a3, const float* x0, const float* x1, const float* x2, const float* x3, int n) {
  for (int j = 0; j < n; j++) y[j] = (((y[j] + a0 * x0[j]) + a1 * x1[j]) + a2 * x2[j]) + a3 * x3[j];
}

static inline void axpy8(float* y, const float* a, const float* x, int64_t rs, int n) {
  for (int j = 0; j < n; j++) {
    const float lo = (((y[j] + a[0] * x[j]) + a[1] * x[rs + j]) + a[2] * x[2 * rs + j]) + a[3] * x[3 * rs + j];
    const float hi = ((a[4] * x[4 * rs + j] + a[5] * x[5 * rs + j]) + a[6] * x[6 * rs + j]) + a[7] * x[7 * rs + j];
    y[j] = lo + hi;
  }
}

static inline void dot4(const float* a, const float* w0, const float* w1, const float* w2, const float* w3, int n, float out[4]) {
  out[0] = dot(a, w0, n);
  out[1] = dot(a, w1, n);
  out[2] = dot(a, w2, n);
  out[3] = dot(a, w3, n);
}

static inline void dot4x3(const float* a, int64_t lda, int mb, const float* w, int64_t ldw, int nb, int K, float out[4][3]) {
  for (int i = 0; i < mb; i++)
    for (int j = 0; j < nb; j++) out[i][j] = dot(a + i * lda, w + j * ldw, K);
}

// dst[k * 16 + c] = b[c * cs + k] for c < 16, k < kc: one packed sliver from 16 rows of a transposed B.
static inline void pack16_transposed(const float* b, int64_t cs, int kc, float* dst) {
  for (int c = 0; c < 16; c++)
    for (int k = 0; k < kc; k++) dst[k * 16 + c] = b[c * cs + k];
}

#include "gemm_impl.h"

static void tanh_array(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = std::tanh(x[i]);
}

static void exp_array(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = std::exp(x[i]);
}

static float row_max(const float* x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; i++) m = std::max(m, x[i]);
  return m;
}

static float row_sum(const float* x, int n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; u++) s[u] += x[i + u];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; i++) t += x[i];
  return t;
}

#include "fused_impl.h"
#include "attention_impl.h"

}  // namespace generic

const KernelSet& generic_kernels() {
  static const KernelSet k{"generic", generic::gemm_serial, generic::will_pack, generic::pack_a_all, generic::packed_a_floats, generic::tanh_array, generic::adamw_range, generic::xent_fwd_rows, generic::xent_bwd_rows,
                           generic::layernorm_fwd_rows, generic::layernorm_bwd_rows, generic::gelu_fwd_range, generic::gelu_bwd_range, generic::dropout_range,
                           generic::rms_norm_rows, generic::silu_mul_range, generic::attention_rows};
  return k;
}

}  // namespace mm
