"""The PyTorch peer of train/sft-1b: a full fine-tune of a Hugging Face model
directory on random token sequences, f32 master weights with bf16 autocast,
AdamW (fused), gradient clipping at 1.0, global batch = micro-batch x
accumulation sequences of --seq tokens. Prints one JSON line per mode with
tokens/s over the timed steps (after --warmup steps) and MFU against
--peak-flops (6 x parameters x tokens/s).

Usage: python3 torch_sft.py --model DIR [--compile] [--seq 1024] [--micro 8] [--accum 4] [--steps 10]
"""
import argparse, json, time
import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--micro", type=int, default=8)
    ap.add_argument("--accum", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--peak-flops", type=float, default=989e12)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).cuda()
    model.config.use_cache = False
    n = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    step_fn = model
    if a.compile:
        step_fn = torch.compile(model)
    vocab = model.config.vocab_size
    g = torch.Generator(device="cuda").manual_seed(0)
    times = []
    for s in range(a.warmup + a.steps):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        for _ in range(a.accum):
            ids = torch.randint(0, vocab, (a.micro, a.seq), device="cuda", generator=g)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = step_fn(input_ids=ids, labels=ids).loss / a.accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(); times.append(time.perf_counter() - t0)
    t = sorted(times[a.warmup:])[len(times[a.warmup:]) // 2]
    tps = a.micro * a.accum * a.seq / t
    print(json.dumps({"peer": "pytorch " + ("torch.compile" if a.compile else "eager"), "params": n,
                      "median_step_s": t, "tokens_per_s": tps, "mfu": 6 * n * tps / a.peak_flops,
                      "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
                      "steps": a.steps, "micro": a.micro, "accum": a.accum, "seq": a.seq}), flush=True)


if __name__ == "__main__":
    main()
