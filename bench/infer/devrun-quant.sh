#!/usr/bin/env bash
# One GPU run for issue 23's quantized products (gpu/cuda/quant.go):
#   test:  gpu/cuda's QMatMul tests (every path forced, captures, the
#          conformance case) and infer/model's quantized checkpoints on cuda,
#          then BenchmarkQMatMul (bench-8b's gate_up shape) with CUDA 13's PTX;
#   bench: infer/offline-512 on bench-1b, then -8b, in bf16, --quantization fp8 and AWQ int4
#          (bench-8b quantized here by bench/infer/quantize_awq.py), one
#          process after another on the same GPU.
# Build on the development machine (module root):
#
#	d=devrun-quant; mkdir -p $d/k && cp gpu/kernels/sluice.cu gpu/kernels/*.cuh gpu/kernels/build.sh $d/k/
#	nvcc -ptx -O3 -std=c++17 -arch=compute_90 -o $d/sluice_sm90.ptx $d/k/sluice.cu
#	tar -C $d/k -czf $d/kernels.tgz . && rm -r $d/k
#	CGO_ENABLED=0 go test -c -o $d/cuda.test ./gpu/cuda && CGO_ENABLED=0 go test -c -o $d/model.test ./infer/model
#	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -czf $d/bin.tgz cuda.test model.test sluice sluice_sm90.ptx && rm $d/cuda.test $d/model.test $d/sluice $d/sluice_sm90.ptx
#
# then `bash bench/infer/devrun-quant.sh test|bench|all` through the device
# tool with carry ["devrun-quant"]. $OUT gets one log per stage and summary.txt.
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/devrun-quant
tar -C "$bin" -xzf "$bin/bin.tgz"
mode=${1:-all}
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
bench() { # label, model, extra flags
	echo "-- $1" >>"$OUT/infer.log"
	timeout 150 "$bin/sluice" bench infer --model "$2" --device cuda --prompts 512 --min-len 128 --max-len 512 \
		--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 $3 >>"$OUT/infer.log" 2>&1
	echo "rc=$?" >>"$OUT/infer.log"
}
quantbench() { # size: bf16, --quantization fp8 and AWQ int4 of bench-$1
	export SLUICE_CUDA_PTX=/tmp/ptx/sluice_sm90.ptx
	stamp "== sluice bench-$1 bf16"; bench "$1 bf16" /tmp/bench-$1 ""
	stamp "== sluice bench-$1 fp8"; bench "$1 fp8" /tmp/bench-$1 "--quantization fp8"
	stamp "== awq quantize bench-$1"
	python3 bench/infer/quantize_awq.py --model /tmp/bench-$1 --out /tmp/bench-$1-awq 2>&1 | tail -2
	stamp "== sluice bench-$1 awq"; bench "$1 awq" /tmp/bench-$1-awq ""
	grep -E "^--|output tokens/s|peak|load|weight|KV|rc=|rror" "$OUT/infer.log" | tail -24
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	# CUDA 13's PTX from the carried kernel sources, for the timings.
	mkdir -p /tmp/k && tar -C /tmp/k -xzf "$bin/kernels.tgz"
	(bash /tmp/k/build.sh /tmp/ptx >"$OUT/ptx.log" 2>&1; echo "ptx build rc=$?" >>"$OUT/ptx.log") &
	ptx=$!
	if [ "$mode" != test ]; then # the models, while the tests run
		python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1 &
		m1=$!
		python3 bench/infer/make_bench_model.py --size 8b --out /tmp/bench-8b >/tmp/model8.log 2>&1 &
		m8=$!
	fi
	if [ "$mode" != bench ]; then
		stamp "== gpu/cuda quant tests (nvcc 11.8 PTX, JIT)"
		(cd gpu/cuda && SLUICE_CUDA_PTX=$bin/sluice_sm90.ptx timeout 100 "$bin/cuda.test" -test.v \
			-test.run 'TestTrampoline16|TestQuantPaths|TestQuantCapture|TestConformance$/QMatMul' >"$OUT/cuda.log" 2>&1; echo "cuda.test rc=$?")
		grep -E "^(--- |ok|FAIL|PASS)|^    --- FAIL|^        --- FAIL|panic" "$OUT/cuda.log" | head -30
		grep -cE -- "--- PASS" "$OUT/cuda.log"
		stamp "== infer/model quantized checkpoints on cuda"
		(cd infer/model && SLUICE_TEST_DEVICE=cuda SLUICE_CUDA_PTX=$bin/sluice_sm90.ptx timeout 80 "$bin/model.test" -test.v \
			-test.run 'TestQuantizedDevice' >"$OUT/model.log" 2>&1; echo "model.test rc=$?")
		grep -E "^(--- |ok|FAIL|PASS)|^    --- |panic" "$OUT/model.log" | head -30
		grep -E "relative error" "$OUT/model.log" | awk '{print $NF}' | sort -g | tail -3
	fi
	wait $ptx; tail -2 "$OUT/ptx.log"
	if [ "$mode" != test ]; then
		stamp "== waiting for the models"; wait $m1 $m8; tail -1 /tmp/model1.log; tail -1 /tmp/model8.log
		quantbench 1b
	fi
	if [ "$mode" != bench ]; then
		stamp "== BenchmarkQMatMul (CUDA 13 PTX)"
		(cd gpu/cuda && SLUICE_CUDA_PTX=/tmp/ptx/sluice_sm90.ptx timeout 60 "$bin/cuda.test" -test.run X -test.bench QMatMul \
			-test.benchtime 20x >"$OUT/qbench.log" 2>&1; echo "bench rc=$?")
		grep -E "Benchmark|FAIL|rror" "$OUT/qbench.log"
	fi
	[ "$mode" != test ] && quantbench 8b
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
