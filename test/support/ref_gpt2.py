"""Reference GPT-2 (GPT2Model, GPT2LMHeadModel) with HF's parameter names.

Follows transformers' models/gpt2/modeling_gpt2.py (eager attention path): Conv1D projections, attention
scaled by 1/sqrt(Dh) and optionally by 1/(layer_idx+1), pre-LN blocks, final ln_f, head tied to wte.
"""
import torch
from torch import nn

from ref_common import (Conv1D, LoadSpec, activation, causal_mask, eager_attention, merge_heads,
                        split_heads)
from ref_io import ReferenceError

DEFAULTS = {
    "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": None,
    "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False, "tie_word_embeddings": True,
    "add_cross_attention": False,
}


class GPT2Attention(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        d = c["n_embd"]
        self.heads, self.head_dim = c["n_head"], d // c["n_head"]
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)
        scale = self.head_dim ** -0.5 if c["scale_attn_weights"] else 1.0
        if c["scale_attn_by_inverse_layer_idx"]:
            scale /= float(layer_idx + 1)
        self.scale = scale

    def forward(self, x, mask, past):
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=2)
        q, k, v = (split_heads(t, self.heads, self.head_dim) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        out = eager_attention(q, k, v, mask, self.scale)
        return self.c_proj(merge_heads(out)), (k, v)


class GPT2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        inner = c["n_inner"] if c["n_inner"] is not None else 4 * d
        self.c_fc = Conv1D(d, inner)
        self.c_proj = Conv1D(inner, d)
        self.act = activation(c["activation_function"], "config.activation_function")

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        d, eps = c["n_embd"], c["layer_norm_epsilon"]
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = GPT2Attention(c, layer_idx)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = GPT2MLP(c)

    def forward(self, x, mask, past):
        a, present = self.attn(self.ln_1(x), mask, past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList([GPT2Block(c, i) for i in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])

    def forward(self, input_ids, attention_mask=None, position_ids=None, past=None, **_):
        b, t = input_ids.shape
        s = 0 if past is None else past[0][0].shape[2]
        if position_ids is None:
            # HF's forward: positions follow the cache length, whatever the padding.
            position_ids = torch.arange(s, s + t)[None].expand(b, t)
        if int(position_ids.max()) >= self.config["n_positions"]:
            raise ReferenceError(f"position id {int(position_ids.max())} >= n_positions {self.config['n_positions']}")
        x = self.wte(input_ids) + self.wpe(position_ids)
        mask = causal_mask(attention_mask, b, t, s)
        hidden, presents = [], []
        for i, block in enumerate(self.h):
            hidden.append(x)
            x, present = block(x, mask, None if past is None else past[i])
            presents.append(present)
        x = self.ln_f(x)
        hidden.append(x)
        return {"last_hidden_state": x, "past": presents, "hidden_states": hidden}


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids, **kw):
        out = self.transformer(input_ids, **kw)
        out["logits"] = self.lm_head(out["last_hidden_state"])
        return out


# HF drops the causal-mask buffers old checkpoints carry (attn.bias, attn.masked_bias).
_IGNORE = [r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$"]


def build(config, arch):
    c = {**DEFAULTS, **config}
    if c["add_cross_attention"]:
        raise ReferenceError("gpt2: add_cross_attention=true is not supported by the reference")
    if c["n_embd"] % c["n_head"]:
        raise ReferenceError(f"gpt2: n_embd {c['n_embd']} is not divisible by n_head {c['n_head']}")
    if arch == "GPT2Model":
        return GPT2Model(c), LoadSpec("transformer", head=False, ignore=_IGNORE)
    if arch == "GPT2LMHeadModel":
        tied = [["transformer.wte.weight", "lm_head.weight"]] if c["tie_word_embeddings"] else []
        return GPT2LMHeadModel(c), LoadSpec("transformer", head=True, tied=tied, ignore=_IGNORE)
    raise ReferenceError(f"gpt2: architecture {arch} not supported; use GPT2LMHeadModel or GPT2Model")
