"""Create the random-weight benchmark models of WORKLOADS.md (bench-1b, bench-8b).

Usage: python3 make_bench_model.py --size 1b --out DIR
Weights: normal(0, 0.02), seed 0, bf16, saved with save_pretrained (safetensors).
"""
import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SIZES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=4096,
               rms_norm_eps=1e-5, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
               rms_norm_eps=1e-5, tie_word_embeddings=False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=SIZES, default="1b")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(**SIZES[args.size], bos_token_id=128000, eos_token_id=128001, torch_dtype="bfloat16")
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, 0.02)
    model.save_pretrained(args.out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"bench-{args.size}: {n / 1e9:.2f} B parameters -> {args.out}")


if __name__ == "__main__":
    main()
