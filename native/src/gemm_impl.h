// The single-threaded GEMM driver, in the shape of BLIS/GotoBLAS: B is packed into KC x NC panels of
// NR-wide slivers, A into MC x KC blocks of MR-tall slivers, and an MR x NR register micro-kernel runs
// over them. Strided views let one driver serve every transpose. Matrices with at most 4 rows (decoding)
// skip packing: they are bandwidth-bound, so they stream B once in its own layout.
//
// Included once per instruction set, after the including file defines, in its own namespace:
//   micro(kc, Ap, Bp, C, ldc, mr, nr, first)   C[mr x nr] (=|+=) Ap-sliver · Bp-sliver
//   dot(a, b, n)                               sum a[i] * b[i]
//   axpy(y, a, x, n)                           y[i] += a * x[i]
//   axpy4(y, a0..a3, x0..x3, n)                y[i] += a0 x0[i] + a1 x1[i] + a2 x2[i] + a3 x3[i]
//   axpy8(y, a, x, rs, n)                      y[i] += sum_u a[u] x[u*rs + i], u < 8 (two partial sums)
//   dot4(a, w0..w3, n, out)                    out[u] = dot(a, wu, n)
//   dot4x3(a, lda, mb, w, ldw, nb, K, out)     out[i][j] = dot(a + i*lda, w + j*ldw, K), i < mb <= 4, j < nb <= 3
//   pack16_transposed(b, cs, kc, dst)          dst[k*16 + c] = b[c*cs + k], c < 16, k < kc
// (The including file includes <algorithm>, <cmath>, <cstdlib>, <cstring> and <memory> first.)
constexpr int MR = 6, NR = 16;
constexpr int KC = kGemmKC, MC = 144, NC = 3072;

static float* aligned_buffer(std::unique_ptr<float, void (*)(void*)>& holder, size_t& have, size_t need) {
  if (have < need) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, need * sizeof(float)) != 0) abort();
    holder.reset(static_cast<float*>(p));
    have = need;
  }
  return holder.get();
}

// Applies the epilogue to an m x n block of C whose first column is column j0 of the whole output.
static void epilogue_block(float* C, int64_t ldc, int m, int n, int j0, const Epilogue& ep) {
  if (!ep.bias && ep.act == ACT_LINEAR) return;
  const float* bias = ep.bias ? ep.bias + j0 : nullptr;
  for (int i = 0; i < m; i++) {
    float* row = C + i * ldc;
    if (bias)
      for (int j = 0; j < n; j++) row[j] += bias[j];
    if (ep.act != ACT_LINEAR)
      for (int j = 0; j < n; j++) row[j] = activate(row[j], ep);
  }
}

static void pack_a(int mc, int kc, const float* A, int64_t rs, int64_t cs, float* Ap) {
  const int full = mc / MR;
  if (rs == 1) {
    // Columns of A are contiguous: walk each one once, dealing its elements out to the slivers.
    for (int k = 0; k < kc; k++) {
      const float* col = A + k * cs;
      for (int s = 0; s < full; s++)
        for (int r = 0; r < MR; r++) Ap[s * MR * kc + k * MR + r] = col[s * MR + r];
    }
  } else {
    for (int s = 0; s < full; s++) {
      const float* a = A + s * MR * rs;
      float* dst = Ap + s * MR * kc;
      for (int k = 0; k < kc; k++)
        for (int r = 0; r < MR; r++) dst[k * MR + r] = a[r * rs + k * cs];
    }
  }
  if (full * MR < mc) {
    const int mr = mc - full * MR;
    const float* a = A + full * MR * rs;
    float* dst = Ap + full * MR * kc;
    for (int k = 0; k < kc; k++)
      for (int r = 0; r < MR; r++) dst[k * MR + r] = r < mr ? a[r * rs + k * cs] : 0.f;
  }
}

