#!/usr/bin/env bash
# The GPU machine's check of the cuda backend, in one GPU run. Build the
# test binaries on the development machine first:
#
#	mkdir -p devrun
#	CGO_ENABLED=0 go test -c -o devrun/cuda.test ./gpu/cuda
#	CGO_ENABLED=0 go test -c -o devrun/fixtures.test ./gpu/cuda/fixtures
#
# then run `bash gpu/cuda/devcheck.sh` through the device tool with carry
# ["devrun"]. It rebuilds the kernels from gpu/kernels/sluice.cu into
# $OUT/kernels.tgz (commit its contents under gpu/kernels/ if they
# changed), and runs the suite (with the fresh sm_90 and sm_80 PTX through
# SLUICE_CUDA_PTX), the long-context test, infer/model's fixtures and the
# benchmarks. Logs go to $OUT; the summary is printed last. Keep $OUT under
# eight files: the tool returns no more.
cd "$(dirname "$0")/../.."
root=$PWD
k=$(mktemp -d)
bash gpu/kernels/build.sh "$k" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
tar -C "$k" -czf "$OUT/kernels.tgz" .
export SLUICE_CUDA_PTX=$k/sluice_sm90.ptx
summ() {
	grep -E -- "^\s*--- (FAIL|SKIP)|^(ok|FAIL|PASS)|panic" "$1" | head -30
	grep -E "\.go:[0-9]+: " "$1" | grep -v -E "worst error|: gpu: |device:|relative error|agree|cuda − cpu" | head -40
	echo "passed: $(grep -c -- '--- PASS' "$1")"
}
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	grep -A3 "for attention" "$k/resources_sm90.txt" | head -4
	echo "== suite, sm_90 PTX"
	timeout 120 ./devrun/cuda.test -test.v >"$OUT/suite.log" 2>&1; echo "rc=$?"; summ "$OUT/suite.log"
	echo "== suite, sm_80 PTX"
	SLUICE_CUDA_PTX=$k/sluice_sm80.ptx timeout 120 ./devrun/cuda.test -test.v -test.run 'Conformance|Long' >"$OUT/suite80.log" 2>&1
	echo "rc=$?"; summ "$OUT/suite80.log"
	echo "== fixtures"
	(cd gpu/cuda/fixtures && timeout 150 "$root/devrun/fixtures.test" -test.v >"$OUT/fixtures.log" 2>&1; echo "rc=$?")
	summ "$OUT/fixtures.log"
	echo "== bench"
	timeout 120 ./devrun/cuda.test -test.run XXX -test.bench . -test.benchtime 0.5s >"$OUT/bench.log" 2>&1; echo "rc=$?"
	grep -E "Benchmark|FAIL|panic" "$OUT/bench.log"
} 2>&1 | tee "$OUT/summary.txt"
