#!/usr/bin/env bash
# The lead's closing GPU call of a stop, for when one call must do it all:
# the kernels rebuilt with CUDA 13 from the tree ($OUT/kernels.tgz: unpack
# into gpu/kernels/ and commit), meanwhile every cuda test on a PTX built
# here (nvcc 11.8, JIT: the gpu/cuda package, gpu/cuda/fixtures, the
# quantized checkpoints of infer/model, the train PyTorch tests), then
# infer/offline-512 on bench-1b with the CUDA 13 PTX: bf16, --quantization
# fp8, --kv-cache-dtype fp8, 16 LoRA adapters of rank 16 against the base,
# and (time left) bench/infer/devrun-spec.sh. Build on the development machine:
#
#	d=devrun-stop; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -o $d/cuda.test ./gpu/cuda && go test -c -o $d/fixtures.test ./gpu/cuda/fixtures
#	go test -c -o $d/model.test ./infer/model && go test -c -o $d/train.test ./train
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	nvcc -ptx -O3 -std=c++17 -arch=compute_90 -o $d/sluice_sm90.ptx gpu/kernels/sluice.cu
#	tar -C $d -czf $d/bin.tgz cuda.test fixtures.test model.test train.test sluice sluice_sm90.ptx && (cd $d && rm cuda.test fixtures.test model.test train.test sluice sluice_sm90.ptx)
#
# then run `bash bench/devrun-stop.sh` through the device tool with carry
# ["devrun-stop"]. $OUT: kernels.tgz, tests.log, infer.log, spec.log,
# summary.txt. BUDGET (seconds, default 480) bounds the whole script.
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/devrun-stop
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
budget=${BUDGET:-480}
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
left() { echo $((budget - ($(date +%s) - t0))); }
summ() {
	grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic:" "$1" | head -40
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1"), skipped: $(grep -c -- '--- SKIP' "$1")"
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	k=$(mktemp -d)
	bash gpu/kernels/build.sh "$k" >/tmp/build.log 2>&1 &
	build=$!
	export SLUICE_CUDA_PTX=$bin/sluice_sm90.ptx
	stamp "== gpu/cuda tests (nvcc 11.8 PTX)"
	(cd gpu/cuda && timeout 170 "$bin/cuda.test" -test.v -test.timeout 165s >"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	stamp "== gpu/cuda/fixtures"
	(cd gpu/cuda/fixtures && timeout 80 "$bin/fixtures.test" -test.v >/tmp/fix.log 2>&1); echo "rc=$?"
	summ /tmp/fix.log; cat /tmp/fix.log >>"$OUT/tests.log"
	stamp "== infer/model quantized checkpoints on cuda"
	(cd infer/model && SLUICE_TEST_DEVICE=cuda timeout 60 "$bin/model.test" -test.v -test.run 'TestQuantizedDevice' >/tmp/model-t.log 2>&1); echo "rc=$?"
	summ /tmp/model-t.log; cat /tmp/model-t.log >>"$OUT/tests.log"
	[ -x "$bin/train.test" ] && stamp "== train PyTorch tests on cuda" && (cd train && SLUICE_TEST_DEVICE=cuda timeout 60 "$bin/train.test" -test.v -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch' >/tmp/train-t.log 2>&1); echo "rc=$?"
	summ /tmp/train-t.log; cat /tmp/train-t.log >>"$OUT/tests.log"
	if wait $build; then
		head -2 /tmp/build.log; cat "$k/sluice.cu.sha256"
		tar -C "$k" -czf "$OUT/kernels.tgz" .
		export SLUICE_CUDA_PTX=$k/sluice_sm90.ptx
		echo "timings: the CUDA 13 PTX"
	else
		tail -30 /tmp/build.log; echo "timings: the carried nvcc 11.8 PTX (the CUDA 13 build failed)"
	fi
	wait $model; tail -1 /tmp/model.log
	common=(bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 --max-tokens 128
		--max-num-seqs 256 --max-num-batched-tokens 8192)
	one() { # label, flags...
		local label=$1
		shift
		[ "$(left)" -gt 40 ] || { echo "-- $label: skipped (time)"; return; }
		echo "-- $label" >>"$OUT/infer.log"
		timeout 90 "$bin/sluice" "${common[@]}" "$@" >>"$OUT/infer.log" 2>&1; echo "rc=$?" >>"$OUT/infer.log"
		echo "$label: $(tail -12 "$OUT/infer.log" | grep -E -o "[0-9.]+ output tokens/s|KV cache: [0-9]+ blocks|peak device memory [0-9]+ MiB|LoRA[^;]*adapters[^;]*" | tr '\n' ' ')"
	}
	stamp "== infer/offline-512, bench-1b"
	one "bf16" 
	one "bf16 --quantization fp8" --quantization fp8
	one "bf16 --kv-cache-dtype fp8" --kv-cache-dtype fp8
	one "bf16 again" 
	if [ "$(left)" -gt 120 ]; then
		python3 bench/infer/make_bench_loras.py --model /tmp/bench-1b --n 16 --rank 16 --out /tmp/loras 2>&1 | tail -1
		mods=""
		for i in $(seq 0 15); do mods="$mods a$i=/tmp/loras/a$i"; done
		one "16 LoRA adapters, rank 16" --lora-modules "${mods# }" --use-loras --max-loras 16 --max-lora-rank 16
		one "bf16 base after" 
	fi
	if [ "$(left)" -gt 100 ]; then
		stamp "== speculative decoding (devrun-spec.sh, bench-1b)"
		SPEC_BIN=$bin SIZE=1b OUT=$OUT timeout $(($(left) - 10)) bash bench/infer/devrun-spec.sh | grep -v "^\["
	fi
	stamp "done"
} 2>&1 | tee /tmp/summary.txt
cp /tmp/summary.txt "$OUT/summary.txt"
