"""The peer of `sluice bench infer`: transformers generate on the same workload.

infer/offline-512: N requests, prompt lengths uniform in [min, max], token ids uniform in
[0, vocab), exactly NEW output tokens each (greedy, EOS ignored), bf16, sdpa attention,
left padding, in batches of BATCH. Prints output tokens/s and total tokens/s over the run.
"""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", type=int, default=512)
    ap.add_argument("--min-len", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
    load = time.time() - t0
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(args.seed)
    lens = torch.randint(args.min_len, args.max_len + 1, (args.prompts,), generator=g).tolist()
    prompts = [torch.randint(0, vocab, (n,), generator=g) for n in lens]
    torch.cuda.synchronize()
    start = time.time()
    out_tokens = 0
    for i in range(0, args.prompts, args.batch):
        chunk = prompts[i:i + args.batch]
        width = max(len(p) for p in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, p in enumerate(chunk):  # left padding
            ids[j, width - len(p):] = p
            mask[j, width - len(p):] = 1
        out = model.generate(input_ids=ids.cuda(), attention_mask=mask.cuda(), max_new_tokens=args.new,
                             min_new_tokens=args.new, do_sample=False, eos_token_id=None, pad_token_id=0)
        out_tokens += (out.shape[1] - width) * len(chunk)
    torch.cuda.synchronize()
    wall = time.time() - start
    total = out_tokens + sum(lens)
    print(f"transformers generate batch {args.batch}: {args.prompts} prompts, {out_tokens} output tokens in {wall:.2f}s: "
          f"{out_tokens / wall:.1f} output tokens/s, {total / wall:.1f} total tokens/s; load {load:.1f}s; "
          f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
