// Run-time choice of the kernel set, and the threaded drivers: a batched matmul is cut into
// independent tasks (whole batch items when there are enough, else column or row blocks of each
// item) that the pool's threads claim; every task runs the single-threaded GEMM of the chosen set.
#include "ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "pool.h"

namespace mm {

const KernelSet& select_kernels(bool force_generic) {
#if defined(__x86_64__) || defined(__i386__)
  if (!force_generic) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2_kernels();
  }
#endif
  (void)force_generic;
  return generic_kernels();
}

// Below this many multiply-adds a job runs on the calling thread: waking a worker costs more.
constexpr double kParallelMin = 1 << 15;
#ifndef MM_PREPACK_A
#define MM_PREPACK_A 1
#endif
constexpr bool kPrepackA = MM_PREPACK_A;

// Decoding's x·W (at most 4 rows, W row-major): each task streams a contiguous band of W's rows into
// its own partial sums, which are then added in a fixed order. The bands depend on K alone, so the
// result is the same on any number of threads; streaming whole rows reads W at full memory bandwidth,
// where cutting its columns between threads made each read short strided runs.
template <typename VA, typename VB>
static void matvec_by_k(const KernelSet& ks, const MatmulJob& job, VA view_a, VB view_b) {
  const int M = job.M, N = job.N, K = job.K;
  const int bands = std::max(1, std::min(32, K / 64));
  const int band = (K + bands - 1) / bands;
  std::vector<float> part(static_cast<size_t>(job.batch) * bands * M * N);
  Epilogue none;
  pool().run(job.batch * bands, [&](int t) {
    const int bi = t / bands, b = t % bands;
    const int k0 = b * band, k1 = std::min(K, k0 + band);
    Mat A = view_a(bi), B = view_b(bi);
    A.p += k0 * A.cs;
    B.p += k0 * B.rs;
    float* out = part.data() + (static_cast<size_t>(bi) * bands + b) * M * N;
    if (k1 > k0) ks.gemm(M, N, k1 - k0, A, B, out, N, none, nullptr);
    else std::fill(out, out + static_cast<size_t>(M) * N, 0.f);
  });
  for (int bi = 0; bi < job.batch; bi++) {
    float* C = job.c + static_cast<int64_t>(bi) * M * N;
    const float* p0 = part.data() + static_cast<size_t>(bi) * bands * M * N;
    for (int64_t i = 0; i < static_cast<int64_t>(M) * N; i++) {
      float s = p0[i];
      for (int b = 1; b < bands; b++) s += p0[static_cast<size_t>(b) * M * N + i];
      C[i] = s;
    }
    if (job.ep.bias || job.ep.act != ACT_LINEAR) {
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          float& v = C[static_cast<int64_t>(i) * N + j];
          if (job.ep.bias) v += job.ep.bias[j];
          v = activate(v, job.ep);
        }
    }
  }
}

