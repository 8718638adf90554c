#!/usr/bin/python3
"""PyTorch reference of HF transformers' semantics for the parity tests (GPT-2, BERT, RoBERTa, Llama).

An independent re-implementation written from HF's modeling code (transformers is not installed here):
it loads an HF folder strictly by HF's parameter names and writes logits, hidden states, cached-decoding
steps or gradients as JSON. Run with Debian's python3-torch (/usr/bin/python3); float32, eval mode.

  reference.py --model DIR --input in.json --output out.json [--grad] [--arch NAME]
  reference.py --selftest          checks every piece against naive loop/formula implementations

The JSON contract is documented in test/support/torch_ref.ts.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import ref_bert  # noqa: E402
import ref_gpt2  # noqa: E402
import ref_llama  # noqa: E402
from ref_common import load_strict  # noqa: E402
from ref_io import ReferenceError, encode_tensor, load_folder  # noqa: E402


def build_model(config, arch=None):
    """(module, LoadSpec) for config.model_type and architectures[0] (or `arch`)."""
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    arch = arch or (archs[0] if archs else None)
    if arch is None:
        raise ReferenceError(f"config.json has no 'architectures'; pass --arch (e.g. GPT2LMHeadModel)")
    if model_type == "gpt2":
        return ref_gpt2.build(config, arch)
    if model_type in ("bert", "roberta"):
        return ref_bert.build(config, arch, roberta=model_type == "roberta")
    if model_type == "llama":
        return ref_llama.build(config, arch)
    raise ReferenceError(f"config.model_type {model_type!r} not supported; supported: gpt2, bert, roberta, llama")


def load_model(model_dir, arch=None):
    """Build the module for an HF folder and load its safetensors strictly; returns (model, config)."""
    config, state = load_folder(model_dir)
    model, spec = build_model(config, arch)
    load_strict(model, state, spec, model_dir)
    model.eval()
    return model, config


def int_tensor(value, name, shape=None):
    """A rectangular [B, T] list of ints as int64; checks the shape against `shape` when given."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise ReferenceError(f"{name}: expected a non-empty list of lists of integers")
    if len({len(r) for r in value}) != 1 or not all(isinstance(x, int) for r in value for x in r):
        raise ReferenceError(f"{name}: rows must all have the same length and hold integers")
    t = torch.tensor(value, dtype=torch.int64)
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ReferenceError(f"{name}: shape {list(t.shape)}, expected {list(shape)}")
    return t


def _opt(d, key, where, shape=None):
    return int_tensor(d[key], f"{where}.{key}", shape) if d.get(key) is not None else None


def _encode_outputs(out, want_hidden, want_cache):
    res = {}
    for key in ("logits", "last_hidden_state", "pooler_output"):
        if key in out:
            res[key] = encode_tensor(out[key])
    if want_hidden:
        res["hidden_states"] = [encode_tensor(h) for h in out["hidden_states"]]
    if want_cache and "past" in out:
        res["cache"] = [{"key": encode_tensor(k), "value": encode_tensor(v)} for k, v in out["past"]]
    return res


def _call(model, ids, **kw):
    try:
        return model(ids, **kw)
    except IndexError as e:
        raise ReferenceError(f"an id is out of range for an embedding table ({e}); check input ids") from e


