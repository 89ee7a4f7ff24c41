#!/usr/bin/env python3
"""Quantize a float checkpoint (bench-8b) to AWQ int4 (group 128, zero points,
AutoAWQ's GEMM layout) with infer/model/testdata/make_quantized.py's packing,
on the GPU, for the quantized benchmarks of issue 23.

Usage: python3 bench/infer/quantize_awq.py --model /tmp/bench-8b --out /tmp/bench-8b-awq

Round-to-nearest per group (make_quantized.py's awq_tensors, GROUP set to
128): the layout and the dequantization are what the engine reads; no
activation-aware search (random weights have nothing to search for). Other
tensors are copied as they are; no reference logits are computed.
"""
import argparse
import glob
import json
import os
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../infer/model/testdata"))
import make_quantized as mq  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--group", type=int, default=128)
    args = ap.parse_args()
    mq.GROUP = args.group
    os.makedirs(args.out, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_default_device(dev)  # pack_cols' scratch on the same device as the weight
    weight_map = {}
    n_q = 0
    for shard in sorted(glob.glob(os.path.join(args.model, "*.safetensors"))):
        out = {}
        with safe_open(shard, "pt", device=dev) as f:
            for name in f.keys():
                t = f.get_tensor(name)
                if mq.is_linear(name):
                    ts, _ = mq.awq_tensors(name, t.float(), {})
                    out.update(ts)
                    n_q += 1
                else:
                    out[name] = t
        base = os.path.basename(shard)
        save_file({k: v.contiguous().cpu() for k, v in out.items()}, os.path.join(args.out, base), metadata={"format": "pt"})
        for k in out:
            weight_map[k] = base
        del out
    for p in glob.glob(os.path.join(args.model, "*")):
        b = os.path.basename(p)
        if b.endswith(".safetensors") or b == "model.safetensors.index.json" or b == "config.json":
            continue
        shutil.copy(p, args.out)
    if os.path.exists(os.path.join(args.model, "model.safetensors.index.json")):
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = mq.quant_config("awq", {})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(args.out, "*.safetensors")))
    print(f"awq g{args.group}: {n_q} linear weights quantized, {size / 2**30:.2f} GiB -> {args.out}")


if __name__ == "__main__":
    main()