void matmul(const KernelSet& ks, const MatmulJob& job) {
  const int M = job.M, N = job.N, K = job.K;
  if (job.batch <= 0 || M <= 0 || N <= 0) return;
  const int64_t aItem = static_cast<int64_t>(M) * K, bItem = static_cast<int64_t>(K) * N, cItem = static_cast<int64_t>(M) * N;
  auto view_a = [&](int bi) {
    const float* p = job.a + (job.a_index ? job.a_index[bi] * aItem : bi * job.a_batch_stride);
    return job.trans_a ? Mat{p, 1, M} : Mat{p, K, 1};
  };
  auto view_b = [&](int bi) {
    const float* p = job.b + (job.b_index ? job.b_index[bi] * bItem : bi * job.b_batch_stride);
    return job.trans_b ? Mat{p, 1, K} : Mat{p, N, 1};
  };
  if (M <= 4 && !job.trans_b && K >= 512) {
    matvec_by_k(ks, job, view_a, view_b);
    return;
  }
  Pool& p = pool();
  const int threads = p.threads();
  const double work = static_cast<double>(job.batch) * M * N * std::max(K, 1);
  if (threads == 1 || work < kParallelMin) {
    for (int bi = 0; bi < job.batch; bi++) ks.gemm(M, N, K, view_a(bi), view_b(bi), job.c + bi * cItem, N, job.ep, nullptr);
    return;
  }
  if (job.batch >= 2 * threads || (job.batch >= threads && job.batch % threads == 0)) {
    p.run(job.batch, [&](int bi) { ks.gemm(M, N, K, view_a(bi), view_b(bi), job.c + bi * cItem, N, job.ep, nullptr); });
    return;
  }
  // Few batch items: cut each into blocks of columns (or of rows when N is narrow), several per thread
  // so that a worker the OS has descheduled holds the caller up by one small block only.
  const bool by_cols = N >= 64 || N >= M;
  const int extent = by_cols ? N : M;
  const int align = by_cols ? 16 : 6;
  const int minimum = by_cols ? (M <= 4 ? 256 : 64) : 48;
  int parts = std::max(1, std::min(4 * threads, extent / minimum));
  if (by_cols && ks.will_pack(M, N, K, view_a(0), view_b(0))) {
    // Column blocks whose packed B panel (KC x chunk) takes ~192 KB, so that it and the A block it meets
    // stay in a 512 KB L2 (N = 3072 in 8 blocks made 384 KB panels: 116 instead of 150 GFLOP/s).
    const int64_t panel_cols = std::max<int64_t>(64, (192 * 1024 / 4) / std::max(1, std::min(K, kGemmKC)));
    parts = static_cast<int>(std::max<int64_t>(threads, (extent + panel_cols - 1) / panel_cols));
  }
  int chunk = (extent + parts - 1) / parts;
  chunk = (chunk + align - 1) / align * align;
  const int pieces = (extent + chunk - 1) / chunk;
  // Column blocks all read the whole of A: pack it once for every block instead of once per block.
  std::vector<float> packed;
  std::vector<const float*> apre(job.batch, nullptr);
  if (kPrepackA && by_cols && pieces > 1 && ks.will_pack(M, N, K, view_a(0), view_b(0))) {
    const size_t each = ks.packed_a_floats(M, K);
    packed.resize(each * job.batch + 16);
    p.run(job.batch, [&](int bi) { ks.pack_a_all(M, K, view_a(bi), packed.data() + each * bi); });
    for (int bi = 0; bi < job.batch; bi++) apre[bi] = packed.data() + each * bi;
  }
  p.run(job.batch * pieces, [&](int t) {
    const int bi = t / pieces, piece = t % pieces;
    const int s = piece * chunk, e = std::min(extent, s + chunk);
    if (s >= e) return;
    Mat A = view_a(bi), B = view_b(bi);
    float* C = job.c + bi * cItem;
    Epilogue ep = job.ep;
    if (by_cols) {
      B.p += s * B.cs;
      if (ep.bias) ep.bias += s;
      ks.gemm(M, e - s, K, A, B, C + s, N, ep, apre[bi]);
    } else {
      A.p += s * A.rs;
      ks.gemm(e - s, N, K, A, B, C + static_cast<int64_t>(s) * N, N, ep, nullptr);
    }
  });
}

// Splits [0, n) into up to 4 tasks per thread of at least `grain` items each; a descheduled worker then
// delays the caller by one small task, not half the job.
template <typename F>
static void parallel_ranges(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  Pool& p = pool();
  const int64_t most = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int tasks = static_cast<int>(std::min<int64_t>(most, p.threads() == 1 ? 1 : 4 * p.threads()));
  if (tasks <= 1) {
    fn(0, n);
    return;
  }
  const int64_t chunk = (n + tasks - 1) / tasks;
  p.run(tasks, [&](int t) {
    const int64_t s = t * chunk, e = std::min(n, s + chunk);
    if (s < e) fn(s, e);
  });
}

