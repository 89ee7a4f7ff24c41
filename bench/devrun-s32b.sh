#!/usr/bin/env bash
# Session 32's check of c242736 (go:uintptrescapes on the driver and cuBLAS
# call wrappers): the gpu/cuda tests that failed after TestQuantPaths' first
# error, all in one process as `go test` runs them. Build here:
#
#	d=devrun-s32b; mkdir -p $d && CGO_ENABLED=0 go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	xz -T2 $d/cuda.test
#
# and run `bash bench/devrun-s32b.sh` with carry ["devrun-s32b"]. $OUT: tests.log, summary.txt.
cd "$(dirname "$0")/.."
bin=$PWD/devrun-s32b
[ -x "$bin/cuda.test" ] || { xz -d "$bin/cuda.test.xz" && chmod +x "$bin/cuda.test"; }
. bench/devlib.sh 200
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	stamp "== gpu/cuda: quant paths, capture, real bf16, LoRA, flash"
	(cd gpu/cuda && timeout "$(cap 150)" "$bin/cuda.test" -test.v -test.count=1 -test.run 'TestQuantPaths|TestQuantCapture|TestRealBF16|TestLoRA|TestFlash|TestCallKeeps' >"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	grep -E -- "^(--- |    --- )(PASS|FAIL)" "$OUT/tests.log" | grep -v "/.*/" | head -30
	stamp done
} 2>&1 | tee "$OUT/summary.txt"
