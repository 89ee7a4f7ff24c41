"""Write random LoRA adapters in PEFT's layout for a bench model (the multi-LoRA workload).

Usage: python3 make_bench_loras.py --model DIR --n 16 --rank 16 --out DIR
Writes OUT/a0 .. OUT/a{n-1}, each adapter_config.json and adapter_model.safetensors (bf16),
targeting every linear projection (q, k, v, o, gate, up, down) of every layer, as
infer/model/loratest.Write does for f32 models: A uniform in ±1/sqrt(in), B uniform in ±0.5
(PEFT starts B at zero, which would make an adapter a no-op), lora_alpha = 2·rank, seed i.
Without torch (the development machine) it writes f32 tensors with Python's own random and a
hand-written safetensors file: slow, for the tiny fixture models, to check the layout there.
"""
import argparse
import json
import os
import random
import struct

try:
    import torch
    from safetensors.torch import save_file
except ImportError:
    torch = None


def uniform(g, _, rows, cols, scale):
    """A [rows, cols] tensor uniform in ±scale: bf16 torch with torch, else a list of f32."""
    if torch is not None:
        return ((torch.rand(rows, cols, generator=g) * 2 - 1) * scale).to(torch.bfloat16)
    return [(2 * g.random() - 1) * scale for _ in range(rows * cols)], [rows, cols]


def save(ts, path):
    if torch is not None:
        save_file(ts, path)
        return
    header, blobs, off = {}, [], 0
    for name, (vals, shape) in ts.items():
        b = struct.pack(f"<{len(vals)}f", *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        c = json.load(f)
    h, im, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = {  # module: (section, out, in)
        "q_proj": ("self_attn", q, h), "k_proj": ("self_attn", kv, h), "v_proj": ("self_attn", kv, h),
        "o_proj": ("self_attn", h, q), "gate_proj": ("mlp", im, h), "up_proj": ("mlp", im, h),
        "down_proj": ("mlp", h, im),
    }
    r = args.rank
    for i in range(args.n):
        g = torch.Generator().manual_seed(i) if torch is not None else random.Random(i)
        ts = {}
        for layer in range(L):
            for mod, (sec, o, n_in) in shapes.items():
                stem = f"base_model.model.model.layers.{layer}.{sec}.{mod}"
                ts[stem + ".lora_A.weight"] = uniform(g, 0, r, n_in, 1 / n_in ** 0.5)
                ts[stem + ".lora_B.weight"] = uniform(g, 0, o, r, 0.5)
        d = os.path.join(args.out, f"a{i}")
        os.makedirs(d, exist_ok=True)
        save(ts, os.path.join(d, "adapter_model.safetensors"))
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": list(shapes),
                       "bias": "none", "fan_in_fan_out": False}, f)
    print(f"{args.n} adapters of rank {r} over {L} layers -> {args.out}")


if __name__ == "__main__":
    main()
