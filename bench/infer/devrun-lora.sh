#!/usr/bin/env bash
# One GPU run for multi-LoRA on cuda (issue 23): build the kernels with
# CUDA 13 from the carried copy, run the LoRA tests (conformance cases, the
# graph test, infer/model's mixed-adapter batch against the merged models
# on the GPU), BenchmarkLoRA (one LoRA call against its projection's base
# MatMul), then the workload: `sluice bench infer` on bench-1b, 512
# requests over 16 adapters of rank 16 (bench/infer/make_bench_loras.py,
# every projection) against the base alone, interleaved base / loras in the
# same call, plus the base with graphs off (SLUICE_CUDA_GRAPHS=0: steps with
# adapters run eagerly). Build on the development machine:
#
#	mkdir -p devrun-lora && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o devrun-lora/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o devrun-lora/fixtures.test ./gpu/cuda/fixtures
#	go build -trimpath -ldflags="-s -w" -o devrun-lora/sluice ./cmd/sluice
#	nvcc -ptx -O3 -std=c++17 -arch=compute_90 -o devrun-lora/sluice_sm90.ptx gpu/kernels/sluice.cu
#	tar -C devrun-lora -czf devrun-lora/bin.tgz cuda.test fixtures.test sluice sluice_sm90.ptx
#	tar -C gpu/kernels -czf devrun-lora/kernels.tgz sluice.cu train.cuh quant.cuh lora.cuh build.sh
#
# then run `bash bench/infer/devrun-lora.sh` through the device tool with
# carry ["devrun-lora"]. The tests run on the carried PTX (nvcc 11.8, JIT)
# while the kernels build; the PTX built here (CUDA 13) gives every number,
# the carried one only when that build fails.
# RUNS is the number of interleaved base/loras pairs (2).
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/devrun-lora
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
summ() {
	grep -E -- "^\s*--- (FAIL)|^(ok|FAIL|PASS)|panic" "$1" | head -30
	grep -E "\.go:[0-9]+: " "$1" | grep -v -E "worst error|: gpu: |device:|relative error|agree|cuda − cpu" | head -30
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1")"
}
{
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	stamp "start"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	k=/tmp/k && mkdir -p $k && tar -C $k -xzf "$bin/kernels.tgz"
	bash $k/build.sh /tmp/ptx >"$OUT/build.log" 2>&1 &
	build=$!
	stamp "== LoRA tests (the carried PTX, nvcc 11.8, JIT)"
	export SLUICE_CUDA_PTX=$bin/sluice_sm90.ptx
	timeout 100 "$bin/cuda.test" -test.v -test.run 'TestConformance$/LoRA|TestLoRAGraph|TestGraph$' >"$OUT/tests.log" 2>&1; echo "rc=$?"
	(cd gpu/cuda/fixtures && timeout 100 "$bin/fixtures.test" -test.v -test.run 'TestLoRABatchMatchesMerged' >>"$OUT/tests.log" 2>&1; echo "rc=$?")
	summ "$OUT/tests.log"
	if wait $build; then
		export SLUICE_CUDA_PTX=/tmp/ptx/sluice_sm90.ptx; echo "timings: PTX of the CUDA 13 build ($(nvcc --version | tail -1))"
		grep -A2 "lora" /tmp/ptx/resources_sm90.txt | grep -E "Compiling|registers|spill"
	else
		tail -20 "$OUT/build.log"; echo "timings: the carried PTX (nvcc 11.8): the CUDA 13 build failed"
	fi
	stamp "== BenchmarkLoRA"
	timeout 60 "$bin/cuda.test" -test.run XXX -test.bench BenchmarkLoRA -test.benchtime 3x >"$OUT/bench.log" 2>&1; echo "rc=$?"
	grep -E "Benchmark|FAIL|panic" "$OUT/bench.log" | sed -E 's/ +/ /g'
	wait $model; tail -1 /tmp/model.log
	python3 bench/infer/make_bench_loras.py --model /tmp/bench-1b --n 16 --rank 16 --out /tmp/loras 2>&1 | tail -1
	mods=""
	for i in $(seq 0 15); do mods="$mods a$i=/tmp/loras/a$i"; done
	common=(bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 --max-tokens 128
		--max-num-seqs 256 --max-num-batched-tokens 8192)
	stamp "== infer: base vs 16 adapters"
	for run in $(seq 1 "${RUNS:-2}"); do
		echo "-- run $run base" >>"$OUT/infer.log"
		timeout 60 "$bin/sluice" "${common[@]}" >>"$OUT/infer.log" 2>&1; echo "rc=$?"
		echo "-- run $run loras16" >>"$OUT/infer.log"
		timeout 90 "$bin/sluice" "${common[@]}" --lora-modules "${mods# }" --use-loras --max-loras 16 --max-lora-rank 16 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	done
	echo "-- base, graphs off" >>"$OUT/infer.log"
	SLUICE_CUDA_GRAPHS=0 timeout 60 "$bin/sluice" "${common[@]}" >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	stamp "done"
	echo "== summary"
	grep -E "^--|output tokens/s|LoRA adapters| steps, |peak device|rror" "$OUT/infer.log"
} 2>&1 | tee "$OUT/summary.txt"