def run_forward(model, inp):
    """Full pass on `input_ids`, then each of `steps` with the cache carried along."""
    want_hidden, want_cache = bool(inp.get("output_hidden_states")), bool(inp.get("output_cache"))
    ids = int_tensor(inp.get("input_ids"), "input_ids")
    b, t = ids.shape
    mask = _opt(inp, "attention_mask", "input")
    with torch.no_grad():
        out = _call(model, ids, attention_mask=mask, token_type_ids=_opt(inp, "token_type_ids", "input", (b, t)),
                    position_ids=_opt(inp, "position_ids", "input", (b, t)))
        result = _encode_outputs(out, want_hidden, want_cache)
        if inp.get("steps"):
            past, total = out.get("past"), t
            if past is None:
                raise ReferenceError("'steps' needs a decoder (gpt2, llama); encoders have no cache")
            result["steps"] = []
            for i, step in enumerate(inp["steps"]):
                where = f"steps[{i}]"
                sids = int_tensor(step.get("input_ids"), f"{where}.input_ids")
                if sids.shape[0] != b:
                    raise ReferenceError(f"{where}.input_ids has batch {sids.shape[0]}, expected {b}")
                st = sids.shape[1]
                smask = _opt(step, "attention_mask", where, (b, total + st))
                if smask is None and mask is not None:
                    # As generate() does: the previous mask, extended with ones for the new tokens.
                    smask = torch.cat([mask, torch.ones(b, st, dtype=torch.int64)], dim=1)
                so = _call(model, sids, attention_mask=smask, position_ids=_opt(step, "position_ids", where, (b, st)),
                           past=past)
                past, mask, total = so["past"], smask, total + st
                result["steps"].append(_encode_outputs(so, want_hidden, want_cache))
    return result


def run_grad(model, inp):
    """Gradient of sum(log_softmax(logits)[labels]) (labels == -100 skipped) w.r.t. `grad_of` parameters."""
    if inp.get("steps"):
        raise ReferenceError("--grad does not combine with 'steps'; give one full input")
    params = {n: p for n, p in model.state_dict(keep_vars=True).items() if isinstance(p, torch.nn.Parameter)}
    names = inp.get("grad_of")
    if names == "all":
        names = sorted(params)
    if not isinstance(names, list) or not names:
        raise ReferenceError("--grad needs \"grad_of\": a list of parameter names (or \"all\")")
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ReferenceError(f"grad_of names not in the model: {unknown}; known names include {sorted(params)[:8]}")
    ids = int_tensor(inp.get("input_ids"), "input_ids")
    b, t = ids.shape
    out = _call(model, ids, attention_mask=_opt(inp, "attention_mask", "input"),
                token_type_ids=_opt(inp, "token_type_ids", "input", (b, t)),
                position_ids=_opt(inp, "position_ids", "input", (b, t)))
    if "logits" not in out:
        raise ReferenceError("--grad needs a model with a head (logits); this architecture has none")
    logits = out["logits"]
    labels = int_tensor(inp.get("labels"), "labels").reshape(-1)
    flat = logits.reshape(-1, logits.shape[-1])
    if labels.shape[0] != flat.shape[0]:
        raise ReferenceError(f"labels hold {labels.shape[0]} ids, expected one per logits row ({flat.shape[0]})")
    keep = labels != -100
    logp = torch.log_softmax(flat, dim=-1)
    objective = logp[keep].gather(1, labels[keep][:, None]).sum()
    model.zero_grad()
    objective.backward()
    result = _encode_outputs(out, False, False)
    result["objective"] = float(objective)
    result["grads"] = {
        n: encode_tensor(params[n].grad if params[n].grad is not None else torch.zeros_like(params[n]))
        for n in names
    }
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch reference of HF transformers' semantics")
    ap.add_argument("--model", help="HF model folder (config.json + model.safetensors)")
    ap.add_argument("--input", help="input JSON")
    ap.add_argument("--output", help="output JSON")
    ap.add_argument("--grad", action="store_true", help="gradients of the label log-likelihood")
    ap.add_argument("--arch", help="override config.architectures[0]")
    ap.add_argument("--selftest", action="store_true", help="check the reference against naive formulas")
    args = ap.parse_args(argv)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    try:
        if args.selftest:
            import ref_selftest
            return ref_selftest.main()
        if not (args.model and args.input and args.output):
            raise ReferenceError("--model, --input and --output are required (or --selftest)")
        with open(args.input, "r", encoding="utf-8") as f:
            inp = json.load(f)
        model, _ = load_model(args.model, args.arch)
        result = run_grad(model, inp) if args.grad else run_forward(model, inp)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(result, f)
        return 0
    except ReferenceError as e:
        print(f"reference.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