void tanh(const KernelSet& ks, const float* x, float* out, int64_t n) {
  parallel_ranges(n, 1 << 14, [&](int64_t s, int64_t e) { ks.tanh(x + s, out + s, e - s); });
}

void adamw(const KernelSet& ks, const AdamWArgs& a, int64_t n) {
  parallel_ranges(n, 1 << 15, [&](int64_t s, int64_t e) { ks.adamw(a, s, e); });
}

void xent_fwd(const KernelSet& ks, const float* logits, const int32_t* targets, float* nll, float* lse, int64_t rows, int V) {
  parallel_ranges(rows, std::max<int64_t>(1, (1 << 15) / std::max(V, 1)), [&](int64_t s, int64_t e) {
    std::vector<float> scratch(V);
    ks.xent_fwd(logits, targets, nll, lse, s, e, V, scratch.data());
  });
}

void xent_bwd(const KernelSet& ks, const float* logits, const int32_t* targets, const float* lse, const float* dnll, float* dlogits, int64_t rows, int V) {
  parallel_ranges(rows, std::max<int64_t>(1, (1 << 15) / std::max(V, 1)), [&](int64_t s, int64_t e) { ks.xent_bwd(logits, targets, lse, dnll, dlogits, s, e, V); });
}

void layernorm_fwd(const KernelSet& ks, const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows, int D, float eps) {
  parallel_ranges(rows, std::max<int64_t>(1, (1 << 14) / std::max(D, 1)), [&](int64_t s, int64_t e) { ks.ln_fwd(x, w, b, y, mean, rstd, s, e, D, eps); });
}

void layernorm_bwd(const KernelSet& ks, const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db, int64_t rows, int D) {
  // Eight fixed row blocks, each summed on its own and then added in order: the same result on any
  // number of threads.
  constexpr int kBlocks = 8;
  std::vector<float> part(static_cast<size_t>(kBlocks) * 2 * D, 0.f);
  const int64_t chunk = (rows + kBlocks - 1) / kBlocks;
  auto block = [&](int blk) {
    const int64_t s = blk * chunk, e = std::min(rows, s + chunk);
    if (s >= e) return;
    std::vector<float> scratch(2 * static_cast<size_t>(D));
    float* pw = part.data() + static_cast<size_t>(blk) * 2 * D;
    ks.ln_bwd(x, w, mean, rstd, dy, dx, pw, pw + D, s, e, D, scratch.data());
  };
  Pool& p = pool();
  if (p.threads() == 1 || rows * static_cast<int64_t>(D) < (1 << 15)) {
    for (int b = 0; b < kBlocks; b++) block(b);
  } else {
    p.run(kBlocks, block);
  }
  for (int j = 0; j < D; j++) {
    dw[j] = 0.f;
    db[j] = 0.f;
  }
  for (int b = 0; b < kBlocks; b++) {
    const float* pw = part.data() + static_cast<size_t>(b) * 2 * D;
    for (int j = 0; j < D; j++) {
      dw[j] += pw[j];
      db[j] += pw[D + j];
    }
  }
}

void gelu_fwd(const KernelSet& ks, const float* x, float* y, int64_t n) {
  parallel_ranges(n, 1 << 14, [&](int64_t s, int64_t e) { ks.gelu_fwd(x, y, s, e); });
}

void gelu_bwd(const KernelSet& ks, const float* x, const float* dy, float* dx, int64_t n) {
  parallel_ranges(n, 1 << 14, [&](int64_t s, int64_t e) { ks.gelu_bwd(x, dy, dx, s, e); });
}

