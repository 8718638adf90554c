"""Second half of `reference.py --selftest`: the loader's strictness and HF tolerances, the CLI's error
path, and gradients of the label log-likelihood against float64 finite differences of ref_naive.
"""
import contextlib
import io
import json
import os

import numpy as np

import ref_naive as naive
import reference
from ref_selftest import (BERT, BERT_MLM, GPT2, IDS, LEFT_PAD, LLAMA, LLAMA_B, RIGHT_PAD, TMP, check, close, f64,
                          random_weights, raises, run, save)


def load(d):
    return reference.load_model(d)


@check("loader: base checkpoint without 'transformer.' prefix or lm_head, with attn.bias buffers, loads the same")
def _():
    w = random_weights(GPT2, 40, drop=("lm_head.weight",))
    ref = run(save("load-a", GPT2, w), {"input_ids": IDS})
    bare = {k[len("transformer."):]: v for k, v in w.items()}
    bare["h.0.attn.bias"] = np.tril(np.ones((16, 16), np.float32))[None, None]
    bare["h.1.attn.masked_bias"] = np.array(-1e4, np.float32)
    close(run(save("load-b", GPT2, bare), {"input_ids": IDS})["logits"], ref["logits"], 0, "prefix-less")
    same = {**w, "lm_head.weight": w["transformer.wte.weight"]}
    close(run(save("load-c", GPT2, same), {"input_ids": IDS})["logits"], ref["logits"], 0, "tied alias present")


