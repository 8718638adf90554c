// AVX2 + FMA kernels. Only this file is compiled for those instructions (by pragma, not -march), and
// it runs only after the CPU has said it supports them (select_kernels in kernels.cc).
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels.h"

// Standard headers above keep the default target, so nothing they define is shared with AVX2 code.
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace mm {
namespace avx2 {

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// R rows (R <= 6) of an MR x NR tile: the last sliver of M = 128 has 2 rows, and running it through the
// 6-row loop cost a whole sliver (3% of a 128-row product). Each element's sum is the same FMA chain
// whatever R is, so the result does not depend on the variant.
template <int R>
static inline void micro_rows(int kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr, bool first) {
  // Named accumulators (an array of vectors indexed in a loop was spilled to memory: 2.5x slower).
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
    __m256 a = _mm256_broadcast_ss(Ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(Ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    if constexpr (R > 2) {
      a = _mm256_broadcast_ss(Ap + 2);
      c20 = _mm256_fmadd_ps(a, b0, c20);
      c21 = _mm256_fmadd_ps(a, b1, c21);
      a = _mm256_broadcast_ss(Ap + 3);
      c30 = _mm256_fmadd_ps(a, b0, c30);
      c31 = _mm256_fmadd_ps(a, b1, c31);
    }
    if constexpr (R > 4) {
      a = _mm256_broadcast_ss(Ap + 4);
      c40 = _mm256_fmadd_ps(a, b0, c40);
      c41 = _mm256_fmadd_ps(a, b1, c41);
      a = _mm256_broadcast_ss(Ap + 5);
      c50 = _mm256_fmadd_ps(a, b0, c50);
      c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    Ap += 6;
    Bp += 16;
  }
  const __m256 rows[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (mr == R && nr == 16) {
    for (int r = 0; r < R; r++) {
      float* c = C + r * ldc;
      if (first) {
        _mm256_storeu_ps(c, rows[r][0]);
        _mm256_storeu_ps(c + 8, rows[r][1]);
      } else {
        _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), rows[r][0]));
        _mm256_storeu_ps(c + 8, _mm256_add_ps(_mm256_loadu_ps(c + 8), rows[r][1]));
      }
    }
    return;
  }
  alignas(32) float t[6][16];
  for (int r = 0; r < mr; r++) {
    _mm256_store_ps(t[r], rows[r][0]);
    _mm256_store_ps(t[r] + 8, rows[r][1]);
  }
  for (int r = 0; r < mr; r++) {
    float* c = C + r * ldc;
    if (first)
      for (int j = 0; j < nr; j++) c[j] = t[r][j];
    else
      for (int j = 0; j < nr; j++) c[j] += t[r][j];
  }
}

static inline void micro(int kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr, bool first) {
  if (mr > 4) micro_rows<6>(kc, Ap, Bp, C, ldc, mr, nr, first);
  else if (mr > 2) micro_rows<4>(kc, Ap, Bp, C, ldc, mr, nr, first);
  else micro_rows<2>(kc, Ap, Bp, C, ldc, mr, nr, first);
}

static inline float dot(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int k = 0;
  for (; k + 32 <= n; k += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 16), _mm256_loadu_ps(b + k + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 24), _mm256_loadu_ps(b + k + 24), s3);
  }
  for (; k + 8 <= n; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; k < n; k++) s += a[k] * b[k];
  return s;
}

static inline void axpy(float* y, float a, const float* x, int n) {
  const __m256 av = _mm256_set1_ps(a);
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j)));
    _mm256_storeu_ps(y + j + 8, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(y + j + 8)));
  }
  for (; j < n; j++) y[j] += a * x[j];
}

