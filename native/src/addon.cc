// N-API entry points. Every array argument is a typed array plus an element offset, so the caller can
// pass the TF.js wasm heap itself (zero copy) or a cpu-backend tensor's own Float32Array. Offsets and
// lengths are checked against each array before any pointer is formed.
#ifndef NAPI_VERSION
#define NAPI_VERSION 6
#endif
#include <node_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef __linux__
#include <sys/mman.h>

#include <cerrno>
#endif

#include "napi_args.h"
#include "ops.h"
#include "pool.h"

namespace {

const mm::KernelSet* g_kernels = nullptr;

// Time spent inside kernels and their number, for info(): how much of a model step is native work
// and how much is JavaScript around it.
double g_kernel_seconds = 0;
double g_kernel_calls = 0;

struct Timed {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~Timed() {
    g_kernel_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    g_kernel_calls += 1;
  }
};

const mm::KernelSet& kernels() {
  if (!g_kernels) {
    const char* isa = std::getenv("MAKEMOST_NATIVE_ISA");
    g_kernels = &mm::select_kernels(isa && std::string(isa) == "generic");
  }
  return *g_kernels;
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// matmul(a, aOff, b, bOff, out, outOff, batch, M, N, K, transA, transB, aBatchStride, bBatchStride,
//        aIndex|null, bIndex|null, bias|null, biasOff, act, alpha)
napi_value Matmul(napi_env env, napi_callback_info info) {
  Args g(env, info);
  mm::MatmulJob job;
  job.batch = static_cast<int>(g.i64(6));
  job.M = static_cast<int>(g.i64(7));
  job.N = static_cast<int>(g.i64(8));
  job.K = static_cast<int>(g.i64(9));
  job.trans_a = g.flag(10);
  job.trans_b = g.flag(11);
  job.a_batch_stride = g.i64(12);
  job.b_batch_stride = g.i64(13);
  if (g.failed) return nullptr;
  if (job.batch < 0 || job.M < 0 || job.N < 0 || job.K < 0) {
    g.fail("matmul: negative size");
    return nullptr;
  }
  const int64_t aItem = static_cast<int64_t>(job.M) * job.K, bItem = static_cast<int64_t>(job.K) * job.N;
  int64_t aCount = aItem, bCount = bItem;
  if (!g.is_null(14)) {
    job.a_index = static_cast<const int32_t*>(g.array(14, napi_int32_array, 0, job.batch));
    if (g.failed) return nullptr;
    int32_t hi = 0;
    for (int i = 0; i < job.batch; i++) hi = std::max(hi, job.a_index[i]);
    aCount = (static_cast<int64_t>(hi) + 1) * aItem;
  } else if (job.batch > 0) {
    aCount = (job.batch - 1) * job.a_batch_stride + aItem;
  }
  if (!g.is_null(15)) {
    job.b_index = static_cast<const int32_t*>(g.array(15, napi_int32_array, 0, job.batch));
    if (g.failed) return nullptr;
    int32_t hi = 0;
    for (int i = 0; i < job.batch; i++) hi = std::max(hi, job.b_index[i]);
    bCount = (static_cast<int64_t>(hi) + 1) * bItem;
  } else if (job.batch > 0) {
    bCount = (job.batch - 1) * job.b_batch_stride + bItem;
  }
  job.a = static_cast<const float*>(g.array(0, napi_float32_array, g.i64(1), aCount));
  job.b = static_cast<const float*>(g.array(2, napi_float32_array, g.i64(3), bCount));
  job.c = static_cast<float*>(g.array(4, napi_float32_array, g.i64(5), static_cast<int64_t>(job.batch) * job.M * job.N));
  if (!g.is_null(16)) job.ep.bias = static_cast<const float*>(g.array(16, napi_float32_array, g.i64(17), job.N));
  job.ep.act = static_cast<int>(g.i64(18));
  job.ep.alpha = static_cast<float>(g.num(19));
  if (g.failed) return nullptr;
  if (job.ep.act < mm::ACT_LINEAR || job.ep.act > mm::ACT_SIGMOID) {
    g.fail("matmul: unknown activation code");
    return nullptr;
  }
  Timed timed;
  mm::matmul(kernels(), job);
  return undefined(env);
}

// tanh(x, xOff, out, outOff, n)
napi_value Tanh(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(4);
  const float* x = static_cast<const float*>(g.array(0, napi_float32_array, g.i64(1), n));
  float* out = static_cast<float*>(g.array(2, napi_float32_array, g.i64(3), n));
  if (g.failed) return nullptr;
  Timed timed;
  mm::tanh(kernels(), x, out, n);
  return undefined(env);
}

// adamw(p, o, g, o, m, o, v, o, pOut, o, mOut, o, vOut, o, n, decay, keep, b1, 1-b1, b2, 1-b2, bc2Sqrt, eps, -stepSize)
napi_value AdamW(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(14);
  mm::AdamWArgs a;
  a.p = g.f32(0, n);
  a.g = g.f32(2, n);
  a.m = g.f32(4, n);
  a.v = g.f32(6, n);
  a.p_out = g.f32(8, n);
  a.m_out = g.f32(10, n);
  a.v_out = g.f32(12, n);
  a.decay = g.flag(15);
  float* c[] = {&a.keep, &a.b1, &a.one_minus_b1, &a.b2, &a.one_minus_b2, &a.bc2_sqrt, &a.eps, &a.neg_step};
  for (size_t i = 0; i < 8; i++) *c[i] = static_cast<float>(g.num(16 + i));
  if (g.failed) return nullptr;
  Timed timed;
  mm::adamw(kernels(), a, n);
  return undefined(env);
}

// softmaxXent(logits, o, targets, o, nll, o, lse, o, rows, V)
napi_value XentFwd(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t rows = g.i64(8), V = g.i64(9);
  const float* logits = g.f32(0, rows * V);
  const int32_t* targets = g.i32(2, rows);
  float* nll = g.f32(4, rows);
  float* lse = g.f32(6, rows);
  if (g.failed) return nullptr;
  Timed timed;
  mm::xent_fwd(kernels(), logits, targets, nll, lse, rows, static_cast<int>(V));
  return undefined(env);
}

// softmaxXentGrad(logits, o, targets, o, lse, o, dnll, o, dlogits, o, rows, V)
napi_value XentBwd(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t rows = g.i64(10), V = g.i64(11);
  const float* logits = g.f32(0, rows * V);
  const int32_t* targets = g.i32(2, rows);
  const float* lse = g.f32(4, rows);
  const float* dnll = g.f32(6, rows);
  float* dlogits = g.f32(8, rows * V);
  if (g.failed) return nullptr;
  Timed timed;
  mm::xent_bwd(kernels(), logits, targets, lse, dnll, dlogits, rows, static_cast<int>(V));
  return undefined(env);
}

// layerNorm(x, o, w, o, b, o, y, o, mean, o, rstd, o, rows, D, eps)
napi_value LayerNormFwd(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t rows = g.i64(12), D = g.i64(13);
  const float eps = static_cast<float>(g.num(14));
  const float* x = g.f32(0, rows * D);
  const float* w = g.f32(2, D);
  const float* b = g.f32(4, D);
  float* y = g.f32(6, rows * D);
  float* mean = g.f32(8, rows);
  float* rstd = g.f32(10, rows);
  if (g.failed) return nullptr;
  Timed timed;
  mm::layernorm_fwd(kernels(), x, w, b, y, mean, rstd, rows, static_cast<int>(D), eps);
  return undefined(env);
}

// layerNormGrad(x, o, w, o, mean, o, rstd, o, dy, o, dx, o, dw, o, db, o, rows, D)
napi_value LayerNormBwd(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t rows = g.i64(16), D = g.i64(17);
  const float* x = g.f32(0, rows * D);
  const float* w = g.f32(2, D);
  const float* mean = g.f32(4, rows);
  const float* rstd = g.f32(6, rows);
  const float* dy = g.f32(8, rows * D);
  float* dx = g.f32(10, rows * D);
  float* dw = g.f32(12, D);
  float* db = g.f32(14, D);
  if (g.failed) return nullptr;
  Timed timed;
  mm::layernorm_bwd(kernels(), x, w, mean, rstd, dy, dx, dw, db, rows, static_cast<int>(D));
  return undefined(env);
}

// gelu(x, o, y, o, n)
napi_value GeluFwd(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(4);
  const float* x = g.f32(0, n);
  float* y = g.f32(2, n);
  if (g.failed) return nullptr;
  Timed timed;
  mm::gelu_fwd(kernels(), x, y, n);
  return undefined(env);
}

// geluGrad(x, o, dy, o, dx, o, n)
napi_value GeluBwd(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(6);
  const float* x = g.f32(0, n);
  const float* dy = g.f32(2, n);
  float* dx = g.f32(4, n);
  if (g.failed) return nullptr;
  Timed timed;
  mm::gelu_bwd(kernels(), x, dy, dx, n);
  return undefined(env);
}

// dropout(x, o, u, o, y, o, n, keep)
napi_value Dropout(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(6);
  const float keep = static_cast<float>(g.num(7));
  const float* x = g.f32(0, n);
  const float* u = g.f32(2, n);
  float* y = g.f32(4, n);
  if (g.failed) return nullptr;
  Timed timed;
  mm::dropout(kernels(), x, u, y, keep, n);
  return undefined(env);
}

// attention(q, o, k, o, v, o, pastK|null, o, pastV|null, o, bias|null, o, key, o, value, o, out, o,
//           B, H, Hkv, T, S, Dh, biasBatch, scale, packed): see mm::AttentionJob; biasBatch is the bias's
//           batch size (1 broadcasts, B) and is ignored without a bias; packed: q is [B, T, (H + 2 Hkv)·Dh].
napi_value Attention(napi_env env, napi_callback_info info) {
  Args g(env, info);
  mm::AttentionJob j;
  j.B = static_cast<int>(g.i64(18));
  j.H = static_cast<int>(g.i64(19));
  j.Hkv = static_cast<int>(g.i64(20));
  j.T = static_cast<int>(g.i64(21));
  j.S = static_cast<int>(g.i64(22));
  j.Dh = static_cast<int>(g.i64(23));
  const int64_t bias_batch = g.i64(24);
  j.scale = static_cast<float>(g.num(25));
  j.packed = g.flag(26);
  if (g.failed) return nullptr;
  if (j.B < 0 || j.H <= 0 || j.Hkv <= 0 || j.H % j.Hkv != 0 || j.T < 0 || j.S < 0 || j.Dh < 0) {
    g.fail("attention: bad sizes (H must be a positive multiple of Hkv, the others non-negative)");
    return nullptr;
  }
  const int64_t L = static_cast<int64_t>(j.S) + j.T;
  const int64_t kvNew = static_cast<int64_t>(j.B) * j.Hkv * j.T * j.Dh, kvPast = static_cast<int64_t>(j.B) * j.Hkv * j.S * j.Dh;
  if (j.packed) {
    j.q = g.f32(0, static_cast<int64_t>(j.B) * j.T * (j.H + 2 * j.Hkv) * j.Dh);
  } else {
    j.q = g.f32(0, static_cast<int64_t>(j.B) * j.H * j.T * j.Dh);
    j.k = g.f32(2, kvNew);
    j.v = g.f32(4, kvNew);
  }
  if (j.S > 0) {
    j.past_k = g.f32(6, kvPast);
    j.past_v = g.f32(8, kvPast);
  }
  if (!g.is_null(10)) {
    if (bias_batch != 1 && bias_batch != j.B) {
      g.fail("attention: the bias's batch size must be 1 or B");
      return nullptr;
    }
    j.bias = g.f32(10, bias_batch * j.T * L);
    j.bias_batch_stride = bias_batch == 1 ? 0 : j.T * L;
  }
  j.key = g.f32(12, static_cast<int64_t>(j.B) * j.Hkv * L * j.Dh);
  j.value = g.f32(14, static_cast<int64_t>(j.B) * j.Hkv * L * j.Dh);
  j.out = g.f32(16, static_cast<int64_t>(j.B) * j.T * j.H * j.Dh);
  if (g.failed) return nullptr;
  Timed timed;
  if (j.B > 0) mm::attention(kernels(), j);
  return undefined(env);
}

// preLnBlock(x, o, y, o, ln1W, o, ln1B, o, attnW, o, attnB, o, projW, o, projB, o, ln2W, o, ln2B, o,
//            fcW, o, fcB, o, fcProjW, o, fcProjB, o, pastK|null, o, pastV|null, o, bias|null, o, key, o, value, o,
//            B, T, S, D, H, inner, eps, scale, biasBatch): see mm::BlockJob; x, y [B, T, D].
napi_value PreLnBlock(napi_env env, napi_callback_info info) {
  Args g(env, info);
  mm::BlockJob j;
  mm::AttentionJob& a = j.attn;
  a.B = static_cast<int>(g.i64(38));
  a.T = static_cast<int>(g.i64(39));
  a.S = static_cast<int>(g.i64(40));
  j.D = static_cast<int>(g.i64(41));
  a.H = a.Hkv = static_cast<int>(g.i64(42));
  j.inner = static_cast<int>(g.i64(43));
  j.eps = static_cast<float>(g.num(44));
  a.scale = static_cast<float>(g.num(45));
  const int64_t bias_batch = g.i64(46);
  if (g.failed) return nullptr;
  if (a.B < 0 || a.T < 0 || a.S < 0 || j.D <= 0 || a.H <= 0 || j.D % a.H != 0 || j.inner <= 0) {
    g.fail("preLnBlock: bad sizes (D must be a positive multiple of the head count)");
    return nullptr;
  }
  a.Dh = j.D / a.H;
  j.rows = static_cast<int64_t>(a.B) * a.T;
  const int64_t D = j.D, inner = j.inner, L = static_cast<int64_t>(a.S) + a.T, kv = static_cast<int64_t>(a.B) * a.H * a.Dh;
  j.x = g.f32(0, j.rows * D);
  j.y = g.f32(2, j.rows * D);
  j.ln1_w = g.f32(4, D);
  j.ln1_b = g.f32(6, D);
  j.attn_w = g.f32(8, D * 3 * D);
  j.attn_b = g.f32(10, 3 * D);
  j.proj_w = g.f32(12, D * D);
  j.proj_b = g.f32(14, D);
  j.ln2_w = g.f32(16, D);
  j.ln2_b = g.f32(18, D);
  j.fc_w = g.f32(20, D * inner);
  j.fc_b = g.f32(22, inner);
  j.fc_proj_w = g.f32(24, inner * D);
  j.fc_proj_b = g.f32(26, D);
  if (a.S > 0) {
    a.past_k = g.f32(28, kv * a.S);
    a.past_v = g.f32(30, kv * a.S);
  }
  if (!g.is_null(32)) {
    if (bias_batch != 1 && bias_batch != a.B) {
      g.fail("preLnBlock: the bias's batch size must be 1 or B");
      return nullptr;
    }
    a.bias = g.f32(32, bias_batch * a.T * L);
    a.bias_batch_stride = bias_batch == 1 ? 0 : a.T * L;
  }
  a.key = g.f32(34, kv * L);
  a.value = g.f32(36, kv * L);
  if (g.failed) return nullptr;
  Timed timed;
  if (j.rows > 0) mm::pre_ln_block(kernels(), j);
  return undefined(env);
}

// adviseHugePages(array, bytes) → 0, or the errno of madvise (-1 where there is none): asks Linux for
// transparent huge pages over `bytes` from the start of the array's buffer (for the wasm heap: its 4 GiB
// reservation, so memory the heap grows into later is covered too). Decoding streams every weight once
// per token; with 4 KiB pages the page walks cost ~10% of the memory bandwidth. Only the 2 MiB-aligned
// interior is advised; memory already touched keeps its small pages until the kernel collapses them.
napi_value AdviseHugePages(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const double bytes = g.num(1);
  if (g.failed) return nullptr;
  int result = -1;
#ifdef __linux__
  napi_value buffer;
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, g.argv[0], &type, &length, &data, &buffer, &offset) != napi_ok) {
    g.fail("adviseHugePages: argument 0 must be a typed array");
    return nullptr;
  }
  void* base = nullptr;
  size_t have = 0;
  napi_get_arraybuffer_info(env, buffer, &base, &have);
  const uintptr_t huge = uintptr_t(2) << 20;
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(base) + huge - 1) & ~(huge - 1);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(base) + static_cast<uintptr_t>(std::max<double>(bytes, static_cast<double>(have)))) & ~(huge - 1);
  result = hi > lo && madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) != 0 ? errno : 0;
