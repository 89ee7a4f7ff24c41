#!/usr/bin/env bash
# One GPU run for train/sft-1b (issue 13): `sluice train` full fine-tune of
# bench-1b on the cuda backend, sequence length 1024, global batch 32
# (micro-batch MICRO x ACCUM accumulation, default 8 x 4 as the peer's), and the PyTorch peer (eager and
# torch.compile, fused AdamW, bf16 autocast) in the same call. Build on the
# development machine:
#
#	mkdir -p devrun-sft && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o devrun-sft/sluice ./cmd/sluice
#	tar -C devrun-sft -czf devrun-sft/bin.tgz sluice && rm devrun-sft/sluice
#
# then run `bash bench/train/devrun-sft.sh` through the device tool with carry
# ["devrun-sft"]. STEPS (default 6) sets the optimizer steps of each run;
# SKIP_COMPILE=1 leaves out the torch.compile peer; PRECISION (default
# bf16) is sluice's --precision; SLUICE_TIMEOUT and TORCH_TIMEOUT bound the
# runs (seconds). A /tmp/bench-1b already there is used as it is.
# $OUT gets sluice.jsonl (one line per step), torch.jsonl and summary.txt.
cd "$(dirname "$0")/../.."
bin=${BIN:-$PWD/devrun-sft} # BIN: another bundle's folder, already unpacked
[ -x "$bin/sluice" ] || tar -C "$bin" -xzf "$bin/bin.tgz"
steps=${STEPS:-6}
micro=${MICRO:-8} accum=${ACCUM:-4}
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	[ -f /tmp/bench-1b/config.json ] || python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1
	tail -1 /tmp/model1.log
	python3 -c "
import json, random
r = random.Random(0)
with open('/tmp/sft.jsonl', 'w') as f:
    for i in range(32 * ($steps + 2)):
        f.write(json.dumps({'input_ids': [r.randrange(128256) for _ in range(1024)]}) + '\n')
"
	stamp "== sluice train, cuda, --precision ${PRECISION:-bf16}, full fine-tune, seq 1024, batch $micro x accum $accum"
	timeout "${SLUICE_TIMEOUT:-220}" "$bin/sluice" train --model /tmp/bench-1b --device cuda --precision "${PRECISION:-bf16}" --data /tmp/sft.jsonl --max-seq-len 1024 \
		--batch-size "$micro" --grad-accum "$accum" --steps "$steps" --shuffle=false --peak-flops 989e12 --out /tmp/sft-out \
		>"$OUT/sluice.jsonl" 2>"$OUT/sluice.err"; echo "rc=$?"
	tail -3 "$OUT/sluice.err"; cat "$OUT/sluice.jsonl"
	stamp "== pytorch eager"
	PYTHONUNBUFFERED=1 timeout "${TORCH_TIMEOUT:-110}" python3 bench/train/torch_sft.py --model /tmp/bench-1b --steps "$steps" >>"$OUT/torch.jsonl" 2>"$OUT/torch.err"; echo "rc=$?"
	if [ -z "${SKIP_COMPILE:-}" ]; then
		stamp "== pytorch torch.compile"
		PYTHONUNBUFFERED=1 timeout 170 python3 bench/train/torch_sft.py --model /tmp/bench-1b --steps "$steps" --compile >>"$OUT/torch.jsonl" 2>>"$OUT/torch.err"; echo "rc=$?"
	fi
	tail -3 "$OUT/torch.err"; cat "$OUT/torch.jsonl"
	stamp done
} 2>&1 | tee "$OUT/summary.txt"
