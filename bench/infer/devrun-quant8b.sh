#!/usr/bin/env bash
# One GPU call for issue 23 on bench-8b (infer/offline-512-8b): the kernels
# built from the tree with the machine's nvcc (gpu/kernels/build.sh, used
# through SLUICE_CUDA_PTX; the embedded PTX if the build fails), then
#   tests: gpu/cuda TestQuantPaths (every path forced, ltvec included) and
#          TestQuantCapture, infer/model
#          TestQuantizedDevice (SLUICE_TEST_DEVICE=cuda) and TestW8A8Rounding
#          (cpu), each weight-only (the default) and with SLUICE_CUDA_FP8_ACT=1
#          (the W8A8 lt path);
#   bench: infer/offline-512 on bench-8b (made here by make_bench_model.py
#          while the tests run; AWQ int4 by quantize_awq.py after it), one
#          process after another: bf16, --quantization fp8 (weight-only),
#          --quantization fp8 with SLUICE_CUDA_FP8_ACT=1, AWQ int4, bf16
#          again; output tok/s, KV blocks, model load time, peak memory.
# Build on the development machine (module root; about 30 MiB compressed,
# under the 64 MiB carry):
#
#	d=devrun-quant8b; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o $d/model.test ./infer/model
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -czf $d/bin.tgz cuda.test model.test sluice && (cd $d && rm cuda.test model.test sluice)
#
# then `bash bench/infer/devrun-quant8b.sh` through the device tool with
# carry ["devrun-quant8b"]. BUDGET (seconds, default 420) bounds the whole
# script: a stage that would not fit is skipped and says so. $OUT: ptx.log,
# cuda.log, model.log, infer.log, summary.txt.
cd "$(dirname "$0")/../.."
bin=$PWD/devrun-quant8b
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
budget=${BUDGET:-420}
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
left() { echo $((budget - ($(date +%s) - t0))); }
summ() { # log: failures, then counts
	grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic:" "$1" | head -30
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1"), skipped: $(grep -c -- '--- SKIP' "$1")"
}
tests() { # label, then env assignments for the test processes
	local label=$1
	shift
	stamp "== gpu/cuda TestQuantPaths, TestQuantCapture ($label)"
	echo "==== $label" >>"$OUT/cuda.log"
	(cd gpu/cuda && env "$@" timeout 90 "$bin/cuda.test" -test.v -test.run 'TestQuantPaths|TestQuantCapture' >/tmp/cuda.log 2>&1); echo "rc=$?"
	summ /tmp/cuda.log; cat /tmp/cuda.log >>"$OUT/cuda.log"
	# Whether cuBLASLt took the outer-vector scales (ltvec; 0: it fell back).
	grep -oE "scaled lt products: [0-9]+, outer-vector: [0-9]+|off gemv's by [0-9.e-]+" /tmp/cuda.log | sort | uniq -c | head -8
	stamp "== infer/model TestQuantizedDevice, TestW8A8Rounding ($label)"
	echo "==== $label" >>"$OUT/model.log"
	(cd infer/model && env SLUICE_TEST_DEVICE=cuda "$@" timeout 60 "$bin/model.test" -test.v \
		-test.run 'TestQuantizedDevice|TestW8A8Rounding' >/tmp/model.log 2>&1); echo "rc=$?"
	summ /tmp/model.log; cat /tmp/model.log >>"$OUT/model.log"
	# The device's logits errors: the largest three, weight-only and rounded.
	echo "largest relative errors: $(grep -E 'relative error .*tolerance 0.001\)' /tmp/model.log | grep -oE 'error [0-9.e+-]+' | awk '{print $2}' | sort -g | tail -3 | tr '\n' ' ')(tolerance 1e-3);" \
		"$(grep -E 'relative error .*tolerance 0.15\)' /tmp/model.log | grep -oE 'error [0-9.e+-]+' | awk '{print $2}' | sort -g | tail -3 | tr '\n' ' ')(tolerance 0.15)"
}
bench() { # label, model, then flags; env from the caller
	local label=$1 model=$2
	shift 2
	[ "$(left)" -gt 60 ] || { echo "-- $label: skipped ($(left) s left)"; return; }
	echo "-- $label" >>"$OUT/infer.log"
	timeout $(($(left) - 15)) "$bin/sluice" bench infer --model "$model" --device cuda --prompts 512 --min-len 128 --max-len 512 \
		--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 "$@" >/tmp/infer.log 2>&1
	echo "rc=$?" >>/tmp/infer.log
	cat /tmp/infer.log >>"$OUT/infer.log"
	echo "$label: $(grep -E -o '[0-9.]+ output tokens/s|model load [0-9.]+s|KV cache: [0-9]+ blocks|peak device memory [0-9]+ MiB|rc=[0-9]+' /tmp/infer.log | tr '\n' ' ')"
	grep -m2 -iE 'error|panic' /tmp/infer.log
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	# bench-8b (about 16 GB), then its AWQ int4, while the kernels build and
	# the tests run (neither is timed).
	(
		python3 bench/infer/make_bench_model.py --size 8b --out /tmp/bench-8b 2>&1 | tail -1
		stamp "bench-8b written"
		if [ "$(left)" -gt 200 ]; then # the AWQ run and the others need 150 s after it
			timeout $(($(left) - 150)) python3 bench/infer/quantize_awq.py --model /tmp/bench-8b --out /tmp/bench-8b-awq 2>&1 | tail -2
			stamp "quantize_awq.py rc=${PIPESTATUS[0]}"
		else
			stamp "AWQ int4 skipped ($(left) s left)"
		fi
	) >/tmp/models.log 2>&1 &
	models=$!
	stamp "== kernels (gpu/kernels/build.sh)"
	if bash gpu/kernels/build.sh /tmp/ptx >"$OUT/ptx.log" 2>&1; then
		export SLUICE_CUDA_PTX=/tmp/ptx/sluice_sm90.ptx
		head -2 "$OUT/ptx.log" | tail -1; echo "PTX: $SLUICE_CUDA_PTX"
	else
		tail -20 "$OUT/ptx.log"; echo "PTX: the build failed; the binaries' embedded PTX"
	fi
	stamp "built"
	tests "weight-only FP8" SLUICE_CUDA_FP8_ACT=0
	tests "SLUICE_CUDA_FP8_ACT=1" SLUICE_CUDA_FP8_ACT=1
	stamp "== waiting for bench-8b and its AWQ int4"
	wait $models; cat /tmp/models.log
	stamp "== infer/offline-512-8b"
	bench "bf16" /tmp/bench-8b
	SLUICE_CUDA_FP8_ACT=0 bench "--quantization fp8 (weight-only)" /tmp/bench-8b --quantization fp8
	SLUICE_CUDA_FP8_ACT=1 bench "--quantization fp8, SLUICE_CUDA_FP8_ACT=1 (W8A8)" /tmp/bench-8b --quantization fp8
	if [ -f /tmp/bench-8b-awq/config.json ]; then bench "AWQ int4" /tmp/bench-8b-awq; else echo "-- AWQ int4: no checkpoint"; fi
	bench "bf16 again" /tmp/bench-8b
	stamp "done"
} 2>&1 | tee /tmp/summary.txt
cp /tmp/summary.txt "$OUT/summary.txt"
