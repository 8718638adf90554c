"""`reference.py --selftest`: holds every piece of the PyTorch reference against the naive float64
implementations in ref_naive.py (loops and formulas), through the real CLI and JSON contract.

Covers: safetensors dtypes; LayerNorm, RMSNorm, activations, Conv1D, masked attention with a cache and
GQA, RoPE (complex-number formula; default/linear/llama3 frequencies), RoBERTa positions; whole GPT-2,
BERT, RoBERTa and Llama models on random checkpoints (padding, explicit positions, cached steps); the
loader's strictness and HF tolerances; gradients against float64 finite differences.
"""
import json
import math
import os
import shutil
import tempfile
import traceback

import numpy as np
import torch

import ref_naive as naive
import reference
from ref_common import ACT, Conv1D, RMSNorm, causal_mask, eager_attention
from ref_io import ReferenceError, decode_tensor, read_safetensors, write_safetensors
from ref_llama import apply_rope, inv_frequencies

TMP = tempfile.mkdtemp(prefix="reference-selftest-")
CHECKS = []


def check(name):
    """Register a check; main() runs them all and reports each."""
    def wrap(fn):
        CHECKS.append((name, fn))
        return fn
    return wrap


def main():
    import ref_selftest_more  # noqa: F401 - registers the loader and gradient checks

    failed = 0
    for name, fn in CHECKS:
        try:
            fn()
            print(f"ok - {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, none stops the run
            failed += 1
            print(f"not ok - {name}\n{traceback.format_exc()}")
    print(f"selftest: {len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


def close(got, want, tol, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    assert err <= tol, f"{what}: max |diff| {err:.3g} > {tol}"


def raises(fn, *fragments):
    try:
        fn()
    except ReferenceError as e:
        for f in fragments:
            assert f in str(e), f"error message lacks {f!r}:\n{e}"
        return
    raise AssertionError(f"expected a ReferenceError mentioning {fragments}")


# ---- checkpoints -------------------------------------------------------------------------------

def random_weights(config, seed, drop=()):
    """Random float32 weights for every parameter name of the reference module, minus `drop`."""
    model, _ = reference.build_model(config)
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in model.state_dict().items():
        if name in drop:
            continue
        shape = tuple(p.shape)
        norm = name.endswith("norm.weight") or "LayerNorm.weight" in name or ".ln_" in name and name.endswith("weight")
        base = 1.0 if norm else 0.0
        out[name] = (base + rng.normal(0, 0.3, shape)).astype(np.float32)
    return out


def save(name, config, weights, bf16=()):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    write_safetensors(os.path.join(d, "model.safetensors"), weights, bf16=bf16)
    return d


def run(model_dir, inp, grad=False):
    """Through the CLI: in.json -> reference.main -> out.json, tensors decoded to numpy."""
    i, o = os.path.join(model_dir, "in.json"), os.path.join(model_dir, "out.json")
    with open(i, "w") as f:
        json.dump(inp, f)
    code = reference.main(["--model", model_dir, "--input", i, "--output", o] + (["--grad"] if grad else []))
    assert code == 0, f"reference.py exited {code}"
    with open(o) as f:
        return _decode(json.load(f))


def _decode(x):
    if isinstance(x, dict) and set(x) == {"shape", "data"}:
        return decode_tensor(x)
    if isinstance(x, dict):
        return {k: _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


def f64(weights):
    return {k: v.astype(np.float64) for k, v in weights.items()}


IDS = [[3, 7, 1, 9, 4], [5, 2, 8, 6, 1]]
LEFT_PAD = [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]


def compare_rows(got, want_fn, mask, tol, what):
    """got [B, T, V] vs want_fn(b) -> [T, V], at positions whose mask is 1."""
    for b, row in enumerate(mask):
        want = want_fn(b)
        for t, m in enumerate(row):
            if m:
                close(got[b, t], want[t], tol, f"{what} b={b} t={t}")


# ---- pieces ------------------------------------------------------------------------------------

@check("safetensors: F32/F16/BF16/I64/I32 read back exactly (BF16 widened by bit shift)")
def _():
    vals = np.array([1.5, -2.25, 0.0078125, 3.0], dtype=np.float32)
    path = os.path.join(TMP, "dtypes.safetensors")
    write_safetensors(path, {"a": vals, "h": vals.astype(np.float16), "b": vals, "i": np.array([[1, -2]], np.int64),
                             "j": np.array([7, 8, 9], np.int32), "e": np.zeros((0, 3), np.float32)}, bf16=("b",))
    got = read_safetensors(path)
    for k in ("a", "h", "b"):
        assert got[k].dtype == torch.float32 and got[k].tolist() == vals.tolist(), k
    assert got["i"].tolist() == [[1, -2]] and got["j"].tolist() == [7, 8, 9] and list(got["e"].shape) == [0, 3]


@check("LayerNorm and RMSNorm match their formulas")
def _():
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(4, 6)), rng.normal(size=6), rng.normal(size=6)
    ln = torch.nn.LayerNorm(6, eps=1e-5)
    rms = RMSNorm(6, 1e-6)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(w)), ln.bias.copy_(torch.tensor(b)), rms.weight.copy_(torch.tensor(w))
        xt = torch.tensor(x, dtype=torch.float32)
        close(ln(xt), naive.layer_norm(x, w, b, 1e-5), 1e-5, "layer_norm")
        close(rms(xt), naive.rms_norm(x, w, 1e-6), 1e-5, "rms_norm")


@check("activations gelu (erf), gelu_new, gelu_pytorch_tanh, relu, silu match their formulas")
def _():
    x = np.linspace(-4, 4, 33)
    for name in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"):
        close(ACT[name](torch.tensor(x, dtype=torch.float32)), naive.ACT[name](x), 2e-6, name)
    # gelu (erf) and gelu_new (tanh) really differ: the table must not confuse them.
    assert abs(naive.ACT["gelu"](np.array([1.0]))[0] - naive.ACT["gelu_new"](np.array([1.0]))[0]) > 1e-5


@check("Conv1D is x @ W[in, out] + b by an explicit loop")
def _():
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    conv = Conv1D(4, 5)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(w)), conv.bias.copy_(torch.tensor(b))
        got = conv(torch.tensor(x, dtype=torch.float32))
    want = [[sum(x[r, i] * w[i, j] for i in range(4)) + b[j] for j in range(5)] for r in range(3)]
    close(got, want, 1e-5, "conv1d")


@check("masked attention with a cache, padding and GQA equals the loop softmax")
def _():
    rng = np.random.default_rng(3)
    past, t, heads, kv, dh = 2, 3, 4, 2, 5
    q = rng.normal(size=(1, heads, t, dh))
    k, v = rng.normal(size=(1, kv, past + t, dh)), rng.normal(size=(1, kv, past + t, dh))
    mask = [0, 1, 1, 0, 1]
    m = causal_mask(torch.tensor([mask]), 1, t, past)
    tt = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    got = eager_attention(tt(q), tt(k).repeat_interleave(2, 1), tt(v).repeat_interleave(2, 1), m, dh ** -0.5)
    want = naive.attention(q[0].transpose(1, 0, 2), k[0].transpose(1, 0, 2), v[0].transpose(1, 0, 2),
                           lambda i, j: j <= past + i and mask[j] == 1, dh ** -0.5)
    close(got[0].transpose(0, 1), want, 1e-5, "attention")


@check("RoPE: rotate-half on cos/sin equals z * e^{i m theta}; default/linear/llama3 frequencies")
def _():
    base = {"hidden_size": 16, "num_attention_heads": 2, "rope_theta": 10000.0}
    l3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 8.0,
          "original_max_position_embeddings": 256}
    for scaling in (None, {"type": "linear", "factor": 2.0}, l3):
        got = inv_frequencies({**base, "rope_scaling": scaling}, 8)
        want = naive.inv_freq(8, 10000.0, scaling)
        close(got / torch.tensor(want), np.ones(4), 1e-6, f"inv_freq {scaling}")
    # The llama3 case must exercise all three bands: kept, divided by factor, blended.
    plain = naive.inv_freq(8, 10000.0)
    ratios = [s / p for s, p in zip(naive.inv_freq(8, 10000.0, l3), plain)]
    assert ratios[0] == 1 and ratios[-1] == 1 / 8 and any(1 / 8 < r < 1 for r in ratios), ratios
    rng = np.random.default_rng(4)
    x, pos = rng.normal(size=(3, 2, 8)), [0, 5, 300]
    freqs = inv_frequencies({**base, "rope_scaling": None}, 8)
    ang = torch.tensor(pos, dtype=torch.float32)[:, None] * freqs[None]
    emb = torch.cat([ang, ang], -1)[None]
    got = apply_rope(torch.tensor(x, dtype=torch.float32).transpose(0, 1)[None], emb.cos(), emb.sin())
    close(got[0].transpose(0, 1), naive.rope(x, pos, freqs.double().tolist()), 1e-4, "rope")


