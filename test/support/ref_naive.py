"""Naive float64 numpy implementations that the self-test holds the reference against.

Deliberately a different style from the torch modules: one sequence at a time, attention as explicit
loops over heads, queries and keys with a hand-written softmax, LayerNorm/RMSNorm by their formulas, RoPE
as multiplication by e^{i m theta} on complex pairs, GQA by mapping query head h to key/value head
h // (H / Hkv), RoBERTa positions by counting. Weights come in as a plain {HF name: np.ndarray} dict.
"""
import cmath
import math

import numpy as np


def layer_norm(x, w, b, eps):
    out = np.empty_like(x)
    for i, row in enumerate(x):
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)
        out[i] = [(v - mean) / math.sqrt(var + eps) for v in row]
    return out * w + b


def rms_norm(x, w, eps):
    out = np.empty_like(x)
    for i, row in enumerate(x):
        out[i] = row / math.sqrt(sum(v * v for v in row) / len(row) + eps)
    return out * w


def _map(f, x):
    return np.vectorize(f, otypes=[np.float64])(x)


ACT = {
    "gelu": lambda x: _map(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))), x),
    "gelu_new": lambda x: _map(lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))), x),
    "gelu_pytorch_tanh": lambda x: ACT["gelu_new"](x),
    "relu": lambda x: _map(lambda v: max(v, 0.0), x),
    "silu": lambda x: _map(lambda v: v / (1 + math.exp(-v)), x),
}


def attention(q, k, v, allowed, scale):
    """q [T, H, Dh], k/v [S, Hkv, Dh]; allowed(i, j) -> bool. Rows with no visible key come out zero."""
    t_len, heads, dh = q.shape
    rep = heads // k.shape[1]
    out = np.zeros((t_len, heads, v.shape[2]))
    for h in range(heads):
        kv = h // rep
        for i in range(t_len):
            keys = [j for j in range(k.shape[0]) if allowed(i, j)]
            if not keys:
                continue
            scores = [scale * sum(q[i, h, d] * k[j, kv, d] for d in range(dh)) for j in keys]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            for j, e in zip(keys, exps):
                out[i, h] += (e / total) * v[j, kv]
    return out


def rope(x, positions, inv_freq):
    """x [T, H, Dh]: pair (x_i, x_{i+Dh/2}) is the complex number z_i, rotated to z_i * e^{i m theta_i}."""
    half = x.shape[2] // 2
    out = np.empty_like(x)
    for t, m in enumerate(positions):
        for h in range(x.shape[1]):
            for i in range(half):
                z = complex(x[t, h, i], x[t, h, i + half]) * cmath.exp(1j * m * inv_freq[i])
                out[t, h, i], out[t, h, i + half] = z.real, z.imag
    return out