void attention(const KernelSet& ks, const AttentionJob& j) {
  const int L = j.S + j.T, G = j.H / j.Hkv;
  const int64_t item = static_cast<int64_t>(L) * j.Dh;
  // The new cache first (a copy per key/value head, memory-bound), then every head reads it.
  parallel_ranges(static_cast<int64_t>(j.B) * j.Hkv, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, item)), [&](int64_t s, int64_t e) {
    for (int64_t bg = s; bg < e; bg++) {
      const size_t past = static_cast<size_t>(j.S) * j.Dh, fresh = static_cast<size_t>(j.T) * j.Dh;
      if (past) {
        std::memcpy(j.key + bg * item, j.past_k + bg * past, past * sizeof(float));
        std::memcpy(j.value + bg * item, j.past_v + bg * past, past * sizeof(float));
      }
      if (j.packed) {
        const int64_t b = bg / j.Hkv, g = bg % j.Hkv, W = static_cast<int64_t>(j.H + 2 * j.Hkv) * j.Dh;
        for (int t = 0; t < j.T; t++) {
          const float* row = j.q + (b * j.T + t) * W + static_cast<int64_t>(j.H + g) * j.Dh;
          std::memcpy(j.key + bg * item + past + static_cast<size_t>(t) * j.Dh, row, j.Dh * sizeof(float));
          std::memcpy(j.value + bg * item + past + static_cast<size_t>(t) * j.Dh, row + static_cast<int64_t>(j.Hkv) * j.Dh, j.Dh * sizeof(float));
        }
      } else {
        std::memcpy(j.key + bg * item + past, j.k + bg * fresh, fresh * sizeof(float));
        std::memcpy(j.value + bg * item + past, j.v + bg * fresh, fresh * sizeof(float));
      }
    }
  });
  // Tasks: (batch item, head, block of query rows); a block holds ~16 K multiply-adds or more, and at
  // most 64 rows (blocks of 8 or more rows run as GEMMs).
  const int64_t per_row = std::max<int64_t>(1, static_cast<int64_t>(L) * j.Dh * 2);
  const int rows = j.T >= 8 ? std::min(j.T, 64) : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(j.T, (1 << 14) / per_row)));
  const int blocks = (j.T + rows - 1) / rows;
  const int64_t tasks = static_cast<int64_t>(j.B) * j.H * blocks;
  auto task = [&](int64_t t) {
    const int blk = static_cast<int>(t % blocks);
    const int64_t bh = t / blocks;
    const int b = static_cast<int>(bh / j.H), h = static_cast<int>(bh % j.H), g = h / G;
    std::vector<float> scores(static_cast<size_t>(std::max(L, 1)) * rows);
    const int64_t kv = (static_cast<int64_t>(b) * j.Hkv + g) * item;
    const int64_t W = static_cast<int64_t>(j.H + 2 * j.Hkv) * j.Dh;
    const float* q = j.packed ? j.q + static_cast<int64_t>(b) * j.T * W + static_cast<int64_t>(h) * j.Dh : j.q + (static_cast<int64_t>(b) * j.H + h) * j.T * j.Dh;
    const float* bias = j.bias ? j.bias + b * j.bias_batch_stride : nullptr;
    float* out = j.out + static_cast<int64_t>(b) * j.T * j.H * j.Dh + static_cast<int64_t>(h) * j.Dh;
    const int t0 = blk * rows, t1 = std::min(j.T, t0 + rows);
    ks.attention_rows(q, j.packed ? W : j.Dh, j.key + kv, j.value + kv, L, j.Dh, t0, t1, bias, L, j.scale, out, static_cast<int64_t>(j.H) * j.Dh, scores.data());
  };
  Pool& p = pool();
  if (p.threads() == 1 || tasks == 1 || tasks * rows * per_row < kParallelMin) {
    for (int64_t t = 0; t < tasks; t++) task(t);
  } else {
    p.run(static_cast<int>(tasks), [&](int t) { task(t); });
  }
}

// out = a + b, n elements (the residual adds of a block).
static void add_arrays(const float* a, const float* b, float* out, int64_t n) {
  parallel_ranges(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) out[i] = a[i] + b[i];
  });
}

