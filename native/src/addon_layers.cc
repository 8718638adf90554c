// N-API entry points for attention and whole transformer layers (see ops.h for the jobs).
#include "napi_args.h"
#include "ops.h"

namespace mmnapi {

// The cache arguments every attention entry point takes from position `at`: pastK, pastV (read when S > 0),
// bias|null (its batch size `bias_batch` 1 or B), key, value. False, with a JS error pending, when one
// does not fit. Needs B, Hkv, T, S and Dh set.
static bool cache_args(Args& g, mm::AttentionJob& a, size_t at, int64_t bias_batch, const char* who) {
  const int64_t kv = static_cast<int64_t>(a.B) * a.Hkv * a.Dh, L = static_cast<int64_t>(a.S) + a.T;
  if (a.S > 0) {
    a.past_k = g.f32(at, kv * a.S);
    a.past_v = g.f32(at + 2, kv * a.S);
  }
  if (!g.is_null(at + 4)) {
    if (bias_batch != 1 && bias_batch != a.B) {
      g.fail(std::string(who) + ": the bias's batch size must be 1 or B");
      return false;
    }
    a.bias = g.f32(at + 4, bias_batch * a.T * L);
    a.bias_batch_stride = bias_batch == 1 ? 0 : a.T * L;
  }
  a.key = g.f32(at + 6, kv * L);
  a.value = g.f32(at + 8, kv * L);
  return !g.failed;
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
  const int64_t kvNew = static_cast<int64_t>(j.B) * j.Hkv * j.T * j.Dh;
  if (j.packed) {
    j.q = g.f32(0, static_cast<int64_t>(j.B) * j.T * (j.H + 2 * j.Hkv) * j.Dh);
  } else {
    j.q = g.f32(0, static_cast<int64_t>(j.B) * j.H * j.T * j.Dh);
    j.k = g.f32(2, kvNew);
    j.v = g.f32(4, kvNew);
  }
  j.out = g.f32(16, static_cast<int64_t>(j.B) * j.T * j.H * j.Dh);
  if (!cache_args(g, j, 6, bias_batch, "attention")) return nullptr;
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
  const int64_t D = j.D, inner = j.inner;
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
  if (!cache_args(g, a, 28, bias_batch, "preLnBlock")) return nullptr;
  Timed timed;
  if (j.rows > 0) mm::pre_ln_block(kernels(), j);
  return undefined(env);
}

// llamaBlock(x, o, y, o, norm1W, o, qW, o, qB|null, o, kW, o, kB|null, o, vW, o, vB|null, o, oW, o, oB|null, o,
//            norm2W, o, gateW, o, gateB|null, o, upW, o, upB|null, o, downW, o, downB|null, o, cos, o, sin, o,
//            pastK|null, o, pastV|null, o, bias|null, o, key, o, value, o,
//            B, T, S, D, H, Hkv, Dh, inner, eps, scale, biasBatch, rotBatch): see mm::LlamaBlockJob; x, y [B, T, D];
//            cos, sin [rotBatch, T, Dh]; the cache [B, Hkv, S, Dh]; Linear weights [out, in].
napi_value LlamaBlock(napi_env env, napi_callback_info info) {
  Args g(env, info);
  mm::LlamaBlockJob j;
  mm::AttentionJob& a = j.attn;
  a.B = static_cast<int>(g.i64(50));
  a.T = static_cast<int>(g.i64(51));
  a.S = static_cast<int>(g.i64(52));
  j.D = static_cast<int>(g.i64(53));
  a.H = static_cast<int>(g.i64(54));
  a.Hkv = static_cast<int>(g.i64(55));
  a.Dh = static_cast<int>(g.i64(56));
  j.inner = static_cast<int>(g.i64(57));
  j.eps = static_cast<float>(g.num(58));
  a.scale = static_cast<float>(g.num(59));
  const int64_t bias_batch = g.i64(60), rot_batch = g.i64(61);
  if (g.failed) return nullptr;
  if (a.B < 0 || a.T < 0 || a.S < 0 || j.D <= 0 || a.H <= 0 || a.Hkv <= 0 || a.H % a.Hkv != 0 || a.Dh <= 0 || a.Dh % 2 != 0 || j.inner <= 0) {
    g.fail("llamaBlock: bad sizes (H a positive multiple of Hkv, an even head size, the others positive)");
    return nullptr;
  }
  if (rot_batch != 1 && rot_batch != a.B) {
    g.fail("llamaBlock: the rotary tables' batch size must be 1 or B");
    return nullptr;
  }
  j.rows = static_cast<int64_t>(a.B) * a.T;
  const int64_t D = j.D, inner = j.inner;
  const int64_t qn = static_cast<int64_t>(a.H) * a.Dh, kn = static_cast<int64_t>(a.Hkv) * a.Dh;
  auto bias_of = [&](size_t i, int64_t n) -> const float* { return g.is_null(i) ? nullptr : g.f32(i, n); };
  j.x = g.f32(0, j.rows * D);
  j.y = g.f32(2, j.rows * D);
  j.norm1_w = g.f32(4, D);
  j.q_w = g.f32(6, qn * D);
  j.q_b = bias_of(8, qn);
  j.k_w = g.f32(10, kn * D);
  j.k_b = bias_of(12, kn);
  j.v_w = g.f32(14, kn * D);
  j.v_b = bias_of(16, kn);
  j.o_w = g.f32(18, D * qn);
  j.o_b = bias_of(20, D);
  j.norm2_w = g.f32(22, D);
  j.gate_w = g.f32(24, inner * D);
  j.gate_b = bias_of(26, inner);
  j.up_w = g.f32(28, inner * D);
  j.up_b = bias_of(30, inner);
  j.down_w = g.f32(32, D * inner);
  j.down_b = bias_of(34, D);
  j.cos = g.f32(36, rot_batch * a.T * a.Dh);
  j.sin = g.f32(38, rot_batch * a.T * a.Dh);
  j.rot_batch_stride = rot_batch == 1 ? 0 : static_cast<int64_t>(a.T) * a.Dh;
  if (!cache_args(g, a, 40, bias_batch, "llamaBlock")) return nullptr;
  Timed timed;
  if (j.rows > 0) mm::llama_block(kernels(), j);
  return undefined(env);
}

}  // namespace mmnapi