#endif
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

// info() → { isa, threads, workerTasks, kernelSeconds, kernelCalls }
napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, isa, threads, worker_tasks, seconds, calls;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, kernels().isa, NAPI_AUTO_LENGTH, &isa);
  napi_create_int32(env, mm::configured_threads(), &threads);
  napi_create_double(env, static_cast<double>(mm::worker_tasks()), &worker_tasks);
  napi_set_named_property(env, obj, "isa", isa);
  napi_set_named_property(env, obj, "threads", threads);
  napi_set_named_property(env, obj, "workerTasks", worker_tasks);
  napi_create_double(env, g_kernel_seconds, &seconds);
  napi_create_double(env, g_kernel_calls, &calls);
  napi_set_named_property(env, obj, "kernelSeconds", seconds);
  napi_set_named_property(env, obj, "kernelCalls", calls);
  return obj;
}

// setThreads(n): the pool is rebuilt with n threads (caller included) before the next kernel.
napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(0);
  if (g.failed) return nullptr;
  mm::set_threads(static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, 256))));
  return undefined(env);
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"matmul", nullptr, Matmul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tanh", nullptr, Tanh, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxXent", nullptr, XentFwd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxXentGrad", nullptr, XentBwd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNorm", nullptr, LayerNormFwd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNormGrad", nullptr, LayerNormBwd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, GeluFwd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"geluGrad", nullptr, GeluBwd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dropout", nullptr, Dropout, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adviseHugePages", nullptr, AdviseHugePages, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"preLnBlock", nullptr, PreLnBlock, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
