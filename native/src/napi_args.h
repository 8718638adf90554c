// Argument unpacking for the N-API entry points in addon.cc: numbers, flags, and typed arrays with an
// element offset, each checked before a pointer is formed; the first failure throws a JS error.
#pragma once
#include <node_api.h>

#include <cstdint>
#include <string>

struct Args {
  napi_env env;
  napi_value argv[48];
  size_t argc = 48;
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
