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

using namespace mmnapi;

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

// rmsNorm(x, o, w, o, y, o, rows, D, eps): y = x · rsqrt(mean(x²) + eps) · w over rows of D.
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t rows = g.i64(6), D = g.i64(7);
  const float eps = static_cast<float>(g.num(8));
  if (g.failed) return nullptr;
  if (rows < 0 || D <= 0) {
    g.fail("rmsNorm: bad sizes");
    return nullptr;
  }
  const float* x = g.f32(0, rows * D);
  const float* w = g.f32(2, D);
  float* y = g.f32(4, rows * D);
  if (g.failed) return nullptr;
  Timed timed;
  mm::rms_norm(kernels(), x, w, y, rows, static_cast<int>(D), eps);
  return undefined(env);
}

// rotary(x, o, cos, o, sin, o, y, o, B, H, T, Dh, rotBatch): x, y [B, H, T, Dh]; cos, sin [rotBatch, T, Dh].
napi_value Rotary(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t B = g.i64(8), H = g.i64(9), T = g.i64(10), Dh = g.i64(11), rb = g.i64(12);
  if (g.failed) return nullptr;
  if (B < 0 || H < 0 || T < 0 || Dh < 0 || Dh % 2 != 0 || (rb != 1 && rb != B)) {
    g.fail("rotary: bad sizes (an even head size; the tables' batch 1 or B)");
    return nullptr;
  }
  const float* x = g.f32(0, B * H * T * Dh);
  const float* c = g.f32(2, rb * T * Dh);
  const float* s = g.f32(4, rb * T * Dh);
  float* y = g.f32(6, B * H * T * Dh);
  if (g.failed) return nullptr;
  Timed timed;
  mm::rotary(x, c, s, y, static_cast<int>(B), static_cast<int>(H), static_cast<int>(T), static_cast<int>(Dh), rb == 1 ? 0 : T * Dh);
  return undefined(env);
}

// siluMul(g, o, u, o, out, o, n): out = silu(g) · u.
napi_value SiluMul(napi_env env, napi_callback_info info) {
  Args g(env, info);
  const int64_t n = g.i64(6);
  if (g.failed) return nullptr;
  const float* gate = g.f32(0, n);
  const float* up = g.f32(2, n);
  float* out = g.f32(4, n);
  if (g.failed) return nullptr;
  Timed timed;
  mm::silu_mul(kernels(), gate, up, out, n);
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
      {"attention", nullptr, mmnapi::Attention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"preLnBlock", nullptr, mmnapi::PreLnBlock, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"llamaBlock", nullptr, mmnapi::LlamaBlock, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNorm", nullptr, RmsNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rotary", nullptr, Rotary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"siluMul", nullptr, SiluMul, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
