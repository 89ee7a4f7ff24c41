#!/usr/bin/env bash
# The GPU machine's check of the sampling kernel (gpu.Ops.Sample), in one
# GPU run. Build the test binary on the development machine first:
#
#	mkdir -p devrun-samp
#	CGO_ENABLED=0 go test -c -o devrun-samp/cuda.test ./gpu/cuda
#
# then run `bash gpu/cuda/devsample.sh` through the device tool with carry
# ["devrun-samp"]. It rebuilds the kernels from gpu/kernels/sluice.cu into
# $OUT/kernels.tgz (copy its contents into gpu/kernels/ when sluice.cu
# changed), runs the Sample conformance tests and the 128256-token check
# against the cpu backend with the fresh sm_90 PTX (and the conformance
# tests with the sm_80 PTX), then BenchmarkSample. Logs go to $OUT; the
# summary is printed last.
cd "$(dirname "$0")/../.."
k=$(mktemp -d)
bash gpu/kernels/build.sh "$k" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
tar -C "$k" -czf "$OUT/kernels.tgz" .
export SLUICE_CUDA_PTX=$k/sluice_sm90.ptx
{
	nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
	grep -A2 "sample" "$k/resources_sm90.txt" | grep -E "registers|spill|Compiling" | head -4
	echo "== tests, sm_90 PTX"
	timeout 150 ./devrun-samp/cuda.test -test.v -test.run 'TestConformance$/Sample|TestSampleVocab|TestKernelsBuilt' >"$OUT/test.log" 2>&1
	echo "rc=$?"
	grep -E -- "^\s*--- (FAIL|PASS|SKIP)|^(ok|FAIL|PASS)|panic|sample_test.go|sample.go:" "$OUT/test.log" | head -40
	echo "== tests, sm_80 PTX"
	SLUICE_CUDA_PTX=$k/sluice_sm80.ptx timeout 60 ./devrun-samp/cuda.test -test.run 'TestConformance$/Sample|TestSampleVocab' >"$OUT/test80.log" 2>&1
	echo "rc=$?"; tail -3 "$OUT/test80.log"
	echo "== bench (256 rows x 128256)"
	timeout 150 ./devrun-samp/cuda.test -test.run XXX -test.bench Sample -test.count 5 -test.benchtime 20x >"$OUT/bench.log" 2>&1
	echo "rc=$?"
	grep -E "Benchmark|FAIL|panic" "$OUT/bench.log"
} 2>&1 | tee "$OUT/summary.txt"