// y = x · W + bias for the blocks' projections (W [K, N] row-major, or [N, K] when `trans`: HF Linear's
// layout), through the threaded matmul.
static void project(const KernelSet& ks, const float* x, const float* w, const float* bias, float* y, int64_t rows, int K, int N, bool trans = false) {
  MatmulJob mj;
  mj.a = x;
  mj.b = w;
  mj.c = y;
  mj.batch = 1;
  mj.M = static_cast<int>(rows);
  mj.N = N;
  mj.K = K;
  mj.trans_a = false;
  mj.trans_b = trans;
  mj.a_batch_stride = 0;
  mj.b_batch_stride = 0;
  mj.ep.bias = bias;
  matmul(ks, mj);
}

void pre_ln_block(const KernelSet& ks, BlockJob& j) {
  const int64_t rows = j.rows, D = j.D, inner = j.inner;
  std::vector<float> stats(2 * static_cast<size_t>(rows));
  std::vector<float> normed(rows * D), qkv(rows * 3 * D), attended(rows * D), h(rows * D), wide(rows * inner);
  layernorm_fwd(ks, j.x, j.ln1_w, j.ln1_b, normed.data(), stats.data(), stats.data() + rows, rows, j.D, j.eps);
  project(ks, normed.data(), j.attn_w, j.attn_b, qkv.data(), rows, j.D, 3 * j.D);
  j.attn.q = qkv.data();
  j.attn.packed = true;
  j.attn.out = attended.data();
  attention(ks, j.attn);
  project(ks, attended.data(), j.proj_w, j.proj_b, normed.data(), rows, j.D, j.D);
  add_arrays(j.x, normed.data(), h.data(), rows * D);
  layernorm_fwd(ks, h.data(), j.ln2_w, j.ln2_b, normed.data(), stats.data(), stats.data() + rows, rows, j.D, j.eps);
  project(ks, normed.data(), j.fc_w, j.fc_b, wide.data(), rows, j.D, j.inner);
  gelu_fwd(ks, wide.data(), wide.data(), rows * inner);
  project(ks, wide.data(), j.fc_proj_w, j.fc_proj_b, normed.data(), rows, j.inner, j.D);
  add_arrays(h.data(), normed.data(), j.y, rows * D);
}

// One head's x·cos + rotate_half(x)·sin (out may be x): pair i with i + Dh/2.
static inline void rotate_head(const float* v, float* out, const float* c, const float* sn, int half) {
  for (int i = 0; i < half; i++) {
    const float x1 = v[i], x2 = v[i + half];
    out[i] = x1 * c[i] + -x2 * sn[i];
    out[i + half] = x2 * c[i + half] + x1 * sn[i + half];
  }
}

void rotary(const float* x, const float* cos, const float* sin, float* y, int B, int H, int T, int Dh, int64_t rot_batch_stride) {
  const int64_t heads = static_cast<int64_t>(B) * H;
  parallel_ranges(heads, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, static_cast<int64_t>(T) * Dh)), [&](int64_t s, int64_t e) {
    for (int64_t bh = s; bh < e; bh++) {
      const int64_t b = bh / H;
      for (int t = 0; t < T; t++) {
        const int64_t at = (bh * T + t) * Dh, tab = b * rot_batch_stride + static_cast<int64_t>(t) * Dh;
        rotate_head(x + at, y + at, cos + tab, sin + tab, Dh / 2);
      }
    }
  });
}

void rms_norm(const KernelSet& ks, const float* x, const float* w, float* y, int64_t rows, int D, float eps) {
  parallel_ranges(rows, std::max<int64_t>(1, (1 << 14) / std::max(D, 1)), [&](int64_t s, int64_t e) { ks.rms_norm(x, w, y, s, e, D, eps); });
}

