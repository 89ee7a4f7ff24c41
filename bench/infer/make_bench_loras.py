"""Write random LoRA adapters in PEFT's layout for a bench model (the multi-LoRA workload).

Usage: python3 make_bench_loras.py --model DIR --n 16 --rank 16 --out DIR
Writes OUT/a0 .. OUT/a{n-1}, each adapter_config.json and adapter_model.safetensors (bf16),
targeting every linear projection (q, k, v, o, gate, up, down) of every layer, as
infer/model/loratest.Write does for f32 models: A uniform in ±1/sqrt(in), B uniform in ±0.5
(PEFT starts B at zero, which would make an adapter a no-op), lora_alpha = 2·rank, seed i.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file


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
        g = torch.Generator().manual_seed(i)
        ts = {}
        for layer in range(L):
            for mod, (sec, o, n_in) in shapes.items():
                stem = f"base_model.model.model.layers.{layer}.{sec}.{mod}"
                a = (torch.rand(r, n_in, generator=g) * 2 - 1) / n_in ** 0.5
                b = (torch.rand(o, r, generator=g) * 2 - 1) * 0.5
                ts[stem + ".lora_A.weight"] = a.to(torch.bfloat16)
                ts[stem + ".lora_B.weight"] = b.to(torch.bfloat16)
        d = os.path.join(args.out, f"a{i}")
        os.makedirs(d, exist_ok=True)
        save_file(ts, os.path.join(d, "adapter_model.safetensors"))
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": list(shapes),
                       "bias": "none", "fan_in_fan_out": False}, f)
    print(f"{args.n} adapters of rank {r} over {L} layers -> {args.out}")


if __name__ == "__main__":
    main()
