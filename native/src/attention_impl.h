// Attention rows for one (batch item, query head): softmax(scale · q kᵀ + bias) v, the probabilities
// computed as TF.js's Softmax does (exp(x - max) / sum). Included once per instruction set after the
// including file defines dot, axpy, exp_array, row_max and row_sum.

// Query rows [t0, t1): q row t at q + t * q_rs; keys and values are L contiguous rows of Dh; the bias
// row t (L values) at bias + t * bias_rs, or none; output row t at out + t * out_rs. `scores`: L floats.
static void attention_rows(const float* q, int64_t q_rs, const float* K, const float* V, int L, int Dh, int t0, int t1,
                           const float* bias, int64_t bias_rs, float scale, float* out, int64_t out_rs, float* scores) {
  for (int t = t0; t < t1; t++) {
    const float* qt = q + t * q_rs;
    const float* bt = bias ? bias + t * bias_rs : nullptr;
    for (int s = 0; s < L; s++) {
      const float v = dot(qt, K + static_cast<int64_t>(s) * Dh, Dh) * scale;
      scores[s] = bt ? v + bt[s] : v;
    }
    float* o = out + t * out_rs;
    std::memset(o, 0, Dh * sizeof(float));
    if (L == 0) continue;
    const float mx = row_max(scores, L);
    for (int s = 0; s < L; s++) scores[s] -= mx;
    exp_array(scores, scores, L);
    const float sum = row_sum(scores, L);
    for (int s = 0; s < L; s++) axpy(o, scores[s] / sum, V + static_cast<int64_t>(s) * Dh, Dh);
  }
}
