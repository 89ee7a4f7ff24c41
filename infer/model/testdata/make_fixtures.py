#!/usr/bin/env python3
"""Write the reference models and expectations that infer/model's Go tests
compare against.

Usage (from the module root, on a machine with PyTorch and transformers; the
GPU machine has PyTorch 2.11 and transformers 5.17, no network needed):

    python3 infer/model/testdata/make_fixtures.py --out infer/model/testdata/fixtures

For each model below it builds a random-weight transformers model (seeded),
saves it with save_pretrained (config.json, generation_config.json,
safetensors; one model sharded with model.safetensors.index.json) into
OUT/<name>/, and records in OUT/<name>/expected.json, computed by transformers
on the CPU:

  - "inv_freq": the rotary inverse frequencies transformers uses;
  - for "f32" (the saved float32 weights) and "bf16" (the same model cast to
    bfloat16, for the CUDA backend later):
      "logits": for 3 seeded random prompts of different lengths, the full
        logits row of the last position, the top-5 ids and values of every
        position, and the sum and absolute sum of all logits;
      "greedy": for 4 seeded random prompts, the 32 tokens of a greedy
        continuation with end-of-sequence ignored (argmax of a full forward
        pass per step), with the smallest top-1/top-2 logit gap seen, and
        whether transformers' own generate() agrees.

Greedy prompts are drawn until the float32 continuation never has a
top-1/top-2 gap below 1e-3 of the largest logit, so that a correct engine
cannot flip an argmax on rounding alone; the draw is seeded, so the choice is
reproducible.

Weights are random: transformers' own initialization with a wider
initializer_range than the default (so logits are not flat), then every norm
weight set to 1 + 0.2·N(0,1) and every bias to 0.1·N(0,1), since the
defaults (ones, zeros) would hide a norm or bias that is not applied.
"""
import argparse
import copy
import inspect
import json
import os
import sys
import traceback

import torch
import transformers
from transformers import GenerationConfig

MARGIN = 1e-3  # smallest acceptable (top1 − top2) / max |logit| on greedy steps
NEW_TOKENS = 32
LOGIT_LENS = [5, 19, 37]
GREEDY_LENS = [1, 8, 16, 29]

MODELS = [
    # Llama 3.2 style: GQA, tied embeddings, llama3 rope scaling whose original
    # context (64) puts the 8 frequencies of a 16-wide head in all three bands.
    dict(name="llama3", arch="Llama", seed=101, vocab=512, hidden=64, layers=2, heads=4,
         kv_heads=2, inter=160, tie=True, eps=1e-5, bos=509, eos=511, gen_eos=[510, 511],
         rope=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_position_embeddings=64)),
    # Llama 2 style: multi-head attention, untied, sharded into two files.
    dict(name="llama2", arch="Llama", seed=102, vocab=384, hidden=96, layers=3, heads=6,
         kv_heads=6, inter=256, tie=False, eps=1e-6, bos=1, eos=2, gen_eos=2,
         rope=dict(rope_type="default", rope_theta=10000.0), shard="1MB"),
    dict(name="mistral", arch="Mistral", seed=103, vocab=256, hidden=64, layers=2, heads=8,
         kv_heads=2, inter=192, tie=False, eps=1e-5, bos=1, eos=2, gen_eos=2,
         rope=dict(rope_type="default", rope_theta=1000000.0), extra=dict(sliding_window=None)),
    # Qwen2: q/k/v biases, tied, 4 layers, a larger vocabulary.
    dict(name="qwen2", arch="Qwen2", seed=104, vocab=1024, hidden=64, layers=4, heads=4,
         kv_heads=2, inter=128, tie=True, eps=1e-6, bos=1020, eos=1023, gen_eos=[1021, 1023],
         rope=dict(rope_type="default", rope_theta=1000000.0), extra=dict(use_sliding_window=False)),
    # Qwen3: q/k norms and an explicit head_dim (32) that is not hidden/heads (16).
    dict(name="qwen3", arch="Qwen3", seed=105, vocab=768, hidden=64, layers=2, heads=4,
         kv_heads=2, head_dim=32, inter=192, tie=True, eps=1e-6, bos=None, eos=767, gen_eos=[766, 767],
         rope=dict(rope_type="default", rope_theta=1000000.0), extra=dict(use_sliding_window=False)),
]


def classes(arch):
    return (getattr(transformers, arch + "Config"), getattr(transformers, arch + "ForCausalLM"))


