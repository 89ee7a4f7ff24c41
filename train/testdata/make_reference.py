#!/usr/bin/env python3
"""Record what PyTorch computes when training the infer fixture models, for
train's Go tests to compare against (f32, 1e-4 relative).

Usage (from the module root, on a machine with PyTorch and transformers; the
GPU machine has PyTorch 2.11 and transformers 5.17, no network needed):

    python3 train/testdata/make_reference.py --out train/testdata/reference

For each fixture model under infer/model/testdata/fixtures it writes
OUT/<name>.json with, all computed on the CPU in float32 with eager attention:

  "grad": one fixed batch (3 right-padded rows of seeded random ids, lengths
      12, 9 and 5, padding id 0), its loss as
      cross_entropy(logits[:, :-1], labels[:, 1:], ignore_index=-100) with
      labels = ids and padding set to -100 (no attention mask: padding sits
      after every real token, so causal attention keeps it out of the real
      positions), and for every parameter (transformers' names, tied
      lm_head folded into embed_tokens) its shape, the sum, the L2 norm, the
      largest |g|, and 32 elements at flat indices i*numel//32;
  "adamw": 20 steps of torch.optim.AdamW (lr 3e-3, betas (0.9, 0.999), eps
      1e-8, weight decay 0.01) with a cosine schedule after 5 warmup steps
      (transformers' get_cosine_schedule_with_warmup, 20 training steps),
      clip_grad_norm_ at 1.0, one batch of 2 rows per step (the rows are
      recorded: 2 of length 10, the second with its last 3 tokens padding);
      per step the loss before the update, the lr used and the total grad
      norm before clipping;
  "sgd": 8 steps of torch.optim.SGD (lr 0.05, momentum 0.9, no weight decay,
      constant schedule, clipping at 1.0) on the first 8 of those batches.
"""
import argparse
import json
import math
import os
import traceback

import torch
import torch.nn.functional as F
import transformers

FIXTURES = "infer/model/testdata/fixtures"
NAMES = ["llama2", "llama3", "mistral", "qwen2", "qwen3"]
SAMPLES = 32


def load(name):
    path = os.path.join(FIXTURES, name)
    m = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager")
    m.train()
    return m


def batch(gen, vocab, lens, T):
    ids = torch.randint(0, vocab, (len(lens), T), generator=gen)
    labels = ids.clone()
    for i, n in enumerate(lens):
        ids[i, n:] = 0
        labels[i, n:] = -100
    return ids, labels


def loss_of(m, ids, labels):
    logits = m(input_ids=ids).logits
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)


def summary(g):
    flat = g.detach().reshape(-1).double()
    n = flat.numel()
    idx = [i * n // SAMPLES for i in range(SAMPLES)] if n >= SAMPLES else list(range(n))
    return dict(shape=list(g.shape), sum=flat.sum().item(), norm=flat.norm().item(),
                absmax=flat.abs().max().item(), index=idx, values=[flat[i].item() for i in idx])


def cosine(step, warmup, total):
    # transformers.get_cosine_schedule_with_warmup's lambda (num_cycles 0.5).
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def train_curve(name, batches, opt_name, steps):
    m = load(name)
    params = [p for p in m.parameters() if p.requires_grad]
    if opt_name == "adamw":
        base = 3e-3
        opt = torch.optim.AdamW(params, lr=base, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        sched = lambda s: cosine(s, 5, steps)
    else:
        base = 0.05
        opt = torch.optim.SGD(params, lr=base, momentum=0.9, weight_decay=0.0)
        sched = lambda s: 1.0
    out = []
    for s in range(steps):
        ids, labels = batches[s]
        lr = base * sched(s)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = loss_of(m, ids, labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        out.append(dict(step=s + 1, loss=loss.item(), lr=lr, grad_norm=norm.item()))
    return out


def reference(name):
    m = load(name)
    vocab = m.config.vocab_size
    gen = torch.Generator().manual_seed(1234)
    ids, labels = batch(gen, vocab, [12, 9, 5], 12)
    loss = loss_of(m, ids, labels)
    loss.backward()
    grads = {}
    for pname, p in m.named_parameters():
        grads[pname] = summary(p.grad)
    batches = [batch(gen, vocab, [10, 7], 10) for _ in range(20)]
    res = dict(
        model=name,
        torch=torch.__version__,
        transformers=transformers.__version__,
        grad=dict(ids=ids.tolist(), lens=[12, 9, 5], loss=loss.item(), params=grads),
        batches=[dict(ids=b[0].tolist(), lens=[10, 7]) for b in batches],
        adamw=dict(lr=3e-3, weight_decay=0.01, warmup=5, schedule="cosine", max_grad_norm=1.0,
                   steps=train_curve(name, batches, "adamw", 20)),
        sgd=dict(lr=0.05, momentum=0.9, schedule="constant", max_grad_norm=1.0,
                 steps=train_curve(name, batches, "sgd", 8)),
    )
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="train/testdata/reference")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    for name in NAMES:
        try:
            res = reference(name)
        except Exception:
            traceback.print_exc()
            continue
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(res, f)
        print(name, "loss", res["grad"]["loss"], "adamw last", res["adamw"]["steps"][-1]["loss"], flush=True)


if __name__ == "__main__":
    main()
