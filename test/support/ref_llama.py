"""Reference Llama (LlamaModel, LlamaForCausalLM) with HF's parameter names.

Follows transformers' models/llama/modeling_llama.py (eager path) and modeling_rope_utils.py (default,
linear and llama3 inverse frequencies): RMSNorm in float32, rotate-half RoPE, grouped-query attention by
repeating key/value heads, SwiGLU MLP, optional attention/MLP biases, head tied when tie_word_embeddings.
"""
import math

import torch
from torch import nn

from ref_common import LoadSpec, RMSNorm, activation, causal_mask, eager_attention, merge_heads, split_heads
from ref_io import ReferenceError

DEFAULTS = {
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": None, "hidden_act": "silu", "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "rope_theta": 10000.0, "rope_scaling": None,
    "attention_bias": False, "mlp_bias": False, "head_dim": None,
}


def rope_parameters(c):
    """(rope_type, theta, scaling dict) from rope_scaling (type/rope_type) or the newer rope_parameters."""
    params = c.get("rope_parameters") or {}
    scaling = c.get("rope_scaling") or params
    theta = float(params.get("rope_theta", c["rope_theta"]))
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    return rope_type, theta, scaling


def inv_frequencies(c, head_dim):
    """HF's inverse frequencies [Dh/2] in float32 for the default, linear and llama3 rope types."""
    rope_type, theta, s = rope_parameters(c)
    if float(c.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ReferenceError("llama: partial_rotary_factor != 1 is not part of Llama; the reference rotates all of Dh")
    dim = head_dim
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if rope_type == "default":
        return inv
    if rope_type == "linear":
        return inv / s["factor"]
    if rope_type == "llama3":
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old_len = s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old_len / low, old_len / high
        wavelen = 2 * math.pi / inv
        # Long wavelengths are slowed by `factor`, short ones kept, the band between blended smoothly.
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old_len / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(medium, blended, scaled)
    raise ReferenceError(f"llama: rope type {rope_type!r} not supported by the reference; use default, linear or llama3")


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    """x [B, H, T, Dh]; cos/sin [B, T, Dh]."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, bias = c["hidden_size"], c["attention_bias"]
        self.heads, self.kv_heads, self.head_dim = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.q_proj = nn.Linear(d, self.heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.heads * self.head_dim, d, bias=bias)

    def forward(self, x, cos, sin, mask, past):
        q = apply_rope(split_heads(self.q_proj(x), self.heads, self.head_dim), cos, sin)
        k = apply_rope(split_heads(self.k_proj(x), self.kv_heads, self.head_dim), cos, sin)
        v = split_heads(self.v_proj(x), self.kv_heads, self.head_dim)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        rep = self.heads // self.kv_heads
        # Query head h reads key/value head h // rep (HF's repeat_kv).
        kr, vr = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = eager_attention(q, kr, vr, mask, self.head_dim ** -0.5)
        return self.o_proj(merge_heads(out)), (k, v)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, i, bias = c["hidden_size"], c["intermediate_size"], c["mlp_bias"]
        self.gate_proj = nn.Linear(d, i, bias=bias)
        self.up_proj = nn.Linear(d, i, bias=bias)
        self.down_proj = nn.Linear(i, d, bias=bias)
        self.act = activation(c["hidden_act"], "config.hidden_act")

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask, past):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), present


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.inv_freq = inv_frequencies(c, c["head_dim"])  # not a parameter: HF's buffer is non-persistent

    def rotary(self, position_ids):
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, input_ids, attention_mask=None, position_ids=None, past=None, **_):
        b, t = input_ids.shape
        s = 0 if past is None else past[0][0].shape[2]
        if position_ids is None:
            position_ids = torch.arange(s, s + t)[None].expand(b, t)
        cos, sin = self.rotary(position_ids)
        mask = causal_mask(attention_mask, b, t, s)
        x = self.embed_tokens(input_ids)
        hidden, presents = [], []
        for i, layer in enumerate(self.layers):
            hidden.append(x)
            x, present = layer(x, cos, sin, mask, None if past is None else past[i])
            presents.append(present)
        x = self.norm(x)
        hidden.append(x)
        return {"last_hidden_state": x, "past": presents, "hidden_states": hidden}


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, **kw):
        out = self.model(input_ids, **kw)
        out["logits"] = self.lm_head(out["last_hidden_state"])
        return out


_IGNORE = [r"rotary_emb\.inv_freq$"]


def build(config, arch):
    c = {**DEFAULTS, **config}
    if c["num_key_value_heads"] is None:
        c["num_key_value_heads"] = c["num_attention_heads"]
    if c["head_dim"] is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    if c["num_attention_heads"] % c["num_key_value_heads"]:
        raise ReferenceError(
            f"llama: num_attention_heads {c['num_attention_heads']} is not a multiple of "
            f"num_key_value_heads {c['num_key_value_heads']}"
        )
    if arch == "LlamaModel":
        return LlamaModel(c), LoadSpec("model", head=False, ignore=_IGNORE)
    if arch == "LlamaForCausalLM":
        tied = [["model.embed_tokens.weight", "lm_head.weight"]] if c["tie_word_embeddings"] else []
        return LlamaForCausalLM(c), LoadSpec("model", head=True, tied=tied, ignore=_IGNORE)
    raise ReferenceError(f"llama: architecture {arch} not supported; use LlamaForCausalLM or LlamaModel")
