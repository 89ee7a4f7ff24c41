#!/usr/bin/env bash
# One GPU run for the FP8 KV cache (issue 23, --kv-cache-dtype fp8): the
# kernels rebuilt with CUDA 13 (sm_90 PTX, from the carried kernel files),
# the cuda conformance suite's WriteKV/Attention cases (FP8 ones included)
# in every attention mode, the FP8 graph test, the fixtures with FP8 KV on
# cuda vs cpu, decode attention bf16 vs FP8 side by side, and
# infer/offline-512 (bench-1b) with --kv-cache-dtype auto and fp8
# interleaved in the same call. Build on the development machine (from a
# clean tree of the commit to measure):
#
#	mkdir -p devrun-kvfp8 && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o devrun-kvfp8/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o devrun-kvfp8/fixtures.test ./gpu/cuda/fixtures
#	go build -trimpath -ldflags="-s -w" -o devrun-kvfp8/sluice ./cmd/sluice
#	tar -C devrun-kvfp8 -czf devrun-kvfp8/bin.tgz cuda.test fixtures.test sluice
#	tar -C gpu/kernels -czf devrun-kvfp8/kernels.tgz build.sh sluice.cu train.cuh quant.cuh lora.cuh
#
# then `bash bench/infer/devrun-kvfp8.sh` through the device tool with carry
# ["devrun-kvfp8"]. $OUT gets build.log, suite.log, fixtures.log, bench.log,
# infer.log and summary.txt.
cd "$(dirname "$0")/../.."
bin=$PWD/devrun-kvfp8
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
summ() {
	grep -E -- "^\s*--- (FAIL)|^(ok|FAIL|PASS)|panic" "$1" | head -20
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1"), skipped: $(grep -c -- '--- SKIP' "$1")"
}
{
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	mkdir -p /tmp/k /tmp/ptx && tar -C /tmp/k -xzf "$bin/kernels.tgz"
	nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
	"$nvcc" --version | tail -1
	if "$nvcc" -ptx -O3 -std=c++17 -arch=compute_90 -o /tmp/ptx/sluice_sm90.ptx /tmp/k/sluice.cu >"$OUT/build.log" 2>&1; then
		export SLUICE_CUDA_PTX=/tmp/ptx/sluice_sm90.ptx
		stamp "PTX: CUDA 13 sm_90"
	else
		tail -20 "$OUT/build.log"; export SLUICE_CUDA_PTX=$bin/sluice_sm90_nvcc118.ptx
		stamp "PTX: nvcc 11.8 (CUDA 13 build failed)"
	fi
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	stamp "== suite"
	timeout 45 "$bin/cuda.test" -test.v -test.run 'TestConformance$/(WriteKV|WriteKVF8|Attention|Errors)$' >"$OUT/suite.log" 2>&1; echo "rc=$?"
	timeout 25 "$bin/cuda.test" -test.v -test.run 'TestKVCacheFP8Graph|TestGraph$' >>"$OUT/suite.log" 2>&1; echo "rc=$?"
	timeout 50 "$bin/cuda.test" -test.v -test.run 'TestConformanceAttnModes/.*/(WriteKVF8|Attention)$' >>"$OUT/suite.log" 2>&1; echo "rc=$?"
	summ "$OUT/suite.log"
	echo "f8 cases, largest share of the tolerance: $(grep -A30 -E -- '-f8' "$OUT/suite.log" | grep -o 'worst error [0-9.]*' | sort -k3 -n | tail -1)"
	grep -E "input set" "$OUT/suite.log" | head -2
	stamp "== fixtures, FP8 KV on cuda vs cpu"
	(cd gpu/cuda/fixtures && timeout 60 "$bin/fixtures.test" -test.v -test.run 'TestKVCacheFP8' >"$OUT/fixtures.log" 2>&1; echo "rc=$?")
	summ "$OUT/fixtures.log"
	grep -E "relative error" "$OUT/fixtures.log" | head -4
	stamp "== decode attention, bf16 vs fp8 cache"
	timeout 40 "$bin/cuda.test" -test.run XXX -test.bench 'AttentionDecodeFP8' -test.benchtime 200x >"$OUT/bench.log" 2>&1; echo "rc=$?"
	grep -E "Benchmark|FAIL|panic" "$OUT/bench.log" | sed -E 's/ +/ /g'
	wait $model; tail -1 /tmp/model.log
	stamp "== infer/offline-512, auto and fp8 interleaved"
	for run in 1 2; do
		for kv in auto fp8; do
			echo "-- run $run --kv-cache-dtype $kv" | tee -a "$OUT/infer.log"
			timeout 40 "$bin/sluice" bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 \
				--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 --kv-cache-dtype $kv >>"$OUT/infer.log" 2>&1; echo "rc=$?"
		done
	done
	grep -E "^--|output tokens/s|total \(prompt|peak|preemptions|rc=|rror" "$OUT/infer.log"
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
