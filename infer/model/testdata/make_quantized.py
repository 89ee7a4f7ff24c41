#!/usr/bin/env python3
"""Write the quantized checkpoints that infer/model's quantization tests load,
each with the float reference its dequantized weights give.

Usage (from the module root, on the GPU machine: PyTorch 2.11, transformers
5.17, safetensors; no network, no GPU needed):

    python3 infer/model/testdata/make_quantized.py --out OUT/quant

It reads the float32 fixtures in fixtures/ (make_fixtures.py) and writes
OUT/<model>-<format>/ for each format below: config.json (the fixture's, with
the quantization_config a hub checkpoint of that format carries),
generation_config.json, model.safetensors in the format's on-disk layout, and
expected.json.

Formats (the layouts vLLM loads):
  fp8      quant_method "fp8" (AutoFP8 / vLLM Fp8Config): weight F8_E4M3
           [out, in] and a per-tensor float32 weight_scale of shape [];
           activation_scheme dynamic.
  ct-fp8-channel / ct-fp8-tensor
           quant_method "compressed-tensors", format "float-quantized"
           (llm-compressor FP8_DYNAMIC): weight F8_E4M3, weight_scale BF16
           [out, 1] (strategy channel) or [1] (strategy tensor).
  awq      quant_method "awq", version "gemm" (AutoAWQ WQLinear_GEMM):
           qweight I32 [in, out/8] packed along out in the order
           0 2 4 6 1 3 5 7, qzeros I32 [in/g, out/8] packed the same way,
           scales F16 [in/g, out]; w = (q − z)·s.
  gptq     quant_method "gptq", checkpoint_format "gptq" (AutoGPTQ v1):
           qweight I32 [in/8, out] packed along in, low nibble first, qzeros
           I32 [in/g, out/8] packed along out holding z − 1, scales F16
           [in/g, out], g_idx I32 [in]; w = (q − (z_stored + 1))·s[g_idx].
           desc_act true (act_order: columns quantized in the order of
           decreasing diag(XᵀX) over calibration tokens, so g_idx is not
           sorted), sym false.
  gptq-sym gptq with desc_act false, sym true (one model only).

The quantized values are round-to-nearest within each group or channel with
each algorithm's own scale rule (AWQ's and GPTQ's min/max grids, FP8's
amax/448): what the Go side must get right is the layout and the
dequantization, which do not depend on how the values were searched for
(AWQ's activation-aware scale search and GPTQ's error feedback change the
numbers, not the format). Group size is 32, as the fixtures' widths (64, 96,
160, ...) are not multiples of 128; the Go kernels take any group size.

Linear layers of every decoder block are quantized; embeddings, norms,
biases and the LM head stay float, stored in the checkpoint's dtype (BF16
for FP8 formats, F16 for int4, as hub checkpoints are).

expected.json holds, computed by transformers in float32 on the CPU with the
fixture model whose weights are replaced by the dequantized checkpoint's
(each tensor read back from the packed bytes, so a packing mistake shows):
  "logits": for the fixture's 3 logit prompts, the last position's full
    logits row and the sum and absolute sum of all logits;
  "greedy": for 3 seeded prompts, 24 greedy tokens (EOS ignored) and each
    step's top-1/top-2 margin over the largest |logit|; prompts are drawn
    until every margin is at least 1e-3.
  For fp8 only, "load_fp8": the same records for the float32 fixture whose
    linear weights are quantized at load time per tensor (scale amax/448 in
    float32, w/scale clamped to ±448 and rounded to E4M3), as
    `--quantization fp8` does; other weights stay float32.
"""
import argparse
import copy
import json
import os
import shutil
import sys
import traceback

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures as mf  # noqa: E402

mf.NEW_TOKENS = 24
mf.GREEDY_LENS = [1, 9, 17]
GROUP = 32
FP8_MAX = 448.0
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE = [0, 4, 1, 5, 2, 6, 3, 7]

FORMATS = {
    "fp8": dict(other=torch.bfloat16),
    "ct-fp8-channel": dict(other=torch.bfloat16, strategy="channel"),
    "ct-fp8-tensor": dict(other=torch.bfloat16, strategy="tensor", only=["llama3"]),
    "awq": dict(other=torch.float16),
    "gptq": dict(other=torch.float16, desc_act=True, sym=False),
    "gptq-sym": dict(other=torch.float16, desc_act=False, sym=True, only=["llama2"]),
}


