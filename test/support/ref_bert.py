"""Reference BERT and RoBERTa encoders (bare, ForMaskedLM, ForSequenceClassification) with HF's names.

Follows transformers' models/bert/modeling_bert.py and models/roberta/modeling_roberta.py (eager path):
post-LN encoder layers, absolute positions, BERT's tanh pooler and prediction head, RoBERTa's position ids
counted from padding_idx + 1 over non-pad tokens and its lm_head (dense, erf-gelu, layer_norm, decoder).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ref_common import LoadSpec, activation, eager_attention, merge_heads, padding_mask, split_heads
from ref_io import ReferenceError

DEFAULTS = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2,
    "layer_norm_eps": 1e-12, "position_embedding_type": "absolute", "tie_word_embeddings": True,
    "is_decoder": False, "add_cross_attention": False,
}


class Embeddings(nn.Module):
    def __init__(self, c, roberta):
        super().__init__()
        self.roberta, self.pad = roberta, c["pad_token_id"]
        self.max_pos = c["max_position_embeddings"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, input_ids, token_type_ids, position_ids):
        b, t = input_ids.shape
        if position_ids is None:
            if self.roberta:
                # create_position_ids_from_input_ids: pads keep padding_idx, real tokens count up from it.
                real = (input_ids != self.pad).long()
                position_ids = torch.cumsum(real, dim=1) * real + self.pad
            else:
                position_ids = torch.arange(t)[None].expand(b, t)
        if int(position_ids.max()) >= self.max_pos:
            raise ReferenceError(f"position id {int(position_ids.max())} >= max_position_embeddings {self.max_pos}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.heads, self.head_dim = c["num_attention_heads"], d // c["num_attention_heads"]
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x, mask):
        q, k, v = (split_heads(f(x), self.heads, self.head_dim) for f in (self.query, self.key, self.value))
        return merge_heads(eager_attention(q, k, v, mask, 1.0 / math.sqrt(self.head_dim)))


class DenseNorm(nn.Module):
    """`attention.output` and `output`: dense, then LayerNorm of (dense + residual)."""

    def __init__(self, c, n_in):
        super().__init__()
        self.dense = nn.Linear(n_in, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c, c["hidden_size"])

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.act = activation(c["hidden_act"], "config.hidden_act")

    def forward(self, x):
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c, c["intermediate_size"])

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class EncoderModel(nn.Module):
    """BertModel / RobertaModel."""

    def __init__(self, c, roberta, pooler):
        super().__init__()
        self.embeddings = Embeddings(c, roberta)
        self.encoder = Encoder(c)
        if pooler:
            self.pooler = Pooler(c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, past=None, **_):
        if past is not None:
            raise ReferenceError("encoders have no KV cache: 'steps' is only for decoders (gpt2, llama)")
        b, t = input_ids.shape
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        mask = padding_mask(attention_mask, b, t)
        hidden = [x]
        for layer in self.encoder.layer:
            x = layer(x, mask)
            hidden.append(x)
        out = {"last_hidden_state": x, "hidden_states": hidden}
        if hasattr(self, "pooler"):
            out["pooler_output"] = self.pooler(x)
        return out


class BertPredictionHead(nn.Module):
    """cls.predictions: transform (dense, act, LayerNorm), decoder tied to the word embeddings, bias."""

    def __init__(self, c):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.transform.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.act = activation(c["hidden_act"], "config.hidden_act")
        self.decoder = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.decoder.bias = self.bias

    def forward(self, x):
        x = self.transform.LayerNorm(self.act(self.transform.dense(x)))
        return self.decoder(x)


class RobertaLMHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.decoder = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.decoder.bias = self.bias

    def forward(self, x):
        # Always the erf gelu here, whatever config.hidden_act says (HF's RobertaLMHead).
        return self.decoder(self.layer_norm(F.gelu(self.dense(x))))


class MaskedLM(nn.Module):
    def __init__(self, c, roberta):
        super().__init__()
        self.prefix = "roberta" if roberta else "bert"
        setattr(self, self.prefix, EncoderModel(c, roberta, pooler=False))
        if roberta:
            self.lm_head = RobertaLMHead(c)
        else:
            self.cls = nn.Module()
            self.cls.predictions = BertPredictionHead(c)
        emb = getattr(self, self.prefix).embeddings.word_embeddings
        if c["tie_word_embeddings"]:
            self._head().decoder.weight = emb.weight

    def _head(self):
        return self.lm_head if hasattr(self, "lm_head") else self.cls.predictions

    def forward(self, input_ids, **kw):
        out = getattr(self, self.prefix)(input_ids, **kw)
        out["logits"] = self._head()(out["last_hidden_state"])
        return out


class RobertaClassificationHead(nn.Module):
    def __init__(self, c, labels):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.out_proj = nn.Linear(c["hidden_size"], labels)

    def forward(self, x):
        return self.out_proj(torch.tanh(self.dense(x[:, 0])))


class SequenceClassification(nn.Module):
    def __init__(self, c, roberta, labels):
        super().__init__()
        self.prefix = "roberta" if roberta else "bert"
        setattr(self, self.prefix, EncoderModel(c, roberta, pooler=not roberta))
        self.classifier = RobertaClassificationHead(c, labels) if roberta else nn.Linear(c["hidden_size"], labels)

    def forward(self, input_ids, **kw):
        out = getattr(self, self.prefix)(input_ids, **kw)
        src = out["last_hidden_state"] if self.prefix == "roberta" else out["pooler_output"]
        out["logits"] = self.classifier(src)
        return out


_BUFFERS = [r"embeddings\.position_ids$", r"embeddings\.token_type_ids$"]


def build(config, arch, roberta):
    kind = "roberta" if roberta else "bert"
    c = {**DEFAULTS, "pad_token_id": 1 if roberta else 0, **config}
    if c["position_embedding_type"] != "absolute":
        raise ReferenceError(f"{kind}: position_embedding_type {c['position_embedding_type']!r}; only 'absolute'")
    if c["is_decoder"] or c["add_cross_attention"]:
        raise ReferenceError(f"{kind}: is_decoder / add_cross_attention are not supported by the reference")
    name = "Roberta" if roberta else "Bert"
    emb = f"{kind}.embeddings.word_embeddings.weight"
    if arch == f"{name}Model":
        return EncoderModel(c, roberta, pooler=True), LoadSpec(kind, head=False, ignore=_BUFFERS)
    if arch == f"{name}ForMaskedLM":
        head = "lm_head" if roberta else "cls.predictions"
        tied = [[f"{head}.bias", f"{head}.decoder.bias"]]
        if c["tie_word_embeddings"]:
            tied.append([emb, f"{head}.decoder.weight"])
        ignore = _BUFFERS + [r"(^|\.)pooler\."]
        return MaskedLM(c, roberta), LoadSpec(kind, head=True, tied=tied, ignore=ignore)
    if arch == f"{name}ForSequenceClassification":
        labels = len(c["id2label"]) if "id2label" in c else c.get("num_labels", 2)
        ignore = _BUFFERS + ([r"(^|\.)pooler\."] if roberta else [])
        return SequenceClassification(c, roberta, labels), LoadSpec(kind, head=True, ignore=ignore)
    raise ReferenceError(
        f"{kind}: architecture {arch} not supported; use {name}Model, {name}ForMaskedLM or "
        f"{name}ForSequenceClassification"
    )
