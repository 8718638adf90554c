"""Pieces shared by the reference models: HF's activation table, Conv1D, RMSNorm, additive attention masks,
eager softmax attention, and a strict state-dict loader with HF's load-time tolerances.

Follows transformers' activations.py (ACT2FN), pytorch_utils.Conv1D, modeling_attn_mask_utils (additive
masks filled with the dtype's minimum) and modeling_utils' prefix/tied-weight handling on load.
"""
import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ref_io import ReferenceError

MASK_MIN = torch.finfo(torch.float32).min


def _gelu_tanh(x):
    # "gelu_new": the tanh approximation written out, as in GPT-2's original code.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def activation(name, where):
    if name not in ACT:
        raise ReferenceError(f"{where}: activation {name!r} is not implemented; supported: {sorted(ACT)}")
    return ACT[name]


class Conv1D(nn.Module):
    """GPT-2's transposed linear layer: weight is [in, out] and y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class RMSNorm(nn.Module):
    """Llama's RMSNorm: x / sqrt(mean(x^2) + eps), computed in float32, then scaled by weight."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def causal_mask(attention_mask, batch, q_len, past):
    """Additive [B, 1, T, S+T] mask: key j is visible to query i iff j <= S+i and attention_mask[j] == 1."""
    total = past + q_len
    q_pos = torch.arange(past, total)[:, None]
    k_pos = torch.arange(total)[None, :]
    allowed = (k_pos <= q_pos)[None].expand(batch, q_len, total)
    if attention_mask is not None:
        if tuple(attention_mask.shape) != (batch, total):
            raise ReferenceError(
                f"attention_mask has shape {list(attention_mask.shape)}, expected [{batch}, {total}] "
                f"(past {past} + current {q_len}); the mask covers the cached positions too, as in HF"
            )
        allowed = allowed & (attention_mask[:, None, :] != 0)
    zero = torch.zeros((), dtype=torch.float32)
    return torch.where(allowed, zero, torch.tensor(MASK_MIN))[:, None, :, :]


def padding_mask(attention_mask, batch, q_len):
    """Additive [B, 1, 1, T] encoder mask: (1 - mask) * finfo.min, as BERT's get_extended_attention_mask."""
    if attention_mask is None:
        return None
    if tuple(attention_mask.shape) != (batch, q_len):
        raise ReferenceError(f"attention_mask has shape {list(attention_mask.shape)}, expected [{batch}, {q_len}]")
    return (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * MASK_MIN


def eager_attention(q, k, v, mask, scale):
    """softmax(q k^T * scale + mask) v over [B, H, T, Dh] x [B, H, S+T, Dh]; softmax in float32."""
    scores = (q @ k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores.to(torch.float32), dim=-1).to(q.dtype)
    return probs @ v


def split_heads(x, heads, head_dim):
    b, t, _ = x.shape
    return x.view(b, t, heads, head_dim).transpose(1, 2)


def merge_heads(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class LoadSpec:
    """What HF tolerates when loading one architecture.

    prefix: the base-model attribute ("transformer", "bert", ...); head: True when the module wraps the
    base model under that prefix. tied: groups of names sharing one tensor, canonical name first; a file
    needs one of them. ignore: regexes of checkpoint keys HF drops silently (buffers, unused poolers).
    """

    def __init__(self, prefix, head, tied=(), ignore=()):
        self.prefix, self.head, self.tied, self.ignore = prefix, head, list(tied), list(ignore)


def _rename_legacy(key):
    # Old TF-converted checkpoints name LayerNorm parameters gamma/beta; HF renames them on load.
    if key.endswith(".gamma"):
        return key[: -len(".gamma")] + ".weight"
    if key.endswith(".beta"):
        return key[: -len(".beta")] + ".bias"
    return key


def load_strict(model, state, spec, where):
    """Copy `state` into `model` by HF name; raise listing every missing, unexpected or mis-shaped key."""
    expected = model.state_dict(keep_vars=True)
    state = {_rename_legacy(k): v for k, v in state.items()}
    pre = spec.prefix + "."
    has_prefix = any(k.startswith(pre) for k in state)
    if spec.head and not has_prefix:
        # A base-model checkpoint loaded into a head model: HF prepends the prefix.
        state = {pre + k: v for k, v in state.items()}
    elif not spec.head and has_prefix:
        # A head checkpoint loaded into the base model: HF strips the prefix (head keys stay unexpected).
        state = {(k[len(pre):] if k.startswith(pre) else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not any(re.search(p, k) for p in spec.ignore)}

    problems, chosen = [], {}
    alias_of = {}
    for group in spec.tied:
        present = [n for n in group if n in state]
        for n in group:
            alias_of[n] = group
        if not present:
            continue
        first = state[present[0]]
        for other in present[1:]:
            if state[other].shape != first.shape or not torch.equal(state[other].float(), first.float()):
                problems.append(f"tied tensors differ: {present[0]} vs {other} (HF keeps {group[0]})")
        for n in group:
            chosen[n] = first
    missing = []
    for name in expected:
        if name in chosen:
            continue
        if name in state:
            chosen[name] = state[name]
        elif name in alias_of:
            if name == alias_of[name][0]:
                missing.append(f"{name} (or its tied alias {', '.join(alias_of[name][1:])})")
        else:
            missing.append(name)
    unexpected = sorted(k for k in state if k not in expected)
    mis_shaped = [
        f"{n}: file {list(chosen[n].shape)}, model {list(p.shape)}"
        for n, p in expected.items()
        if n in chosen and tuple(chosen[n].shape) != tuple(p.shape)
    ]
    if missing or unexpected or mis_shaped or problems:
        lines = [f"{where}: checkpoint does not match {type(model).__name__}"]
        lines += [f"  missing: {m}" for m in missing]
        lines += [f"  unexpected: {u}" for u in unexpected]
        lines += [f"  wrong shape: {s}" for s in mis_shaped]
        lines += [f"  {p}" for p in problems]
        raise ReferenceError("\n".join(lines))
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(chosen[name].to(torch.float32))