static void pack_b(int kc, int nc, const float* B, int64_t rs, int64_t cs, float* Bp) {
  const int full = nc / NR;
  if (cs == 1) {
    // Rows of B are contiguous: read each row segment once and deal it out to the slivers.
    // Eight rows at a time, sliver by sliver: reads stay within 8 rows, and each sliver receives 512
    // contiguous bytes (row by row, the writes landed 16 KB apart, all in one L1 set).
    int k0 = 0;
    for (; k0 + 8 <= kc; k0 += 8)
      for (int s = 0; s < full; s++)
        for (int k = k0; k < k0 + 8; k++) std::memcpy(Bp + s * NR * kc + k * NR, B + k * rs + s * NR, NR * sizeof(float));
    for (int k = k0; k < kc; k++)
      for (int s = 0; s < full; s++) std::memcpy(Bp + s * NR * kc + k * NR, B + k * rs + s * NR, NR * sizeof(float));
  } else {
    for (int s = 0; s < full; s++) {
      const float* b = B + s * NR * cs;
      float* dst = Bp + s * NR * kc;
      if (rs == 1) {
        pack16_transposed(b, cs, kc, dst);
      } else {
        for (int k = 0; k < kc; k++)
          for (int c = 0; c < NR; c++) dst[k * NR + c] = b[k * rs + c * cs];
      }
    }
  }
  if (full * NR < nc) {
    const int nr = nc - full * NR;
    const float* b = B + full * NR * cs;
    float* dst = Bp + full * NR * kc;
    for (int k = 0; k < kc; k++)
      for (int c = 0; c < NR; c++) dst[k * NR + c] = c < nr ? b[k * rs + c * cs] : 0.f;
  }
}

// Rows of A (at most 4) copied contiguous, so the dot products below read them with unit stride.
static const float* contiguous_rows(int m, int K, Mat A, std::unique_ptr<float, void (*)(void*)>& holder, size_t& have) {
  float* t = aligned_buffer(holder, have, static_cast<size_t>(m) * K + 16);
  for (int i = 0; i < m; i++)
    for (int k = 0; k < K; k++) t[i * K + k] = A.p[i * A.rs + k * A.cs];
  return t;
}

// C = A·B for m <= 4 rows when B's rows are contiguous (B(k, j) = p[k * rs + j]). C's rows are the
// accumulators; B is streamed once, whole rows at a time, eight rows per pass over C.
static void small_m_nn(int m, int N, int K, Mat A, Mat B, float* C, int64_t ldc) {
  for (int i = 0; i < m; i++) std::memset(C + i * ldc, 0, N * sizeof(float));
  int k = 0;
  float a8[8];
  for (; k + 8 <= K; k += 8) {
    const float* b = B.p + k * B.rs;
    for (int i = 0; i < m; i++) {
      for (int u = 0; u < 8; u++) a8[u] = A.p[i * A.rs + (k + u) * A.cs];
      axpy8(C + i * ldc, a8, b, B.rs, N);
    }
  }
  for (; k + 4 <= K; k += 4) {
    const float* b = B.p + k * B.rs;
    for (int i = 0; i < m; i++) {
      const float* a = A.p + i * A.rs + k * A.cs;
      axpy4(C + i * ldc, a[0], a[A.cs], a[2 * A.cs], a[3 * A.cs], b, b + B.rs, b + 2 * B.rs, b + 3 * B.rs, N);
    }
  }
  for (; k < K; k++)
    for (int i = 0; i < m; i++) axpy(C + i * ldc, A.p[i * A.rs + k * A.cs], B.p + k * B.rs, N);
}

