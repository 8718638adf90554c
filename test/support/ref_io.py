"""File formats for the PyTorch reference: safetensors (read and write, by hand), HF model folders and the
base64 tensor encoding of the JSON contract.

Follows the safetensors format description (8-byte little-endian header length, a JSON header of
{name: {dtype, shape, data_offsets}} plus optional "__metadata__", then the raw little-endian bytes) and
HF's folder layout (config.json + model.safetensors, or model.safetensors.index.json with shards).
"""
import base64
import json
import os
import struct

import numpy as np
import torch

# safetensors dtype -> (numpy dtype used to read the bytes, bytes per element). BF16 is read as raw
# 16-bit words and widened by hand, because numpy has no bfloat16.
_READ = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("?"), 1),
}


class ReferenceError(Exception):
    """An input, config or checkpoint the reference refuses; the message says what and how to fix it."""


def _bf16_to_f32(words):
    # A bfloat16 is the top half of a float32: shift the 16 bits up and reinterpret.
    return (words.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    """Return {name: torch.Tensor}; floats are widened to float32, integers become int64."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ReferenceError(f"{path}: file is {len(raw)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ReferenceError(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _READ:
            raise ReferenceError(f"{path}: tensor {name} has dtype {dtype}; supported: {sorted(_READ)}")
        np_dtype, size = _READ[dtype]
        shape = [int(s) for s in info["shape"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * size or end > len(data):
            raise ReferenceError(
                f"{path}: tensor {name} ({dtype} {shape}) has data_offsets [{begin}, {end}], "
                f"expected {count * size} bytes inside a data section of {len(data)} bytes"
            )
        arr = np.frombuffer(data[begin:end], dtype=np_dtype, count=count).reshape(shape)
        if dtype == "BF16":
            arr = _bf16_to_f32(arr)
        if arr.dtype.kind == "f":
            t = torch.from_numpy(arr.astype(np.float32))
        elif arr.dtype.kind == "b":
            t = torch.from_numpy(arr.copy())
        else:
            t = torch.from_numpy(arr.astype(np.int64))
        out[name] = t
    return out


_WRITE = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64",
          np.dtype("int32"): "I32", np.dtype("float64"): "F64"}


def write_safetensors(path, tensors, bf16=()):
    """Write {name: np.ndarray | torch.Tensor}; names listed in `bf16` are stored as BF16 (truncated)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name]
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        arr = np.ascontiguousarray(arr)
        if name in bf16:
            blob = (arr.astype("<f4").view(np.uint32) >> 16).astype("<u2").tobytes()
            dtype = "BF16"
        else:
            dtype = _WRITE[arr.dtype]
            blob = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    head = json.dumps(header).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)


def load_folder(model_dir):
    """Read an HF folder: returns (config dict, {name: tensor}) from one file or an index of shards."""
    cfg_path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise ReferenceError(f"{model_dir}: no config.json; an HF model folder needs config.json + model.safetensors")
    with open(cfg_path, "r", encoding="utf-8") as f:
        config = json.load(f)
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.isfile(single):
        return config, read_safetensors(single)
    if os.path.isfile(index):
        with open(index, "r", encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        state = {}
        for shard in sorted(set(weight_map.values())):
            state.update(read_safetensors(os.path.join(model_dir, shard)))
        return config, state
    raise ReferenceError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json is present")


def encode_tensor(t):
    """{shape, data: base64 of float32 little-endian} - the JSON contract's tensor encoding."""
    arr = t.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4")
    return {"shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_tensor(obj):
    """Inverse of encode_tensor, as a float32 numpy array."""
    raw = base64.b64decode(obj["data"])
    return np.frombuffer(raw, dtype="<f4").reshape(obj["shape"]).astype(np.float32)