def is_linear(name):
    return name.startswith("model.layers.") and any(name.endswith(l + ".weight") for l in LINEARS)


# ---- FP8 ----

def fp8_quant(w, scale):
    """w [out, in] float32, scale broadcastable: the E4M3 tensor."""
    return (w / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def fp8_tensors(name, w, spec):
    base = name[:-len(".weight")]
    if spec.get("strategy") == "channel":
        scale = (w.abs().amax(dim=1, keepdim=True) / FP8_MAX).to(torch.bfloat16)
    elif spec.get("strategy") == "tensor":
        scale = (w.abs().max() / FP8_MAX).reshape(1).to(torch.bfloat16)
    else:
        scale = (w.abs().max() / FP8_MAX).to(torch.float32)  # shape []
    s32 = scale.float()
    if s32.dim() == 1:
        s32 = s32.reshape(1, 1)
    q = fp8_quant(w, s32)
    deq = q.float() * s32
    return {base + ".weight": q, base + ".weight_scale": scale.contiguous()}, deq


def load_fp8(w):
    """--quantization fp8: per-tensor, float32 scale."""
    scale = w.abs().max() / FP8_MAX
    return fp8_quant(w, scale).float() * scale


# ---- int4 packing ----

def pack_cols(ints, order=None):
    """ints [r, c] in 0..15 → int32 [r, c/8], packing 8 consecutive columns
    per word, nibble i holding column 8j + order[i]."""
    r, c = ints.shape
    order = order or list(range(8))
    u = ints.to(torch.int64).reshape(r, c // 8, 8)
    out = torch.zeros(r, c // 8, dtype=torch.int64)
    for i in range(8):
        out |= (u[:, :, order[i]] & 0xF) << (4 * i)
    return to_i32(out)


def unpack_cols(packed, order=None):
    r, w = packed.shape
    order = order or list(range(8))
    p = packed.to(torch.int64) & 0xFFFFFFFF
    out = torch.zeros(r, w, 8, dtype=torch.int64)
    for i in range(8):
        out[:, :, order[i]] = (p >> (4 * i)) & 0xF
    return out.reshape(r, w * 8)


def pack_rows(ints):
    """ints [r, c] → int32 [r/8, c], 8 consecutive rows per word, low first."""
    r, c = ints.shape
    u = ints.to(torch.int64).reshape(r // 8, 8, c)
    out = torch.zeros(r // 8, c, dtype=torch.int64)
    for i in range(8):
        out |= (u[:, i, :] & 0xF) << (4 * i)
    return to_i32(out)


def unpack_rows(packed):
    w, c = packed.shape
    p = packed.to(torch.int64) & 0xFFFFFFFF
    out = torch.zeros(w, 8, c, dtype=torch.int64)
    for i in range(8):
        out[:, i, :] = (p >> (4 * i)) & 0xF
    return out.reshape(w * 8, c)


def to_i32(u64):
    u64 = u64 & 0xFFFFFFFF
    return torch.where(u64 >= 2**31, u64 - 2**32, u64).to(torch.int32)


# ---- AWQ ----

def awq_tensors(name, w, spec):
    base = name[:-len(".weight")]
    out_f, in_f = w.shape
    g = w.reshape(out_f, in_f // GROUP, GROUP)
    mx, mn = g.amax(dim=2), g.amin(dim=2)
    scales = ((mx - mn).clamp(min=1e-5) / 15).to(torch.float16)  # [out, groups]
    s = scales.float()
    zeros = (-torch.round(mn / s)).clamp(0, 15)
    q = (torch.round(g / s[:, :, None]) + zeros[:, :, None]).clamp(0, 15).to(torch.int64)
    q = q.reshape(out_f, in_f)
    qweight = pack_cols(q.t().contiguous(), AWQ_ORDER)  # [in, out/8]
    qzeros = pack_cols(zeros.t().contiguous().to(torch.int64), AWQ_ORDER)  # [groups, out/8]
    sc = scales.t().contiguous()  # [groups, out]
    # Dequantize from the packed tensors, as a kernel reads them.
    qi = unpack_cols(qweight, AWQ_ORDER)  # [in, out]
    zi = unpack_cols(qzeros, AWQ_ORDER)  # [groups, out]
    assert torch.equal(qi, q.t()), "awq pack"
    gi = torch.arange(in_f) // GROUP
    deq = ((qi - zi[gi]).float() * sc.float()[gi]).t().contiguous()
    return {base + ".qweight": qweight, base + ".qzeros": qzeros, base + ".scales": sc}, deq


# ---- GPTQ ----

def gptq_tensors(name, w, spec, hdiag):
    base = name[:-len(".weight")]
    out_f, in_f = w.shape
    if spec["desc_act"]:
        perm = torch.argsort(hdiag, descending=True, stable=True)
    else:
        perm = torch.arange(in_f)
    invperm = torch.argsort(perm)
    wp = w[:, perm]
    ngroups = in_f // GROUP
    gp = wp.reshape(out_f, ngroups, GROUP)
    xmin = gp.amin(dim=2).clamp(max=0)
    xmax = gp.amax(dim=2).clamp(min=0)
    if spec["sym"]:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    both0 = (xmin == 0) & (xmax == 0)
    xmin, xmax = torch.where(both0, -1.0, xmin), torch.where(both0, 1.0, xmax)
    scale = (xmax - xmin) / 15
    if spec["sym"]:
        zero = torch.full_like(scale, 8.0)
    else:
        zero = torch.round(-xmin / scale)
    scales = scale.to(torch.float16)  # [out, groups]
    s = scales.float()
    q = (torch.round(gp / s[:, :, None]) + zero[:, :, None]).clamp(0, 15).to(torch.int64)
    q = q.reshape(out_f, in_f)[:, invperm]  # back to the checkpoint's column order
    g_idx = (invperm // GROUP).to(torch.int32)  # group of each original column
    qweight = pack_rows(q.t().contiguous())  # [in/8, out]
    qzeros = pack_cols((zero.t().contiguous().to(torch.int64) - 1), None)  # [groups, out/8], z−1
    sc = scales.t().contiguous()  # [groups, out]
    qi = unpack_rows(qweight)  # [in, out]
    zi = unpack_cols(qzeros) + 1  # a stored −1 (z = 0) reads back as 15 + 1, as the kernels do
    assert torch.equal(qi, q.t()), "gptq pack"
    gi = g_idx.to(torch.int64)
    deq = ((qi - zi[gi]).float() * sc.float()[gi]).t().contiguous()
    return {base + ".qweight": qweight, base + ".qzeros": qzeros, base + ".scales": sc,
            base + ".g_idx": g_idx}, deq


def calib_hdiag(model, spec):
    """diag(XᵀX) of each linear's input over seeded random tokens."""
    diags, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.startswith("model.layers."):
            def hook(m, inp, out, name=name):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double()
                diags[name] = diags.get(name, 0) + (x * x).sum(0)
            hooks.append(mod.register_forward_hook(hook))
    gen = torch.Generator().manual_seed(spec["seed"] * 31)
    with torch.no_grad():
        for _ in range(4):
            model(torch.randint(0, spec["vocab"], (1, 64), generator=gen))
    for h in hooks:
        h.remove()
    return diags


def quant_config(fmt, spec):
    if fmt == "fp8":
        return {"quant_method": "fp8", "activation_scheme": "dynamic"}
    if fmt.startswith("ct-fp8"):
        return {
            "quant_method": "compressed-tensors", "format": "float-quantized",
            "quantization_status": "compressed", "kv_cache_scheme": None,
            "ignore": ["lm_head"],
            "config_groups": {"group_0": {
                "targets": ["Linear"],
                "weights": {"num_bits": 8, "type": "float", "symmetric": True, "dynamic": False,
                            "strategy": spec["strategy"], "group_size": None, "observer": "minmax"},
                "input_activations": {"num_bits": 8, "type": "float", "symmetric": True,
                                      "dynamic": True, "strategy": "token", "observer": None},
                "output_activations": None,
            }},
        }
    if fmt == "awq":
        return {"quant_method": "awq", "bits": 4, "group_size": GROUP, "zero_point": True,
                "version": "gemm", "modules_to_not_convert": None}
    return {"quant_method": "gptq", "bits": 4, "group_size": GROUP, "desc_act": spec["desc_act"],
            "sym": spec["sym"], "checkpoint_format": "gptq", "static_groups": False,
            "true_sequential": True, "damp_percent": 0.01}


def g7(x):
    return float("%.7g" % x)


def record(model, logit_prompts, greedy_prompts):
    logits = []
    for ids in logit_prompts:
        out = mf.logits_of(model, ids)
        logits.append(dict(tokens=ids, last=[g7(v) for v in out[-1].tolist()],
                           sum=float(out.double().sum()), abs_sum=float(out.double().abs().sum())))
    runs = []
    for prompt in greedy_prompts:
        seq, margins = list(prompt), []
        for _ in range(mf.NEW_TOKENS):
            row = mf.logits_of(model, seq)[-1]
            top = torch.topk(row, 2)
            margins.append(float("%.3g" % float((top.values[0] - top.values[1]) / row.abs().max())))
            seq.append(int(top.indices[0]))
        runs.append(dict(prompt=prompt, tokens=seq[len(prompt):], margins=margins))
    return dict(logits=logits, greedy=runs)


def with_weights(model, new):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name in new:
                p.copy_(new[name])
    return m


def make(spec, fmt, fspec, out):
    src = os.path.join(HERE, "fixtures", spec["name"])
    _, model_cls = mf.classes(spec["arch"])
    model = model_cls.from_pretrained(src).to(torch.float32).eval()
    fexp = json.load(open(os.path.join(src, "expected.json")))
    logit_prompts = [r["tokens"] for r in fexp["f32"]["logits"]]

    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hd = calib_hdiag(model, spec) if fmt.startswith("gptq") else {}
    tensors, ref = {}, {}
    other = fspec["other"]
    for name, w in sd.items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if is_linear(name):
            if fmt == "fp8" or fmt.startswith("ct-fp8"):
                t, deq = fp8_tensors(name, w, fspec)
            elif fmt == "awq":
                t, deq = awq_tensors(name, w, fspec)
            else:
                t, deq = gptq_tensors(name, w, fspec, hd[name[:-len(".weight")]].float())
            tensors.update(t)
            ref[name] = deq
        else:
            tensors[name] = w.to(other).contiguous()
            ref[name] = w.to(other).float()
    qmodel = with_weights(model, ref)

    d = os.path.join(out, "%s-%s" % (spec["name"], fmt))
    os.makedirs(d, exist_ok=True)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["dtype"] = "bfloat16" if other == torch.bfloat16 else "float16"
    cfg["quantization_config"] = quant_config(fmt, fspec)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    shutil.copy(os.path.join(src, "generation_config.json"), d)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})

    pg = torch.Generator().manual_seed(spec["seed"] * 15485863)
    greedy_prompts = mf.pick_greedy_prompts(qmodel, spec, pg)
    exp = dict(name="%s-%s" % (spec["name"], fmt), base=spec["name"], format=fmt,
               torch=torch.__version__, group_size=GROUP, new_tokens=mf.NEW_TOKENS,
               ref=record(qmodel, logit_prompts, greedy_prompts))
    if fmt == "fp8":
        lref = {n: (load_fp8(w) if is_linear(n) else w) for n, w in sd.items()}
        lmodel = with_weights(model, lref)
        exp["load_fp8"] = record(lmodel, logit_prompts, mf.pick_greedy_prompts(lmodel, spec, pg))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, separators=(",", ":"))
        f.write("\n")
    print("%s: %d tensors, %d bytes, greedy margins %s" % (
        exp["name"], len(tensors), os.path.getsize(os.path.join(d, "model.safetensors")),
        ["%.1e" % min(r["margins"]) for r in exp["ref"]["greedy"]]), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("names", nargs="*", help="models to make (default: all)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    failed = []
    for spec in mf.MODELS:
        if args.names and spec["name"] not in args.names:
            continue
        for fmt, fspec in FORMATS.items():
            if "only" in fspec and spec["name"] not in fspec["only"]:
                continue
            try:
                make(spec, fmt, fspec, args.out)
            except Exception:
                traceback.print_exc()
                failed.append("%s-%s" % (spec["name"], fmt))
    if failed:
        sys.exit("failed: %s" % failed)


if __name__ == "__main__":
    main()