def make_config(spec):
    cfg_cls, _ = classes(spec["arch"])
    kw = dict(
        vocab_size=spec["vocab"], hidden_size=spec["hidden"], num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"], num_key_value_heads=spec["kv_heads"],
        intermediate_size=spec["inter"], max_position_embeddings=512, rms_norm_eps=spec["eps"],
        tie_word_embeddings=spec["tie"], initializer_range=0.08, hidden_act="silu",
        bos_token_id=spec["bos"], eos_token_id=spec["eos"],
    )
    if "head_dim" in spec:
        kw["head_dim"] = spec["head_dim"]
    kw.update(spec.get("extra", {}))
    rope = spec["rope"]
    params = inspect.signature(cfg_cls.__init__).parameters
    if "rope_parameters" in params:
        kw["rope_parameters"] = dict(rope)
    else:
        kw["rope_theta"] = rope["rope_theta"]
        if rope["rope_type"] != "default":
            kw["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    cfg = cfg_cls(**kw)
    # Whatever the constructor did with the rope arguments, make the config
    # hold them in the form this transformers version reads.
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and (rp.get("rope_type") != rope["rope_type"]
                                 or rp.get("rope_theta") != rope["rope_theta"]):
        cfg.rope_parameters = dict(rope)
    return cfg


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def f9(x):
    """float → the shortest decimal that round-trips as float32."""
    return float("%.9g" % x)


@torch.no_grad()
def logits_of(model, ids):
    return model(torch.tensor([ids])).logits[0].float()


@torch.no_grad()
def greedy(model, prompt):
    seq = list(prompt)
    margin = float("inf")
    for _ in range(NEW_TOKENS):
        row = logits_of(model, seq)[-1]
        top = torch.topk(row, 2)
        margin = min(margin, float((top.values[0] - top.values[1]) / row.abs().max()))
        seq.append(int(top.indices[0]))
    return seq[len(prompt):], margin


@torch.no_grad()
def generate_agrees(model, prompt, want):
    """Whether generate() (KV cache) gives the same tokens, up to an early stop
    on an end-of-sequence token it may still honour."""
    try:
        gc = GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             generation_config=gc)
        got = out[0, len(prompt):].tolist()
        return bool(len(got) > 0 and got == want[:len(got)]), len(got)
    except Exception as e:  # recorded, not fatal: the reference is the loop above
        return "error: %s" % e, 0


def record(model, spec, logit_prompts, greedy_prompts):
    logits = []
    for ids in logit_prompts:
        out = logits_of(model, ids)
        top = torch.topk(out, 5, dim=-1)
        logits.append(dict(
            tokens=ids,
            last=[f9(v) for v in out[-1].tolist()],
            top5_ids=top.indices.tolist(),
            top5_vals=[[f9(v) for v in r] for r in top.values.tolist()],
            sum=float(out.double().sum()),
            abs_sum=float(out.double().abs().sum()),
        ))
    runs = []
    for prompt in greedy_prompts:
        toks, margin = greedy(model, prompt)
        agrees, n = generate_agrees(model, prompt, toks)
        runs.append(dict(prompt=prompt, tokens=toks, min_margin=margin, generate_agrees=agrees,
                         generate_len=n))
    return dict(logits=logits, greedy=runs)


def pick_greedy_prompts(model, spec, gen):
    prompts = []
    for n in GREEDY_LENS:
        best = None
        for _ in range(60):
            p = torch.randint(0, spec["vocab"], (n,), generator=gen).tolist()
            _, m = greedy(model, p)
            if best is None or m > best[1]:
                best = (p, m)
            if m >= MARGIN:
                break
        if best[1] < MARGIN:
            print("  warning: %s: best greedy margin for length %d is %.2e" % (spec["name"], n, best[1]))
        prompts.append(best[0])
    return prompts


def inv_freq_of(model):
    for name, buf in model.named_buffers():
        if name.endswith("inv_freq"):
            return [f9(v) for v in buf.float().tolist()]
    return None


def make(spec, out):
    _, model_cls = classes(spec["arch"])
    torch.manual_seed(spec["seed"])
    cfg = make_config(spec)
    model = model_cls(cfg).to(torch.float32).eval()
    gen = torch.Generator().manual_seed(spec["seed"] * 7919)
    randomize(model, gen)
    model.generation_config = GenerationConfig(bos_token_id=spec["bos"], eos_token_id=spec["gen_eos"])

    d = os.path.join(out, spec["name"])
    os.makedirs(d, exist_ok=True)
    kw = {"max_shard_size": spec["shard"]} if spec.get("shard") else {}
    model.save_pretrained(d, **kw)

    # Record from the saved files, as the Go side reads them.
    model = model_cls.from_pretrained(d).to(torch.float32).eval()

    pg = torch.Generator().manual_seed(spec["seed"] * 104729)
    logit_prompts = [torch.randint(0, spec["vocab"], (n,), generator=pg).tolist() for n in LOGIT_LENS]
    greedy_prompts = pick_greedy_prompts(model, spec, pg)

    exp = dict(
        name=spec["name"], architecture=type(model).__name__,
        transformers=transformers.__version__, torch=torch.__version__,
        files=sorted(os.listdir(d)), new_tokens=NEW_TOKENS, inv_freq=inv_freq_of(model),
        f32=record(model, spec, logit_prompts, greedy_prompts),
    )
    bf = copy.deepcopy(model).to(torch.bfloat16)
    exp["bf16"] = record(bf, spec, logit_prompts, greedy_prompts)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, separators=(",", ":"))
        f.write("\n")
    g = exp["f32"]["greedy"]
    print("%s: %s, files %s, greedy margins %s, generate agrees %s" % (
        spec["name"], exp["architecture"], exp["files"],
        ["%.1e" % r["min_margin"] for r in g], [r["generate_agrees"] for r in g]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("names", nargs="*", help="models to make (default: all)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    failed = []
    for spec in MODELS:
        if args.names and spec["name"] not in args.names:
            continue
        try:
            make(spec, args.out)
        except Exception:
            traceback.print_exc()
            failed.append(spec["name"])
    if failed:
        sys.exit("failed: %s" % failed)


if __name__ == "__main__":
    main()
