#!/usr/bin/env bash
# One GPU run for LoRA decode steps from CUDA graphs (issue 23): build the
# kernels from this tree's sources with the machine's nvcc (CUDA 13), run
# the graph-path tests on them (gpu/cuda: TestLoRAIndexedGraph, the by-value
# TestLoRAGraph and the LoRA conformance cases; infer/model: TestLoRAGraphs
# with SLUICE_TEST_DEVICE=cuda, replayed mixed-adapter steps against padded
# eager ones; gpu/cuda/fixtures: TestLoRABatchMatchesMerged), then
# infer/offline-512 on bench-1b, the base alone against 16 adapters of rank
# 16, interleaved (RUNS pairs, default 1, time allowing). Build on the
# development machine:
#
#	d=devrun-loragraph; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o $d/fixtures.test ./gpu/cuda/fixtures
#	go test -c -trimpath -ldflags="-s -w" -o $d/model.test ./infer/model
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -czf $d/bin.tgz cuda.test fixtures.test model.test sluice && (cd $d && rm cuda.test fixtures.test model.test sluice)
#
# then run `bash bench/infer/devrun-loragraph.sh` through the device tool
# with carry ["devrun-loragraph"]. $OUT: build.log, tests.log, infer.log,
# summary.txt, kernels.tgz (the rebuilt PTX, for the lead to commit).
# BUDGET (seconds, default 300) bounds the whole script.
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/devrun-loragraph
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
budget=${BUDGET:-300}
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
left() { echo $((budget - ($(date +%s) - t0))); }
summ() {
	grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic:|_test.go:[0-9]+: " "$1" | grep -v "worst error" | head -30
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1"), skipped: $(grep -c -- '--- SKIP' "$1")"
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	stamp "== kernels: gpu/kernels/build.sh with the machine's nvcc"
	k=$(mktemp -d)
	if ! timeout 150 bash gpu/kernels/build.sh "$k" >"$OUT/build.log" 2>&1; then
		tail -30 "$OUT/build.log"; echo "the kernel build failed: nothing else runs"; exit 1
	fi
	head -2 "$OUT/build.log"
	grep -A2 "lora" "$k/resources_sm90.txt" | grep -E "Compiling|registers|spill"
	tar -C "$k" -czf "$OUT/kernels.tgz" .
	export SLUICE_CUDA_PTX=$k/sluice_sm90.ptx SLUICE_CUDA_LORA_GRAPHS=1
	stamp "== gpu/cuda LoRA tests"
	(cd gpu/cuda && timeout 60 "$bin/cuda.test" -test.v -test.run 'TestLoRAIndexedGraph|TestLoRAGraph$|TestConformance$/LoRA' >"$OUT/tests.log" 2>&1); echo "rc=$?"
	stamp "== infer/model TestLoRAGraphs on cuda"
	(cd infer/model && SLUICE_TEST_DEVICE=cuda timeout 60 "$bin/model.test" -test.v -test.run 'TestLoRAGraphs' >>"$OUT/tests.log" 2>&1); echo "rc=$?"
	stamp "== gpu/cuda/fixtures TestLoRABatchMatchesMerged"
	(cd gpu/cuda/fixtures && timeout 60 "$bin/fixtures.test" -test.v -test.run 'TestLoRABatchMatchesMerged' >>"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	wait $model; tail -1 /tmp/model.log
	python3 bench/infer/make_bench_loras.py --model /tmp/bench-1b --n 16 --rank 16 --out /tmp/loras 2>&1 | tail -1
	mods=""
	for i in $(seq 0 15); do mods="$mods a$i=/tmp/loras/a$i"; done
	common=(bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 --max-tokens 128
		--max-num-seqs 256 --max-num-batched-tokens 8192)
	one() { # label, flags...
		local label=$1
		shift
		[ "$(left)" -gt 45 ] || { echo "-- $label: skipped (time)"; return; }
		echo "-- $label" >>"$OUT/infer.log"
		timeout $(($(left) - 5)) "$bin/sluice" "${common[@]}" "$@" >>"$OUT/infer.log" 2>&1; echo "rc=$?" >>"$OUT/infer.log"
		echo "$label: $(tail -12 "$OUT/infer.log" | grep -E -o "[0-9.]+ output tokens/s|peak device memory [0-9]+ MiB|LoRA[^;]*adapters[^;]*|[0-9]+ steps, [^;]*" | tr '\n' ' ')"
	}
	stamp "== infer/offline-512, bench-1b: base vs 16 adapters of rank 16 (CUDA 13 PTX)"
	for run in $(seq 1 "${RUNS:-1}"); do
		one "run $run base"
		one "run $run loras16" --lora-modules "${mods# }" --use-loras --max-loras 16 --max-lora-rank 16
	done
	stamp "done"
} 2>&1 | tee /tmp/summary.txt
cp /tmp/summary.txt "$OUT/summary.txt"