static inline void axpy4(float* y, float a0, float a1, float a2, float a3, const float* x0, const float* x1, const float* x2, const float* x3, int n) {
  const __m256 v0 = _mm256_set1_ps(a0), v1 = _mm256_set1_ps(a1), v2 = _mm256_set1_ps(a2), v3 = _mm256_set1_ps(a3);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_loadu_ps(y + j);
    acc = _mm256_fmadd_ps(v0, _mm256_loadu_ps(x0 + j), acc);
    acc = _mm256_fmadd_ps(v1, _mm256_loadu_ps(x1 + j), acc);
    acc = _mm256_fmadd_ps(v2, _mm256_loadu_ps(x2 + j), acc);
    acc = _mm256_fmadd_ps(v3, _mm256_loadu_ps(x3 + j), acc);
    _mm256_storeu_ps(y + j, acc);
  }
  for (; j < n; j++) y[j] = (((y[j] + a0 * x0[j]) + a1 * x1[j]) + a2 * x2[j]) + a3 * x3[j];
}

// Eight rows of x (rs floats apart) in one pass over y: a load and a store of y per eight streamed
// rows, and eight read streams in flight (4 rows per pass read W at ~10% less bandwidth).
static inline void axpy8(float* y, const float* a, const float* x, int64_t rs, int n) {
  __m256 v[8];
  for (int u = 0; u < 8; u++) v[u] = _mm256_set1_ps(a[u]);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 lo = _mm256_loadu_ps(y + j);
    __m256 hi = _mm256_mul_ps(v[4], _mm256_loadu_ps(x + 4 * rs + j));
    lo = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(x + j), lo);
    hi = _mm256_fmadd_ps(v[5], _mm256_loadu_ps(x + 5 * rs + j), hi);
    lo = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + rs + j), lo);
    hi = _mm256_fmadd_ps(v[6], _mm256_loadu_ps(x + 6 * rs + j), hi);
    lo = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + 2 * rs + j), lo);
    hi = _mm256_fmadd_ps(v[7], _mm256_loadu_ps(x + 7 * rs + j), hi);
    lo = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + 3 * rs + j), lo);
    _mm256_storeu_ps(y + j, _mm256_add_ps(lo, hi));
  }
  for (; j < n; j++) {
    const float lo = (((y[j] + a[0] * x[j]) + a[1] * x[rs + j]) + a[2] * x[2 * rs + j]) + a[3] * x[3 * rs + j];
    const float hi = ((a[4] * x[4 * rs + j] + a[5] * x[5 * rs + j]) + a[6] * x[6 * rs + j]) + a[7] * x[7 * rs + j];
    y[j] = lo + hi;
  }
}

static inline void dot4(const float* a, const float* w0, const float* w1, const float* w2, const float* w3, int n, float out[4]) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 av = _mm256_loadu_ps(a + k);
    s0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w0 + k), s0);
    s1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w1 + k), s1);
    s2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w2 + k), s2);
    s3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(w3 + k), s3);
  }
  out[0] = hsum(s0);
  out[1] = hsum(s1);
  out[2] = hsum(s2);
  out[3] = hsum(s3);
  for (; k < n; k++) {
    out[0] += a[k] * w0[k];
    out[1] += a[k] * w1[k];
    out[2] += a[k] * w2[k];
    out[3] += a[k] * w3[k];
  }
}

// Up to 4 rows of A against up to 3 rows of W: 12 vector accumulators along k, one reduction each.
static inline void dot4x3(const float* a, int64_t lda, int mb, const float* w, int64_t ldw, int nb, int K, float out[4][3]) {
  const float* ar[4];
  const float* wr[3];
  for (int i = 0; i < 4; i++) ar[i] = a + (i < mb ? i : 0) * lda;
  for (int j = 0; j < 3; j++) wr[j] = w + (j < nb ? j : 0) * ldw;
  __m256 c[4][3];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) c[i][j] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 w0 = _mm256_loadu_ps(wr[0] + k), w1 = _mm256_loadu_ps(wr[1] + k), w2 = _mm256_loadu_ps(wr[2] + k);
    for (int i = 0; i < 4; i++) {
      const __m256 av = _mm256_loadu_ps(ar[i] + k);
      c[i][0] = _mm256_fmadd_ps(av, w0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(av, w1, c[i][1]);
      c[i][2] = _mm256_fmadd_ps(av, w2, c[i][2]);
    }
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) {
      float s = hsum(c[i][j]);
      for (int kk = k; kk < K; kk++) s += ar[i][kk] * wr[j][kk];
      out[i][j] = s;
    }
}