void silu_mul(const KernelSet& ks, const float* g, const float* u, float* out, int64_t n) {
  parallel_ranges(n, 1 << 14, [&](int64_t s, int64_t e) { ks.silu_mul(g, u, out, s, e); });
}

// Rotary in place over the block's [rows, heads · Dh] projections; row r = (b, t).
static void rotate_rows(float* x, int64_t W, int heads, int Dh, const LlamaBlockJob& j) {
  const int T = j.attn.T;
  parallel_ranges(j.rows, std::max<int64_t>(1, (1 << 14) / std::max(1, heads * Dh)), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; r++) {
      const int64_t tab = (r / T) * j.rot_batch_stride + (r % T) * Dh;
      for (int h = 0; h < heads; h++) rotate_head(x + r * W + static_cast<int64_t>(h) * Dh, x + r * W + static_cast<int64_t>(h) * Dh, j.cos + tab, j.sin + tab, Dh / 2);
    }
  });
}

void llama_block(const KernelSet& ks, LlamaBlockJob& j) {
  const int64_t rows = j.rows, D = j.D, inner = j.inner;
  const int H = j.attn.H, Hkv = j.attn.Hkv, Dh = j.attn.Dh;
  const int64_t qn = static_cast<int64_t>(H) * Dh, kn = static_cast<int64_t>(Hkv) * Dh, W = qn + 2 * kn;
  std::vector<float> normed(rows * D), q(rows * qn), k(rows * kn), v(rows * kn), qkv(rows * W), attended(rows * qn), h(rows * D);
  std::vector<float> gate(rows * inner), up(rows * inner);
  rms_norm(ks, j.x, j.norm1_w, normed.data(), rows, j.D, j.eps);
  project(ks, normed.data(), j.q_w, j.q_b, q.data(), rows, j.D, static_cast<int>(qn), true);
  project(ks, normed.data(), j.k_w, j.k_b, k.data(), rows, j.D, static_cast<int>(kn), true);
  project(ks, normed.data(), j.v_w, j.v_b, v.data(), rows, j.D, static_cast<int>(kn), true);
  rotate_rows(q.data(), qn, H, Dh, j);
  rotate_rows(k.data(), kn, Hkv, Dh, j);
  // The attention kernel's packed layout: each token's queries, keys and values side by side.
  for (int64_t r = 0; r < rows; r++) {
    std::memcpy(qkv.data() + r * W, q.data() + r * qn, qn * sizeof(float));
    std::memcpy(qkv.data() + r * W + qn, k.data() + r * kn, kn * sizeof(float));
    std::memcpy(qkv.data() + r * W + qn + kn, v.data() + r * kn, kn * sizeof(float));
  }
  j.attn.q = qkv.data();
  j.attn.packed = true;
  j.attn.out = attended.data();
  attention(ks, j.attn);
  project(ks, attended.data(), j.o_w, j.o_b, normed.data(), rows, static_cast<int>(qn), j.D, true);
  add_arrays(j.x, normed.data(), h.data(), rows * D);
  rms_norm(ks, h.data(), j.norm2_w, normed.data(), rows, j.D, j.eps);
  project(ks, normed.data(), j.gate_w, j.gate_b, gate.data(), rows, j.D, j.inner, true);
  project(ks, normed.data(), j.up_w, j.up_b, up.data(), rows, j.D, j.inner, true);
  silu_mul(ks, gate.data(), up.data(), gate.data(), rows * inner);
  project(ks, gate.data(), j.down_w, j.down_b, normed.data(), rows, j.inner, j.D, true);
  add_arrays(h.data(), normed.data(), j.y, rows * D);
}

void dropout(const KernelSet& ks, const float* x, const float* u, float* y, float keep, int64_t n) {
  parallel_ranges(n, 1 << 15, [&](int64_t s, int64_t e) { ks.dropout(x, u, y, keep, s, e); });
}

}  // namespace mm