@check("names: GPT-2, BERT-MLM, RoBERTa-MLM and Llama modules carry HF's parameter names")
def _():
    expect = {
        "gpt2": ["transformer.h.0.attn.c_attn.bias", "transformer.h.0.attn.c_attn.weight",
                 "transformer.h.0.attn.c_proj.bias", "transformer.h.0.attn.c_proj.weight",
                 "transformer.h.0.ln_1.bias", "transformer.h.0.ln_1.weight", "transformer.h.0.ln_2.bias",
                 "transformer.h.0.ln_2.weight", "transformer.h.0.mlp.c_fc.bias", "transformer.h.0.mlp.c_fc.weight",
                 "transformer.h.0.mlp.c_proj.bias", "transformer.h.0.mlp.c_proj.weight"],
        "llama": ["model.layers.0.input_layernorm.weight", "model.layers.0.mlp.down_proj.weight",
                  "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                  "model.layers.0.post_attention_layernorm.weight", "model.layers.0.self_attn.k_proj.weight",
                  "model.layers.0.self_attn.o_proj.weight", "model.layers.0.self_attn.q_proj.weight",
                  "model.layers.0.self_attn.v_proj.weight"],
    }
    for kind, cfg in (("gpt2", GPT2), ("llama", LLAMA)):
        names = sorted(reference.build_model(cfg)[0].state_dict())
        layer0 = [n for n in names if ".0." in n]
        assert layer0 == expect[kind], f"{kind} layer 0: {layer0}"
    top = {n for n in reference.build_model(BERT_MLM)[0].state_dict() if "encoder.layer" not in n}
    assert top == {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                   "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                   "bert.embeddings.LayerNorm.bias", "cls.predictions.bias", "cls.predictions.transform.dense.weight",
                   "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
                   "cls.predictions.transform.LayerNorm.bias", "cls.predictions.decoder.weight",
                   "cls.predictions.decoder.bias"}, sorted(top)
    top = {n for n in reference.build_model(ROBERTA_MLM)[0].state_dict() if n.startswith("lm_head")}
    assert top == {"lm_head.dense.weight", "lm_head.dense.bias", "lm_head.layer_norm.weight",
                   "lm_head.layer_norm.bias", "lm_head.decoder.weight", "lm_head.decoder.bias", "lm_head.bias"}