@check("loader: missing, unexpected, mis-shaped and disagreeing tied tensors fail, each listed by name")
def _():
    w = random_weights(GPT2, 41, drop=("lm_head.weight",))
    gone = {k: v for k, v in w.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    raises(lambda: load(save("bad-a", GPT2, gone)), "missing: transformer.h.1.mlp.c_fc.bias")
    extra = {**w, "transformer.h.0.attn.extra": np.zeros(3, np.float32)}
    raises(lambda: load(save("bad-b", GPT2, extra)), "unexpected: transformer.h.0.attn.extra")
    shaped = {**w, "transformer.wpe.weight": np.zeros((15, 12), np.float32)}
    raises(lambda: load(save("bad-c", GPT2, shaped)), "wrong shape: transformer.wpe.weight: file [15, 12], model [16, 12]")
    differ = {**w, "lm_head.weight": w["transformer.wte.weight"] + 1}
    raises(lambda: load(save("bad-d", GPT2, differ)), "tied tensors differ", "lm_head.weight")
    no_wte = {k: v for k, v in w.items() if k != "transformer.wte.weight"}
    raises(lambda: load(save("bad-e", GPT2, no_wte)), "missing: transformer.wte.weight (or its tied alias lm_head.weight)")
    wl = random_weights(LLAMA, 42, drop=("lm_head.weight",))
    raises(lambda: load(save("bad-f", LLAMA, wl)), "missing: lm_head.weight")
    raises(lambda: load(save("bad-g", {**GPT2, "model_type": "gptj"}, w)), "model_type 'gptj'")
    raises(lambda: load(save("bad-h", {**GPT2, "architectures": ["GPT2ForTokenClassification"]}, w)),
           "GPT2ForTokenClassification")


@check("loader: Llama rotary inv_freq buffers and BERT legacy gamma/beta names are tolerated as in HF")
def _():
    wl = random_weights(LLAMA, 43)
    ref = run(save("tol-a", LLAMA, wl), {"input_ids": IDS})
    buf = {**wl, "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(2, np.float32)}
    close(run(save("tol-b", LLAMA, buf), {"input_ids": IDS})["logits"], ref["logits"], 0, "inv_freq buffer")
    wb = random_weights(BERT, 44)
    ref = run(save("tol-c", BERT, wb), {"input_ids": IDS})
    legacy = {(k[:-len(".weight")] + ".gamma" if "LayerNorm.weight" in k else
               k[:-len(".bias")] + ".beta" if "LayerNorm.bias" in k else k): v for k, v in wb.items()}
    close(run(save("tol-d", BERT, legacy), {"input_ids": IDS})["last_hidden_state"], ref["last_hidden_state"], 0,
          "gamma/beta")


@check("CLI: bad input exits 2 with a message; steps on an encoder and an out-of-range mask are refused")
def _():
    d = save("cli", GPT2, random_weights(GPT2, 45, drop=("lm_head.weight",)))
    db = save("cli-bert", BERT, random_weights(BERT, 46))
    cases = [(d, {"input_ids": [[1, 2], [3]]}, "rows must all have the same length"),
             (d, {"input_ids": IDS, "attention_mask": [[1, 1]]}, "expected [2, 5]"),
             (db, {"input_ids": IDS, "steps": [{"input_ids": [[1], [2]]}]}, "encoders have no cache")]
    for model_dir, bad, fragment in cases:
        i, o = os.path.join(model_dir, "in.json"), os.path.join(model_dir, "out.json")
        with open(i, "w") as f:
            json.dump(bad, f)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = reference.main(["--model", model_dir, "--input", i, "--output", o])
        assert code == 2 and fragment in err.getvalue(), (code, err.getvalue())


def objective(logits_rows, labels):
    """sum of log_softmax(logits)[label] over labels != -100, in float64."""
    total = 0.0
    for logits, row in zip(logits_rows, labels):
        for t, y in enumerate(row):
            if y != -100:
                z = logits[t] - np.max(logits[t])
                total += z[y] - np.log(np.sum(np.exp(z)))
    return total


def grad_check(tag, config, weights, naive_logits, names, labels, seed):
    """Reference autograd (float32) vs central differences of the naive float64 objective."""
    d = save(tag, config, weights)
    out = run(d, {"input_ids": IDS, "attention_mask": LEFT_PAD if "bert" not in tag else RIGHT_PAD,
                  "labels": labels, "grad_of": names}, grad=True)
    w = f64(weights)
    close(out["objective"], objective(naive_logits(w), labels), 1e-3, f"{tag} objective")
    rng = np.random.default_rng(seed)
    for name in names:
        # A tied alias (lm_head.weight absent from the file) perturbs the one shared tensor.
        key = name if name in w else {"lm_head.weight": "transformer.wte.weight"}.get(name, name)
        grad = out["grads"][name]
        assert grad.shape == w[key].shape, f"{name}: grad shape {grad.shape} vs {w[key].shape}"
        for _ in range(4):
            idx = tuple(int(rng.integers(s)) for s in w[key].shape)
            eps, orig = 1e-4, w[key][idx]
            w[key][idx] = orig + eps
            up = objective(naive_logits(w), labels)
            w[key][idx] = orig - eps
            down = objective(naive_logits(w), labels)
            w[key][idx] = orig
            fd = (up - down) / (2 * eps)
            assert abs(grad[idx] - fd) <= 2e-3 * max(1.0, abs(fd)), f"{tag} d/d{name}{idx}: {grad[idx]} vs {fd}"


@check("gradients: GPT-2 (tied head), Llama (GQA, biases), BERT-MLM vs float64 finite differences")
def _():
    lab = [[3, -100, 5, 7, 1], [-100, -100, 2, 9, 4]]
    w = random_weights(GPT2, 50, drop=("lm_head.weight",))
    grad_check("grad-gpt2", GPT2, w, lambda w: [naive.gpt2(w, GPT2, IDS[b], LEFT_PAD[b], range(5)) for b in range(2)],
               ["transformer.h.0.attn.c_attn.weight", "lm_head.weight", "transformer.ln_f.bias",
                "transformer.wpe.weight"], lab, 1)
    w = random_weights(LLAMA_B, 51, drop=("lm_head.weight",))
    grad_check("grad-llama", LLAMA_B, w,
               lambda w: [naive.llama(w, LLAMA_B, IDS[b], LEFT_PAD[b], range(5)) for b in range(2)],
               ["model.layers.1.self_attn.k_proj.weight", "model.layers.0.self_attn.q_proj.bias", "model.norm.weight"],
               lab, 2)
    w = random_weights(BERT_MLM, 52, drop=("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"))

    def bert_logits(w):
        emb = w["bert.embeddings.word_embeddings.weight"]
        return [naive.bert_mlm_head(w, BERT, naive.encoder(w, BERT, IDS[b], RIGHT_PAD[b], [0] * 5, range(5), "bert."),
                                    emb) for b in range(2)]
    grad_check("grad-bert", BERT_MLM, w, bert_logits,
               ["bert.encoder.layer.0.attention.self.query.weight", "cls.predictions.bias"],
               [[3, 4, -100, 7, 1], [2, -100, 6, -100, -100]], 3)