// C = A·B for m <= 4 rows when B's columns are contiguous (B(k, j) = p[j * cs + k]): dot products,
// four columns of B (rows of W) against one row of A at a time.
static void small_m_nt(int m, int N, int K, const float* Arows, Mat B, float* C, int64_t ldc) {
  int j = 0;
  for (; j + 4 <= N; j += 4) {
    const float* w = B.p + j * B.cs;
    for (int i = 0; i < m; i++) {
      float out[4];
      dot4(Arows + i * K, w, w + B.cs, w + 2 * B.cs, w + 3 * B.cs, K, out);
      for (int u = 0; u < 4; u++) C[i * ldc + j + u] = out[u];
    }
  }
  for (; j < N; j++)
    for (int i = 0; i < m; i++) C[i * ldc + j] = dot(Arows + i * K, B.p + j * B.cs, K);
}

// C = A·B for n <= 4 columns: with A's rows contiguous, dot products against B's columns (copied
// contiguous); with A's columns contiguous (A transposed), axpy over them into per-column sums.
static void small_n(int M, int n, int K, Mat A, Mat B, float* C, int64_t ldc, std::unique_ptr<float, void (*)(void*)>& holder, size_t& have) {
  if (A.cs == 1) {
    float* cols = aligned_buffer(holder, have, static_cast<size_t>(n) * K + 16);
    for (int j = 0; j < n; j++)
      for (int k = 0; k < K; k++) cols[j * K + k] = B.p[k * B.rs + j * B.cs];
    for (int i = 0; i < M; i++)
      for (int j = 0; j < n; j++) C[i * ldc + j] = dot(A.p + i * A.rs, cols + j * K, K);
    return;
  }
  constexpr int IB = 1024;
  alignas(64) float acc[4][IB];
  for (int i0 = 0; i0 < M; i0 += IB) {
    const int mb = std::min(IB, M - i0);
    for (int j = 0; j < n; j++) std::memset(acc[j], 0, mb * sizeof(float));
    for (int k = 0; k < K; k++) {
      const float* acol = A.p + i0 * A.rs + k * A.cs;
      for (int j = 0; j < n; j++) {
        axpy(acc[j], B.p[k * B.rs + j * B.cs], acol, mb);
      }
    }
    for (int i = 0; i < mb; i++)
      for (int j = 0; j < n; j++) C[(i0 + i) * ldc + j] = acc[j][i];
  }
}

// C = A·B when A's rows and B's columns are both contiguous (B is a transposed weight, x·Wᵀ) and A has
// few rows (5-64): 4 x 3 blocks of dot products read W once, in place, with no packing. From 65 rows on,
// the packed path (with pack16_transposed) is faster: 128x768x3072ᵀ 134 vs 115 GFLOP/s.
// Rows of A are taken in chunks of at most ~384 KB, each chunk against all of W.
static void nt_dot(int M, int N, int K, Mat A, Mat B, float* C, int64_t ldc) {
  const int chunk = std::max(4, std::min(M, (96 * 1024 / std::max(K, 1)) / 4 * 4));
  for (int c0 = 0; c0 < M; c0 += chunk) {
    const int c1 = std::min(M, c0 + chunk);
    for (int j0 = 0; j0 < N; j0 += 3) {
      const int nb = std::min(3, N - j0);
      for (int i0 = c0; i0 < c1; i0 += 4) {
        const int mb = std::min(4, c1 - i0);
        float out[4][3];
        dot4x3(A.p + i0 * A.rs, A.rs, mb, B.p + j0 * B.cs, B.cs, nb, K, out);
        for (int i = 0; i < mb; i++)
          for (int j = 0; j < nb; j++) C[(i0 + i) * ldc + j0 + j] = out[i][j];
      }
    }
  }
}

// Whether gemm_serial takes the packed path for this problem (the others never read packed A).
static bool will_pack(int M, int N, int K, Mat A, Mat B) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  if (M <= 4 && (B.cs == 1 || B.rs == 1)) return false;
  if (B.rs == 1 && A.cs == 1 && M > 4 && M <= 64 && K >= 256) return false;
  if (N <= 4 && (A.cs == 1 || A.rs == 1)) return false;
  return true;
}