# ---- whole models ------------------------------------------------------------------------------

GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 23, "n_positions": 16,
        "n_embd": 12, "n_layer": 2, "n_head": 3}
GPT2_B = {**GPT2, "tie_word_embeddings": False, "scale_attn_by_inverse_layer_idx": True,
          "activation_function": "relu", "n_inner": 20}
BERT = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 19, "hidden_size": 12,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 16}
BERT_MLM = {**BERT, "architectures": ["BertForMaskedLM"]}
ROBERTA_MLM = {**BERT, "model_type": "roberta", "architectures": ["RobertaForMaskedLM"], "pad_token_id": 1,
               "type_vocab_size": 1, "max_position_embeddings": 20, "layer_norm_eps": 1e-5}
LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 29, "hidden_size": 16,
         "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
LLAMA_B = {**LLAMA, "head_dim": 6, "attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True,
           "rope_scaling": {"type": "linear", "factor": 2.0}, "rope_theta": 500000.0}
LLAMA_C = {**LLAMA, "num_attention_heads": 2, "num_key_value_heads": 1, "rope_scaling": {
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 8.0,
    "original_max_position_embeddings": 256}}


def decoder_checks(tag, config, weights, naive_fn, model_dir):
    w = f64(weights)
    pos = list(range(5))
    out = run(model_dir, {"input_ids": IDS, "attention_mask": LEFT_PAD, "output_hidden_states": True})
    compare_rows(out["logits"], lambda b: naive_fn(w, config, IDS[b], LEFT_PAD[b], pos), LEFT_PAD, 1e-4,
                 f"{tag} logits")
    assert len(out["hidden_states"]) == config.get("n_layer", config.get("num_hidden_layers")) + 1
    close(out["hidden_states"][-1], out["last_hidden_state"], 0, f"{tag} hidden_states[-1]")
    # Explicit positions, as generate() builds them for a left-padded row.
    pids = [[0, 1, 2, 3, 4], [250, 251, 252, 253, 254]] if "llama" in tag else [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]
    out = run(model_dir, {"input_ids": IDS, "attention_mask": LEFT_PAD, "position_ids": pids})
    compare_rows(out["logits"], lambda b: naive_fn(w, config, IDS[b], LEFT_PAD[b], pids[b]), LEFT_PAD, 1e-4,
                 f"{tag} logits with position_ids")
    # Cached decoding: prefix of 3, then 1 token with the mask carried over, then 1 with an explicit mask.
    out = run(model_dir, {"input_ids": [r[:3] for r in IDS], "attention_mask": [r[:3] for r in LEFT_PAD],
                          "output_cache": True,
                          "steps": [{"input_ids": [[r[3]] for r in IDS]},
                                    {"input_ids": [[r[4]] for r in IDS], "attention_mask": LEFT_PAD}]})
    full = [naive_fn(w, config, IDS[b], LEFT_PAD[b], pos) for b in range(2)]
    for s, t in ((0, 3), (1, 4)):
        close(out["steps"][s]["logits"][:, 0], np.array([full[b][t] for b in range(2)]), 1e-4, f"{tag} step {s}")
    kv = config.get("num_key_value_heads", config.get("n_head"))
    assert out["steps"][1]["cache"][0]["key"].shape[:3] == (2, kv, 5), out["steps"][1]["cache"][0]["key"].shape


