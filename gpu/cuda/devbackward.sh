#!/usr/bin/env bash
# The GPU machine's check of the backward kernels (gpu.BackwardOps on
# cuda), in one GPU run. Build the test binary on the development machine
# first (the cuda side's Go code with sluice.cu's new kernels in the tree):
#
#	mkdir -p devrun-bwd
#	CGO_ENABLED=0 go test -c -o devrun-bwd/cuda.test ./gpu/cuda
#
# then run `bash gpu/cuda/devbackward.sh` through the device tool with carry
# ["devrun-bwd"]. It rebuilds the kernels from gpu/kernels/sluice.cu into
# $OUT/ptx (sluice_sm80.ptx, sluice_sm90.ptx, resources_sm80.txt,
# resources_sm90.txt, sluice.cu.sha256: copy them into gpu/kernels/ and
# commit them with sluice.cu), then runs TestBackwardConformance (gputest's
# BackwardOps suite) and the forward conformance suite with the fresh sm_90
# PTX (SLUICE_CUDA_PTX, see DefaultConfig; New looks up every kernel of
# the table in it, the new ones included), then both again with the sm_80
# PTX. (TestKernelsBuilt checks the embedded PTX: it passes once the fresh
# PTX is committed.)
# Logs go to $OUT (test.log, test80.log, summary.txt: eight files in all,
# the most the tool returns); the summary is printed last.
cd "$(dirname "$0")/../.."
[ -f devrun-bwd/bin.tgz ] && tar -C devrun-bwd -xzf devrun-bwd/bin.tgz # cuda.test (and train.test), packed to fit the carry
mkdir -p "$OUT/ptx"
log=$(mktemp)
bash gpu/kernels/build.sh "$OUT/ptx" >"$log" 2>&1 || {
	cp "$log" "$OUT/build.log"
	tail -60 "$log"
	exit 1
}
export SLUICE_CUDA_PTX=$OUT/ptx/sluice_sm90.ptx
summ() {
	grep -E -- "^\s*--- (FAIL|SKIP)|^(ok|FAIL|PASS)|panic" "$1" | head -40
	grep -E "\.go:[0-9]+: " "$1" | grep -v -E "worst error|device:|: gpu: " | head -40
	echo "passed: $(grep -c -- '--- PASS' "$1")"
}
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	head -2 "$log"
	cat "$OUT/ptx/sluice.cu.sha256"
	# Registers, spills and shared memory of the backward kernels (sm_90).
	grep -E -A3 "Compiling entry function '(fillF32|colSum|embedBackward|rmsnorm(Inv|DWPart|Backward)|ropeBackward|siluMulBackward|crossEntropy|attnBwd(Q|KV))'" \
		"$OUT/ptx/resources_sm90.txt" | grep -E "Compiling|registers|spill" | sed -E "s/ptxas info *: //"
	echo "== backward + conformance, sm_90 PTX"
	timeout 240 ./devrun-bwd/cuda.test -test.v -test.run 'Backward|TestConformance$' >"$OUT/test.log" 2>&1
	echo "rc=$?"
	summ "$OUT/test.log"
	echo "worst errors of the backward suite (of the tolerance):"
	grep "worst error" "$OUT/test.log" | sed -E 's/.*: ([a-z]+): worst error ([0-9.]+).*/\2 \1/' | sort -g | tail -3
	echo "== backward + conformance, sm_80 PTX"
	SLUICE_CUDA_PTX=$OUT/ptx/sluice_sm80.ptx timeout 240 ./devrun-bwd/cuda.test -test.v -test.run 'Backward|TestConformance$' >"$OUT/test80.log" 2>&1
	echo "rc=$?"
	summ "$OUT/test80.log"
	if [ -x devrun-bwd/train.test ]; then # go test -c -o devrun-bwd/train.test ./train
		echo "== train on cuda: gradients and 20-step curves against PyTorch's (sm_90 PTX)"
		(cd train && SLUICE_TEST_DEVICE=cuda timeout 200 ../devrun-bwd/train.test -test.v \
			-test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch' >/tmp/train.log 2>&1; echo "rc=$?")
		grep -E -- "^\s*--- (FAIL|PASS)|^(ok|FAIL|PASS)$|panic|\.go:[0-9]+: " /tmp/train.log | head -30
		cat /tmp/train.log >>"$OUT/test.log"
	fi
} 2>&1 | tee "$OUT/summary.txt"
