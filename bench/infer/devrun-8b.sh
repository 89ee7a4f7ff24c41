#!/usr/bin/env bash
# One GPU run for infer/offline-512-8b (and infer/offline-512 again in the
# same call): the machine's two ceilings (device copy bandwidth, bf16 GEMM
# rate, measured with torch), sluice bench infer on bench-8b and bench-1b (two
# runs each) and the transformers peer on both. Build on the development machine:
#
#	mkdir -p devrun-8b && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o devrun-8b/sluice ./cmd/sluice
#	tar -C devrun-8b -czf devrun-8b/bin.tgz sluice && rm devrun-8b/sluice
#
# then run `bash bench/infer/devrun-8b.sh` through the device tool with carry
# ["devrun-8b"] (ONLY_8B=1 leaves out bench-1b). $OUT gets one log per stage and summary.txt.
cd "$(dirname "$0")/../.."
bin=$PWD/devrun-8b
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
bench() { # model, runs
	for i in $(seq "$2"); do
		timeout 150 "$bin/sluice" bench infer --model "$1" --device cuda --prompts 512 --min-len 128 --max-len 512 \
			--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 >>"$OUT/infer.log" 2>&1; echo "rc=$?" >>"$OUT/infer.log"
	done
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	python3 bench/infer/make_bench_model.py --size 8b --out /tmp/bench-8b >/tmp/model8.log 2>&1 &
	m8=$!
	[ -n "${ONLY_8B:-}" ] || { python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1; tail -1 /tmp/model1.log; }
	wait $m8; tail -1 /tmp/model8.log
	stamp "== ceilings" # after the 8B model is written, so nothing else holds the GPU
	python3 bench/infer/ceilings.py 2>&1 | tee "$OUT/ceilings.log"
	stamp "== sluice bench-8b"
	echo "-- bench-8b" >>"$OUT/infer.log"; bench /tmp/bench-8b 2
	[ -n "${ONLY_8B:-}" ] || { stamp "== sluice bench-1b"; echo "-- bench-1b" >>"$OUT/infer.log"; bench /tmp/bench-1b 2; }
	grep -E "^--|output tokens/s|total \(prompt|peak|load|steps|rc=|rror|engine started" "$OUT/infer.log"
	if [ -z "${ONLY_8B:-}" ]; then
		stamp "== transformers bench-1b"
		PYTHONUNBUFFERED=1 timeout 120 python3 bench/infer/hf_generate.py --model /tmp/bench-1b --batch 128 >>"$OUT/hf.log" 2>&1; echo "rc=$?"
	fi
	stamp "== transformers bench-8b"
	PYTHONUNBUFFERED=1 timeout 200 python3 bench/infer/hf_generate.py --model /tmp/bench-8b --batch 256 >>"$OUT/hf.log" 2>&1; rc=$?; echo "rc=$rc"
	if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then # out of memory at 256 (an 80 GB card): batch 128
		grep -m1 -i "memory" "$OUT/hf.log"
		stamp "== transformers bench-8b, batch 128"
		PYTHONUNBUFFERED=1 timeout 150 python3 bench/infer/hf_generate.py --model /tmp/bench-8b --batch 128 >>"$OUT/hf.log" 2>&1; echo "rc=$?"
	fi
	grep transformers "$OUT/hf.log"
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
