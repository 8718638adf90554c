// Attention rows for one (batch item, query head): softmax(scale · q kᵀ + bias) v, the probabilities
// computed as TF.js's Softmax does (exp(x - max) / sum). Included once per instruction set after the
// including file defines dot, axpy, exp_array, row_max, row_sum and gemm_serial (gemm_impl.h).

// Scores row (L values, already scaled and biased) → probabilities, in place.
static void softmax_row(float* row, int L) {
  const float mx = row_max(row, L);
  for (int s = 0; s < L; s++) row[s] -= mx;
  exp_array(row, row, L);
  const float sum = row_sum(row, L);
  for (int s = 0; s < L; s++) row[s] /= sum;
}

// Query rows [t0, t1): q row t at q + t * q_rs; keys and values are L contiguous rows of Dh; the bias
// row t (L values) at bias + t * bias_rs, or none; output row t at out + t * out_rs. `scores`: L floats
// per row, (t1 - t0) · L of them. Blocks of 8 rows or more run as two GEMMs (Q Kᵀ, then P V).
static void attention_rows(const float* q, int64_t q_rs, const float* K, const float* V, int L, int Dh, int t0, int t1,
                           const float* bias, int64_t bias_rs, float scale, float* out, int64_t out_rs, float* scores) {
  if (t1 - t0 >= 8 && L > 0) {
    const int rows = t1 - t0;
    Epilogue none;
    gemm_serial(rows, L, Dh, Mat{q + t0 * q_rs, q_rs, 1}, Mat{K, 1, Dh}, scores, L, none, nullptr);
    for (int t = 0; t < rows; t++) {
      float* row = scores + static_cast<int64_t>(t) * L;
      const float* bt = bias ? bias + (t0 + t) * bias_rs : nullptr;
      for (int s = 0; s < L; s++) row[s] = bt ? row[s] * scale + bt[s] : row[s] * scale;
      softmax_row(row, L);
    }
    gemm_serial(rows, Dh, L, Mat{scores, L, 1}, Mat{V, Dh, 1}, out + t0 * out_rs, out_rs, none, nullptr);
    return;
  }
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
    softmax_row(scores, L);
    for (int s = 0; s < L; s++) axpy(o, scores[s], V + static_cast<int64_t>(s) * Dh, Dh);
  }
}