@check("GPT-2 (tied head, gelu_new, no lm_head in file): logits, padding, positions, cache vs naive")
def _():
    w = random_weights(GPT2, 10, drop=("lm_head.weight",))
    decoder_checks("gpt2", GPT2, w, naive.gpt2, save("gpt2", GPT2, w))


@check("GPT-2 (untied, relu, n_inner, 1/(layer+1) scaling, F16+BF16 tensors) vs naive")
def _():
    w = random_weights(GPT2_B, 11)
    w["transformer.wpe.weight"] = w["transformer.wpe.weight"].astype(np.float16)
    bits = w["lm_head.weight"].view(np.uint32) & np.uint32(0xFFFF0000)
    w["lm_head.weight"] = bits.view(np.float32)
    d = save("gpt2b", GPT2_B, w, bf16=("lm_head.weight",))
    decoder_checks("gpt2b", GPT2_B, {k: v.astype(np.float32) for k, v in w.items()}, naive.gpt2, d)


@check("Llama (GQA 4/2, untied, default rope) vs naive")
def _():
    w = random_weights(LLAMA, 12)
    decoder_checks("llama", LLAMA, w, naive.llama, save("llama", LLAMA, w))


@check("Llama (head_dim 6 != D/H, attention+mlp bias, tied, linear rope, theta 5e5) vs naive")
def _():
    w = random_weights(LLAMA_B, 13, drop=("lm_head.weight",))
    decoder_checks("llama-b", LLAMA_B, w, naive.llama, save("llama-b", LLAMA_B, w))


@check("Llama (MQA 2/1, llama3 rope bands, positions 250+) vs naive")
def _():
    w = random_weights(LLAMA_C, 14)
    decoder_checks("llama-c", LLAMA_C, w, naive.llama, save("llama-c", LLAMA_C, w))


TYPES = [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]
RIGHT_PAD = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


