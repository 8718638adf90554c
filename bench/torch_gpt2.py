"""Bench baselines in Python: PyTorch CPU timings and an ONNX export of the same GPT-2 checkpoint.

Run by bench/engine.ts with Debian's /usr/bin/python3 (python3-torch); never used by the library.
The model is a compact GPT-2 with HF's parameter names (the semantics of transformers'
modeling_gpt2.py, as test/support/ref_gpt2.py), written so that torch.onnx.export can trace it with a
dynamic sequence and cache length: per-layer past keys/values in, present keys/values out.

  python3 torch_gpt2.py time   --model DIR --threads 2 [--tokens 16] [--train-batch 4]
  python3 torch_gpt2.py export --model DIR --out model.onnx
  python3 torch_gpt2.py blas   --threads 2      (numpy matmul GFLOP/s and the BLAS it runs on)
Prints one JSON object on stdout.
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "support"))


def loaded_blas():
    """Names of the BLAS libraries mapped into this process (what numpy/torch really call)."""
    names = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                base = os.path.basename(line.strip().split(" ")[-1])
                if any(s in base for s in ("blas", "mkl", "blis", "atlas")):
                    names.add(base)
    except OSError:
        pass
    return sorted(names)


def matmul_gflops(np, m, k, n, reps=10):
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(k, n).astype(np.float32)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * m * k * n / best / 1e9


def cmd_blas(args):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    out = {"python": sys.executable, "numpy": np.__version__}
    out["gflops_512x768x3072"] = round(matmul_gflops(np, 512, 768, 3072), 1)
    out["gflops_1024x1024x1024"] = round(matmul_gflops(np, 1024, 1024, 1024), 1)
    out["blas"] = loaded_blas()
    try:
        cfg = np.show_config(mode="dicts")
        out["blas_config"] = cfg.get("Build Dependencies", {}).get("blas", {}).get("name")
    except Exception:
        pass
    print(json.dumps(out))


def build_model(model_dir):
    import torch
    from torch import nn
    from ref_io import read_safetensors

    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    d, h, L, eps = c["n_embd"], c["n_head"], c["n_layer"], c.get("layer_norm_epsilon", 1e-5)
    inner = c.get("n_inner") or 4 * d
    drop = c.get("resid_pdrop", 0.1)

    class Conv1D(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(i, o))
            self.bias = nn.Parameter(torch.zeros(o))

        def forward(self, x):
            return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d, eps=eps)
            self.attn = nn.Module()
            self.attn.c_attn = Conv1D(d, 3 * d)
            self.attn.c_proj = Conv1D(d, d)
            self.ln_2 = nn.LayerNorm(d, eps=eps)
            self.mlp = nn.Module()
            self.mlp.c_fc = Conv1D(d, inner)
            self.mlp.c_proj = Conv1D(inner, d)
            self.drop = nn.Dropout(drop)

        def forward(self, x, pk, pv, mask):
            b, t = x.shape[0], x.shape[1]
            q, k, v = self.attn.c_attn(self.ln_1(x)).split(d, dim=2)
            q, k, v = (z.reshape(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
            k = torch.cat([pk, k], dim=2)
            v = torch.cat([pv, v], dim=2)
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // h)
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
            a = torch.matmul(self.drop(torch.softmax(s, dim=-1)), v).transpose(1, 2).reshape(b, t, d)
            x = x + self.drop(self.attn.c_proj(a))
            x = x + self.drop(self.mlp.c_proj(gelu_new(self.mlp.c_fc(self.ln_2(x)))))
            return x, k, v

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.Module()
            self.transformer.wte = nn.Embedding(c["vocab_size"], d)
            self.transformer.wpe = nn.Embedding(c["n_positions"], d)
            self.transformer.h = nn.ModuleList([Block() for _ in range(L)])
            self.transformer.ln_f = nn.LayerNorm(d, eps=eps)
            self.drop = nn.Dropout(c.get("embd_pdrop", 0.1))

        def forward(self, ids, *past):
            t = ids.shape[1]
            s = past[0].shape[2]
            pos = torch.arange(t, device=ids.device) + s
            x = self.drop(self.transformer.wte(ids) + self.transformer.wpe(pos)[None])
            mask = torch.arange(t + s)[None, :] <= pos[:, None]
            presents = []
            for i, blk in enumerate(self.transformer.h):
                x, k, v = blk(x, past[2 * i], past[2 * i + 1], mask)
                presents += [k, v]
            x = self.transformer.ln_f(x)
            return (torch.matmul(x, self.transformer.wte.weight.t()), *presents)

    m = GPT2()
    state = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    mine = dict(m.named_parameters())
    missing = sorted(set(mine) - set(state))
    if missing:
        raise SystemExit(f"torch_gpt2.py: checkpoint lacks {missing[:5]}")
    with torch.no_grad():
        for name, p in mine.items():
            p.copy_(state[name].to(p.dtype))
    return m, c


def empty_past(torch, c, batch=1):
    hd = c["n_embd"] // c["n_head"]
    return [torch.zeros(batch, c["n_head"], 0, hd) for _ in range(2 * c["n_layer"])]


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def cmd_time(args):
    import torch

    torch.set_num_threads(args.threads)
    model, c = build_model(args.model)
    V = c["vocab_size"]
    prompt = torch.tensor([[(i * 7919) % V for i in range(128)]])
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    model.eval()
    with torch.no_grad():
        runs = []
        for _ in range(4):
            t = time.perf_counter()
            model(prompt, *empty_past(torch, c))
            runs.append((time.perf_counter() - t) * 1e3)
        out["prefill_128_ms"] = round(median(runs[1:]), 1)
        res = model(prompt, *empty_past(torch, c))
        nxt = int(res[0][0, -1].argmax())
        past = list(res[1:])
        times = []
        for _ in range(args.tokens + 2):
            t = time.perf_counter()
            res = model(torch.tensor([[nxt]]), *past)
            nxt = int(res[0][0, -1].argmax())
            past = list(res[1:])
            times.append((time.perf_counter() - t) * 1e3)
        out["decode_ms_per_token"] = round(median(times[2:]), 2)
    if args.train_batch > 0:
        model.train()
        g = torch.Generator().manual_seed(7)
        ids = torch.randint(0, V, (args.train_batch, 128), generator=g)
        decay = [p for n, p in model.named_parameters() if not ("bias" in n or ".ln_" in n)]
        rest = [p for n, p in model.named_parameters() if "bias" in n or ".ln_" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-4)
        steps = []
        for _ in range(args.train_steps + 1):
            t = time.perf_counter()
            logits = model(ids, *empty_past(torch, c, args.train_batch))[0]
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps.append((time.perf_counter() - t) * 1e3)
        out["train_step_ms"] = round(median(steps[1:]), 1)
        out["train_loss"] = round(float(loss), 4)
    out["blas"] = loaded_blas()
    print(json.dumps(out))


def cmd_export(args):
    import torch

    model, c = build_model(args.model)
    model.eval()
    L = c["n_layer"]
    ids = torch.tensor([[1, 2, 3]])
    hd = c["n_embd"] // c["n_head"]
    past = [torch.zeros(1, c["n_head"], 2, hd) for _ in range(2 * L)]
    past_names = [f"past_{i // 2}_{'kv'[i % 2]}" for i in range(2 * L)]
    present_names = [f"present_{i // 2}_{'kv'[i % 2]}" for i in range(2 * L)]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    for n in past_names:
        axes[n] = {0: "batch", 2: "past"}
    for n in present_names:
        axes[n] = {0: "batch", 2: "total"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, *past), args.out, input_names=["input_ids", *past_names],
                          output_names=["logits", *present_names], dynamic_axes=axes, opset_version=14,
                          do_constant_folding=True)
    print(json.dumps({"onnx": args.out, "torch": torch.__version__, "layers": L}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["time", "export", "blas"])
    p.add_argument("--model")
    p.add_argument("--out")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-steps", type=int, default=3)
    a = p.parse_args()
    {"time": cmd_time, "export": cmd_export, "blas": cmd_blas}[a.cmd](a)


if __name__ == "__main__":
    main()