def inv_freq(dim, theta, scaling=None):
    """Per-frequency loop: theta^(-2i/d), then linear (/factor) or Llama 3.1's wavelength bands."""
    freqs = [theta ** (-(2 * i) / dim) for i in range(dim // 2)]
    if not scaling:
        return freqs
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return [f / scaling["factor"] for f in freqs]
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(f)
        elif wavelen > old / low:
            out.append(f / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out


def _heads(x, h):
    return x.reshape(x.shape[0], h, -1)


def _causal(mask):
    return lambda i, j: j <= i and mask[j] == 1


def gpt2(w, c, ids, mask, positions, prefix="transformer."):
    """Logits [T, V] of one sequence."""
    p = lambda n: w[prefix + n]  # noqa: E731
    d, heads, eps = c["n_embd"], c["n_head"], c.get("layer_norm_epsilon", 1e-5)
    act = ACT[c.get("activation_function", "gelu_new")]
    x = np.array([p("wte.weight")[i] + p("wpe.weight")[m] for i, m in zip(ids, positions)])
    for layer in range(c["n_layer"]):
        L = lambda n: p(f"h.{layer}.{n}")  # noqa: E731
        a = layer_norm(x, L("ln_1.weight"), L("ln_1.bias"), eps)
        qkv = a @ L("attn.c_attn.weight") + L("attn.c_attn.bias")
        q, k, v = (_heads(qkv[:, i * d : (i + 1) * d], heads) for i in range(3))
        scale = 1 / math.sqrt(d // heads)
        if c.get("scale_attn_by_inverse_layer_idx"):
            scale /= layer + 1
        o = attention(q, k, v, _causal(mask), scale).reshape(len(ids), d)
        x = x + o @ L("attn.c_proj.weight") + L("attn.c_proj.bias")
        m = layer_norm(x, L("ln_2.weight"), L("ln_2.bias"), eps)
        x = x + act(m @ L("mlp.c_fc.weight") + L("mlp.c_fc.bias")) @ L("mlp.c_proj.weight") + L("mlp.c_proj.bias")
    x = layer_norm(x, p("ln_f.weight"), p("ln_f.bias"), eps)
    head = w.get("lm_head.weight", p("wte.weight"))
    return x @ head.T


def roberta_positions(ids, pad):
    out, count = [], 0
    for i in ids:
        if i == pad:
            out.append(pad)
        else:
            count += 1
            out.append(pad + count)
    return out


def encoder(w, c, ids, mask, types, positions, prefix):
    """Last hidden state [T, D] of one sequence (BERT / RoBERTa)."""
    p = lambda n: w[prefix + n]  # noqa: E731
    eps, heads = c.get("layer_norm_eps", 1e-12), c["num_attention_heads"]
    act = ACT[c.get("hidden_act", "gelu")]
    x = np.array([p("embeddings.word_embeddings.weight")[i] + p("embeddings.position_embeddings.weight")[m]
                  + p("embeddings.token_type_embeddings.weight")[s] for i, m, s in zip(ids, positions, types)])
    x = layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), eps)
    lin = lambda n, v: v @ p(n + ".weight").T + p(n + ".bias")  # noqa: E731
    for layer in range(c["num_hidden_layers"]):
        e = f"encoder.layer.{layer}."
        q, k, v = (_heads(lin(e + f"attention.self.{n}", x), heads) for n in ("query", "key", "value"))
        o = attention(q, k, v, lambda i, j: mask[j] == 1, 1 / math.sqrt(q.shape[2])).reshape(x.shape)
        x = layer_norm(lin(e + "attention.output.dense", o) + x, p(e + "attention.output.LayerNorm.weight"),
                       p(e + "attention.output.LayerNorm.bias"), eps)
        hmid = act(lin(e + "intermediate.dense", x))
        x = layer_norm(lin(e + "output.dense", hmid) + x, p(e + "output.LayerNorm.weight"),
                       p(e + "output.LayerNorm.bias"), eps)
    return x


def bert_pooler(w, x, prefix):
    return np.tanh(w[prefix + "pooler.dense.weight"] @ x[0] + w[prefix + "pooler.dense.bias"])


def bert_mlm_head(w, c, x, emb):
    eps = c.get("layer_norm_eps", 1e-12)
    h = ACT[c.get("hidden_act", "gelu")](x @ w["cls.predictions.transform.dense.weight"].T
                                          + w["cls.predictions.transform.dense.bias"])
    h = layer_norm(h, w["cls.predictions.transform.LayerNorm.weight"], w["cls.predictions.transform.LayerNorm.bias"], eps)
    return h @ emb.T + w["cls.predictions.bias"]


def roberta_mlm_head(w, c, x, emb):
    h = ACT["gelu"](x @ w["lm_head.dense.weight"].T + w["lm_head.dense.bias"])
    h = layer_norm(h, w["lm_head.layer_norm.weight"], w["lm_head.layer_norm.bias"], c.get("layer_norm_eps", 1e-12))
    return h @ emb.T + w["lm_head.bias"]


def llama(w, c, ids, mask, positions):
    """Logits [T, V] of one sequence."""
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads") or heads
    dh = c.get("head_dim") or c["hidden_size"] // heads
    eps = c.get("rms_norm_eps", 1e-6)
    freqs = inv_freq(dh, c.get("rope_theta", 10000.0), c.get("rope_scaling"))

    def lin(n, v):
        out = v @ w[n + ".weight"].T
        return out + w[n + ".bias"] if n + ".bias" in w else out

    x = np.array([w["model.embed_tokens.weight"][i] for i in ids])
    for layer in range(c["num_hidden_layers"]):
        e = f"model.layers.{layer}."
        a = rms_norm(x, w[e + "input_layernorm.weight"], eps)
        q = rope(_heads(lin(e + "self_attn.q_proj", a), heads), positions, freqs)
        k = rope(_heads(lin(e + "self_attn.k_proj", a), kv_heads), positions, freqs)
        v = _heads(lin(e + "self_attn.v_proj", a), kv_heads)
        o = attention(q, k, v, _causal(mask), 1 / math.sqrt(dh)).reshape(len(ids), heads * dh)
        x = x + lin(e + "self_attn.o_proj", o)
        m = rms_norm(x, w[e + "post_attention_layernorm.weight"], eps)
        x = x + lin(e + "mlp.down_proj", ACT["silu"](lin(e + "mlp.gate_proj", m)) * lin(e + "mlp.up_proj", m))
    x = rms_norm(x, w["model.norm.weight"], eps)
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T