static inline int padded_rows(int M) { return (M + MR - 1) / MR * MR; }

// Floats pack_a_all writes for an M x K matrix.
static size_t packed_a_floats(int M, int K) { return static_cast<size_t>(padded_rows(M)) * ((K + KC - 1) / KC) * KC; }

// All of A packed as gemm_serial reads it: per KC block of k, padded_rows(M) x kc in MR-row slivers.
static void pack_a_all(int M, int K, Mat A, float* out) {
  const int64_t block = static_cast<int64_t>(padded_rows(M)) * KC;
  for (int pc = 0; pc < K; pc += KC) pack_a(M, std::min(KC, K - pc), A.p + pc * A.cs, A.rs, A.cs, out + (pc / KC) * block);
}

// C = A·B (+ epilogue). `Apre`, when given, is all of A from pack_a_all (shared by threads that split
// the columns), and is used only on the packed path.
static void gemm_serial(int M, int N, int K, Mat A, Mat B, float* C, int64_t ldc, const Epilogue& ep, const float* Apre) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++) std::memset(C + i * ldc, 0, N * sizeof(float));
    epilogue_block(C, ldc, M, N, 0, ep);
    return;
  }
  thread_local std::unique_ptr<float, void (*)(void*)> abuf(nullptr, free), bbuf(nullptr, free);
  thread_local size_t ahave = 0, bhave = 0;
  if (M <= 4 && B.cs == 1) {
    small_m_nn(M, N, K, A, B, C, ldc);
    epilogue_block(C, ldc, M, N, 0, ep);
    return;
  }
  if (M <= 4 && B.rs == 1) {
    const float* rows = contiguous_rows(M, K, A, abuf, ahave);
    small_m_nt(M, N, K, rows, B, C, ldc);
    epilogue_block(C, ldc, M, N, 0, ep);
    return;
  }
  if (B.rs == 1 && A.cs == 1 && M > 4 && M <= 64 && K >= 256) {
    nt_dot(M, N, K, A, B, C, ldc);
    epilogue_block(C, ldc, M, N, 0, ep);
    return;
  }
  if (N <= 4 && (A.cs == 1 || A.rs == 1)) {
    small_n(M, N, K, A, B, C, ldc, bbuf, bhave);
    epilogue_block(C, ldc, M, N, 0, ep);
    return;
  }
  // Row blocks of near-equal height (at most MC), so no block is a thin remainder.
  const int mblocks = (M + MC - 1) / MC;
  const int mcb = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  float* Ap = aligned_buffer(abuf, ahave, static_cast<size_t>(MC + MR) * KC);
  float* Bp = aligned_buffer(bbuf, bhave, static_cast<size_t>(NC + NR) * KC);
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    for (int pc = 0; pc < K; pc += KC) {
      const int kc = std::min(KC, K - pc);
      const bool first = pc == 0, last = pc + kc == K;
      pack_b(kc, nc, B.p + pc * B.rs + jc * B.cs, B.rs, B.cs, Bp);
      for (int ic = 0; ic < M; ic += mcb) {
        const int mc = std::min(mcb, M - ic);
        if (Apre) Ap = const_cast<float*>(Apre) + (pc / KC) * static_cast<int64_t>(padded_rows(M)) * KC + static_cast<int64_t>(ic) * kc;
        else pack_a(mc, kc, A.p + ic * A.rs + pc * A.cs, A.rs, A.cs, Ap);
        for (int jr = 0; jr < nc; jr += NR) {
          const int nr = std::min(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            const int mr = std::min(MR, mc - ir);
            float* c = C + (ic + ir) * ldc + jc + jr;
            micro(kc, Ap + ir * kc, Bp + jr * kc, c, ldc, mr, nr, first);
          }
          if (last) epilogue_block(C + ic * ldc + jc + jr, ldc, mc, nr, jc + jr, ep);
        }
      }
    }
  }
}
