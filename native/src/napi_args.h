// What the N-API entry points (addon.cc, addon_layers.cc) share: argument unpacking (numbers, flags, and
// typed arrays with an element offset, each checked before a pointer is formed; the first failure
// throws a JS error), the kernel set in use, and the kernel timer behind info().
#pragma once
#include <node_api.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kernels.h"

struct Args {
  napi_env env;
  napi_value argv[64];
  size_t argc = 64;
  bool failed = false;

  Args(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr); }

  void fail(const std::string& msg) {
    if (!failed) napi_throw_error(env, "ERR_MAKEMOST_NATIVE", msg.c_str());
    failed = true;
  }
  double num(size_t i) {
    double v = 0;
    if (i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok) fail("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  int64_t i64(size_t i) { return static_cast<int64_t>(num(i)); }
  bool flag(size_t i) {
    bool v = false;
    if (i >= argc || napi_get_value_bool(env, argv[i], &v) != napi_ok) fail("argument " + std::to_string(i) + " must be a boolean");
    return v;
  }
  bool is_null(size_t i) {
    napi_valuetype t = napi_undefined;
    if (i < argc) napi_typeof(env, argv[i], &t);
    return t == napi_null || t == napi_undefined;
  }
  // Arguments i (array) and i + 1 (element offset) as a float pointer to `count` elements.
  float* f32(size_t i, int64_t count) { return static_cast<float*>(array(i, napi_float32_array, i64(i + 1), count)); }
  const int32_t* i32(size_t i, int64_t count) { return static_cast<const int32_t*>(array(i, napi_int32_array, i64(i + 1), count)); }
  // A pointer to elements [offset, offset + count) of a typed array of the given type.
  void* array(size_t i, napi_typedarray_type want, int64_t offset, int64_t count) {
    bool is = false;
    if (i >= argc || napi_is_typedarray(env, argv[i], &is) != napi_ok || !is) {
      fail("argument " + std::to_string(i) + " must be a typed array");
      return nullptr;
    }
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_get_typedarray_info(env, argv[i], &type, &length, &data, nullptr, nullptr);
    if (type != want) {
      fail("argument " + std::to_string(i) + " has the wrong element type");
      return nullptr;
    }
    if (offset < 0 || count < 0 || offset + count > static_cast<int64_t>(length)) {
      fail("argument " + std::to_string(i) + ": elements [" + std::to_string(offset) + ", " + std::to_string(offset + count) + ") lie outside its " + std::to_string(length));
      return nullptr;
    }
    const size_t elem = want == napi_float32_array || want == napi_int32_array ? 4 : 1;
    return static_cast<char*>(data) + offset * elem;
  }
};

namespace mmnapi {

inline const mm::KernelSet* g_kernels = nullptr;

// Time spent inside kernels and their number, for info(): how much of a model step is native work
// and how much is JavaScript around it.
inline double g_kernel_seconds = 0;
inline double g_kernel_calls = 0;

struct Timed {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~Timed() {
    g_kernel_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    g_kernel_calls += 1;
  }
};

inline const mm::KernelSet& kernels() {
  if (!g_kernels) {
    const char* isa = std::getenv("MAKEMOST_NATIVE_ISA");
    g_kernels = &mm::select_kernels(isa && std::string(isa) == "generic");
  }
  return *g_kernels;
}

inline napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// Entry points of addon_layers.cc (whole layers and attention), registered by addon.cc.
napi_value Attention(napi_env env, napi_callback_info info);
napi_value PreLnBlock(napi_env env, napi_callback_info info);
napi_value LlamaBlock(napi_env env, napi_callback_info info);

}  // namespace mmnapi