// dst[k * 16 + c] = b[c * cs + k] for c < 16, k < kc: one packed sliver from 16 rows of a transposed B,
// moved 8 x 8 at a time through registers (the scalar gather made the packed path slower than dot products).
static inline void pack16_transposed(const float* b, int64_t cs, int kc, float* dst) {
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int half = 0; half < 2; half++) {
      const float* src = b + half * 8 * cs + k;
      __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + cs), r2 = _mm256_loadu_ps(src + 2 * cs), r3 = _mm256_loadu_ps(src + 3 * cs);
      __m256 r4 = _mm256_loadu_ps(src + 4 * cs), r5 = _mm256_loadu_ps(src + 5 * cs), r6 = _mm256_loadu_ps(src + 6 * cs), r7 = _mm256_loadu_ps(src + 7 * cs);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5), t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE), s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
      r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
      r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
      r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
      r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
      r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
      r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
      r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
      float* d = dst + k * 16 + half * 8;
      _mm256_storeu_ps(d, r0);
      _mm256_storeu_ps(d + 16, r1);
      _mm256_storeu_ps(d + 32, r2);
      _mm256_storeu_ps(d + 48, r3);
      _mm256_storeu_ps(d + 64, r4);
      _mm256_storeu_ps(d + 80, r5);
      _mm256_storeu_ps(d + 96, r6);
      _mm256_storeu_ps(d + 112, r7);
    }
  }
  for (; k < kc; k++)
    for (int c = 0; c < 16; c++) dst[k * 16 + c] = b[c * cs + k];
}

#include "gemm_impl.h"

// exp(x) for a vector (Cephes expf: range reduction by ln 2, degree-6 polynomial), about 1 ulp.
static inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365478515625f)), _mm256_set1_ps(88.3762626647949f));
  __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// tanh: an odd polynomial near 0 (Cephes tanhf, |x| < 0.625), 1 - 2 / (exp(2|x|) + 1) elsewhere.
static inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u))));
  const __m256 ax = _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u))), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  const __m256 e = exp8(_mm256_add_ps(ax, ax));
  const __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.f), _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, _mm256_set1_ps(1.f))));
  const __m256 large = _mm256_or_ps(big, sign);
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

static void tanh_array(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, tanh8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = i; j < n; j++) t[j - i] = x[j];
    _mm256_store_ps(t, tanh8(_mm256_load_ps(t)));
    for (int64_t j = i; j < n; j++) out[j] = t[j - i];
  }
}

static void exp_array(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; i++) out[i] = std::exp(x[i]);
}

static float row_max(const float* x, int n) {
  int i = 0;
  float m = -INFINITY;
  if (n >= 8) {
    __m256 v = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + i));
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    for (float f : t) m = std::max(m, f);
  }
  for (; i < n; i++) m = std::max(m, x[i]);
  return m;
}

static float row_sum(const float* x, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; i++) s += x[i];
  return s;
}

#include "fused_impl.h"
#include "attention_impl.h"

}  // namespace avx2
}  // namespace mm
#pragma GCC pop_options

namespace mm {
const KernelSet& avx2_kernels() {
  static const KernelSet k{"avx2-fma", avx2::gemm_serial, avx2::will_pack, avx2::pack_a_all, avx2::packed_a_floats, avx2::tanh_array, avx2::adamw_range, avx2::xent_fwd_rows, avx2::xent_bwd_rows,
                           avx2::layernorm_fwd_rows, avx2::layernorm_bwd_rows, avx2::gelu_fwd_range, avx2::gelu_bwd_range, avx2::dropout_range,
                           avx2::rms_norm_rows, avx2::silu_mul_range, avx2::attention_rows};
  return k;
}
}  // namespace mm
#endif