@check("BertModel (pooler, token types, padding) vs naive")
def _():
    w = random_weights(BERT, 20)
    out = run(save("bert", BERT, w), {"input_ids": IDS, "attention_mask": RIGHT_PAD, "token_type_ids": TYPES})
    w = f64(w)
    hs = [naive.encoder(w, BERT, IDS[b], RIGHT_PAD[b], TYPES[b], range(5), "") for b in range(2)]
    compare_rows(out["last_hidden_state"], lambda b: hs[b], RIGHT_PAD, 1e-4, "bert hidden")
    close(out["pooler_output"], [naive.bert_pooler(w, h, "") for h in hs], 1e-4, "bert pooler")


@check("BertForMaskedLM (tied decoder, aliases + pooler + position_ids buffer tolerated) and ForSequenceClassification")
def _():
    w = random_weights(BERT_MLM, 21, drop=("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"))
    w64 = f64(w)
    want = lambda b: naive.bert_mlm_head(  # noqa: E731
        w64, BERT, naive.encoder(w64, BERT, IDS[b], RIGHT_PAD[b], [0] * 5, range(5), "bert."),
        w64["bert.embeddings.word_embeddings.weight"])
    out = run(save("bert-mlm", BERT_MLM, w), {"input_ids": IDS, "attention_mask": RIGHT_PAD})
    compare_rows(out["logits"], want, RIGHT_PAD, 1e-4, "bert mlm")
    extra = {**w, "cls.predictions.decoder.weight": w["bert.embeddings.word_embeddings.weight"],
             "cls.predictions.decoder.bias": w["cls.predictions.bias"], "bert.pooler.dense.weight": np.eye(12, dtype=np.float32),
             "bert.embeddings.position_ids": np.arange(16, dtype=np.int64)[None]}
    out2 = run(save("bert-mlm2", BERT_MLM, extra), {"input_ids": IDS, "attention_mask": RIGHT_PAD})
    close(out2["logits"], out["logits"], 0, "aliases change nothing")
    cls_cfg = {**BERT, "architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b", "2": "c"}}
    wc = random_weights(cls_cfg, 22)
    out = run(save("bert-cls", cls_cfg, wc), {"input_ids": IDS, "attention_mask": RIGHT_PAD})
    wc = f64(wc)
    for b in range(2):
        pooled = naive.bert_pooler(wc, naive.encoder(wc, BERT, IDS[b], RIGHT_PAD[b], [0] * 5, range(5), "bert."), "bert.")
        close(out["logits"][b], wc["classifier.weight"] @ pooled + wc["classifier.bias"], 1e-4, "bert cls")


@check("RobertaForMaskedLM (positions from padding_idx, erf-gelu head) and RobertaModel vs naive")
def _():
    ids = [[0, 5, 7, 2, 9], [0, 8, 2, 1, 1]]
    w = random_weights(ROBERTA_MLM, 30, drop=("lm_head.decoder.weight", "lm_head.decoder.bias"))
    out = run(save("roberta", ROBERTA_MLM, w), {"input_ids": ids, "attention_mask": RIGHT_PAD})
    assert naive.roberta_positions(ids[1], 1) == [2, 3, 4, 1, 1]
    w = f64(w)
    want = lambda b: naive.roberta_mlm_head(w, ROBERTA_MLM, naive.encoder(  # noqa: E731
        w, ROBERTA_MLM, ids[b], RIGHT_PAD[b], [0] * 5, naive.roberta_positions(ids[b], 1), "roberta."),
        w["roberta.embeddings.word_embeddings.weight"])
    compare_rows(out["logits"], want, RIGHT_PAD, 1e-4, "roberta mlm")
    base_cfg = {**ROBERTA_MLM, "architectures": ["RobertaModel"]}
    wb = random_weights(base_cfg, 31)
    out = run(save("roberta-base", base_cfg, wb), {"input_ids": ids, "attention_mask": RIGHT_PAD})
    wb = f64(wb)
    for b in range(2):
        h = naive.encoder(wb, base_cfg, ids[b], RIGHT_PAD[b], [0] * 5, naive.roberta_positions(ids[b], 1), "")
        close(out["pooler_output"][b], naive.bert_pooler(wb, h, ""), 1e-4, "roberta pooler")
