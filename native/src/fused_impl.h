// Fused transformer kernels over row or element ranges, one thread each (ops.cc spreads the ranges):
// AdamW's update, softmax cross-entropy and its gradient, LayerNorm and its gradient, and GELU (tanh
// form) and its gradient, and Llama's RMSNorm and SwiGLU product (inference). Included once per instruction set after the including file defines
//   exp_array(x, out, n), tanh_array(x, out, n), row_max(x, n), row_sum(x, n).
// The whole addon is compiled with -ffp-contract=off, so `a * b + c` here rounds twice, exactly like
// the TF.js element-wise ops these replace (AdamW must match them bit for bit).

static void adamw_range(const AdamWArgs& a, int64_t s, int64_t e) {
  const float keep = a.keep, b1 = a.b1, ob1 = a.one_minus_b1, b2 = a.b2, ob2 = a.one_minus_b2;
  const float bc2 = a.bc2_sqrt, eps = a.eps, ns = a.neg_step;
  const bool decay = a.decay;
  for (int64_t i = s; i < e; i++) {
    const float p = a.p[i], g = a.g[i];
    const float decayed = decay ? p * keep : p;
    const float m = a.m[i] * b1 + g * ob1;
    const float v = a.v[i] * b2 + (g * ob2) * g;
    const float denom = std::sqrt(v) / bc2 + eps;
    a.p_out[i] = decayed + (m * ns) / denom;
    a.m_out[i] = m;
    a.v_out[i] = v;
  }
}

// nll[r] = logsumexp(row) - row[target] (0 when target < 0), lse[r] = logsumexp(row).
static void xent_fwd_rows(const float* logits, const int32_t* targets, float* nll, float* lse, int64_t r0, int64_t r1, int V, float* scratch) {
  for (int64_t r = r0; r < r1; r++) {
    const float* row = logits + r * V;
    const float mx = row_max(row, V);
    for (int j = 0; j < V; j++) scratch[j] = row[j] - mx;
    exp_array(scratch, scratch, V);
    const float l = mx + std::log(row_sum(scratch, V));
    lse[r] = l;
    const int32_t t = targets[r];
    nll[r] = t >= 0 && t < V ? l - row[t] : 0.f;
  }
}

// dlogits[r, j] = dnll[r] * (softmax(row)[j] - [j == target]); zero rows where target < 0.
static void xent_bwd_rows(const float* logits, const int32_t* targets, const float* lse, const float* dnll, float* dlogits, int64_t r0, int64_t r1, int V) {
  for (int64_t r = r0; r < r1; r++) {
    const float* row = logits + r * V;
    float* out = dlogits + r * V;
    const int32_t t = targets[r];
    if (t < 0 || t >= V) {
      std::memset(out, 0, V * sizeof(float));
      continue;
    }
    const float l = lse[r], d = dnll[r];
    for (int j = 0; j < V; j++) out[j] = row[j] - l;
    exp_array(out, out, V);
    for (int j = 0; j < V; j++) out[j] *= d;
    out[t] -= d;
  }
}

static void layernorm_fwd_rows(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t r0, int64_t r1, int D, float eps) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    const float mu = row_sum(xr, D) / D;
    for (int j = 0; j < D; j++) yr[j] = (xr[j] - mu) * (xr[j] - mu);
    const float var = row_sum(yr, D) / D;
    const float rs = 1.f / std::sqrt(var + eps);
    for (int j = 0; j < D; j++) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

// dx for rows [r0, r1); dw and db (length D each) receive this range's sums.
static void layernorm_bwd_rows(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db, int64_t r0, int64_t r1, int D, float* scratch) {
  float* xhat = scratch;
  float* g = scratch + D;
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * D;
    const float* dyr = dy + r * D;
    const float mu = mean[r], rs = rstd[r];
    for (int j = 0; j < D; j++) {
      xhat[j] = (xr[j] - mu) * rs;
      g[j] = dyr[j] * w[j];
      dw[j] += dyr[j] * xhat[j];
      db[j] += dyr[j];
    }
    const float mg = row_sum(g, D) / D;
    for (int j = 0; j < D; j++) dx[r * D + j] = g[j] * xhat[j];
    const float mgx = row_sum(dx + r * D, D) / D;
    for (int j = 0; j < D; j++) dx[r * D + j] = rs * (g[j] - mg - xhat[j] * mgx);
  }
}

// y = x * (floor(u + keep) / keep): tf.dropout's multiplier, op for op.
static void dropout_range(const float* x, const float* u, float* y, float keep, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; i++) y[i] = x[i] * (std::floor(u[i] + keep) / keep);
}

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

// t[j] = tanh(c (x[j] + a x[j]^3)) for j < n: the inner part of both GELU directions.
static void gelu_tanh_inner(const float* x, float* t, int n) {
  for (int j = 0; j < n; j++) t[j] = (x[j] + x[j] * x[j] * x[j] * kGeluA) * kGeluC;
  tanh_array(t, t, n);
}

// y = 0.5 x (1 + tanh(c (x + a x^3))), HF's gelu_new.
static void gelu_fwd_range(const float* x, float* y, int64_t s, int64_t e) {
  constexpr int B = 1024;
  alignas(64) float t[B];
  for (int64_t i0 = s; i0 < e; i0 += B) {
    const int n = static_cast<int>(std::min<int64_t>(B, e - i0));
    const float* xs = x + i0;
    gelu_tanh_inner(xs, t, n);
    for (int j = 0; j < n; j++) y[i0 + j] = xs[j] * 0.5f * (1.f + t[j]);
  }
}

// dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)), t = tanh(c (x + a x^3)).
static void gelu_bwd_range(const float* x, const float* dy, float* dx, int64_t s, int64_t e) {
  constexpr int B = 1024;
  alignas(64) float t[B];
  for (int64_t i0 = s; i0 < e; i0 += B) {
    const int n = static_cast<int>(std::min<int64_t>(B, e - i0));
    const float* xs = x + i0;
    gelu_tanh_inner(xs, t, n);
    for (int j = 0; j < n; j++) {
      const float xv = xs[j], tv = t[j];
      const float inner = kGeluC * (1.f + 3.f * kGeluA * xv * xv);
      dx[i0 + j] = dy[i0 + j] * (0.5f * (1.f + tv) + 0.5f * xv * (1.f - tv * tv) * inner);
    }
  }
}

// Llama's RMSNorm, as the TF.js ops compute it: y = (x · rsqrt(mean(x²) + eps)) · w, rows [r0, r1).
static void rms_norm_rows(const float* x, const float* w, float* y, int64_t r0, int64_t r1, int D, float eps) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    for (int j = 0; j < D; j++) yr[j] = xr[j] * xr[j];
    const float rs = 1.f / std::sqrt(row_sum(yr, D) / D + eps);
    for (int j = 0; j < D; j++) yr[j] = xr[j] * rs * w[j];
  }
}

// SwiGLU's product: out = silu(g) · u = g / (1 + exp(-g)) · u, elements [s, e) (out may be g).
static void silu_mul_range(const float* g, const float* u, float* out, int64_t s, int64_t e) {
  constexpr int B = 1024;
  alignas(64) float t[B];
  for (int64_t i0 = s; i0 < e; i0 += B) {
    const int n = static_cast<int>(std::min<int64_t>(B, e - i0));
    for (int j = 0; j < n; j++) t[j] = -g[i0 + j];
    exp_array(t, t, n);
    for (int j = 0; j < n; j++) out[i0 + j] = g[i0 + j] / (1.f + t[j]) * u[i0 + j];
  }
}
