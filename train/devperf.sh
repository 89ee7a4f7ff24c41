#!/usr/bin/env bash
# The GPU machine's run for issue 13's device-resident training, in one
# call: rebuilds the kernels from the tree's gpu/kernels/sluice.cu (with the
# optimizer kernels of gpu.OptimOps, not yet in the committed PTX) into
# $OUT/ptx, checks them (cuda's TestOptimOpsVsCPU; train's
# TestDeviceOptimizerMatchesHost and PyTorch comparisons on cuda), then runs
# bench/train/devrun-sft.sh (train/sft-1b and its PyTorch peer) on the same
# PTX through SLUICE_CUDA_PTX. Build on the development machine:
#
#	mkdir -p devrun-sft
#	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o devrun-sft/sluice ./cmd/sluice
#	CGO_ENABLED=0 go test -c -trimpath -ldflags="-s -w" -o devrun-sft/cuda.test ./gpu/cuda
#	CGO_ENABLED=0 go test -c -trimpath -ldflags="-s -w" -o devrun-sft/train.test ./train
#	tar -C devrun-sft -czf devrun-sft/bin.tgz sluice cuda.test train.test && rm devrun-sft/sluice devrun-sft/*.test
#
# then run `bash train/devperf.sh` through the device tool with carry
# ["devrun-sft"]. STEPS (default 4) goes to devrun-sft.sh. Copy $OUT/ptx/*
# into gpu/kernels/ and commit them with sluice.cu and gpu/cuda's
# optim.go, optim_test.go and device.go. The step lines in sluice.jsonl
# carry time_forward_s, time_backward_s, time_optimizer_s, time_transfer_s
# and time_data_s.
cd "$(dirname "$0")/.."
tar -C devrun-sft -xzf devrun-sft/bin.tgz
mkdir -p "$OUT/ptx"
bash gpu/kernels/build.sh "$OUT/ptx" >"$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
export SLUICE_CUDA_PTX=$OUT/ptx/sluice_sm90.ptx
{
	echo "== cuda optimizer ops"
	(cd gpu/cuda && timeout 120 ../../devrun-sft/cuda.test -test.run 'TestOptimOpsVsCPU|TestBackwardVsCPU' -test.count=1 -test.v 2>&1 |
		grep -E -- "^\s*--- |^(ok|FAIL|PASS)|panic|\.go:[0-9]+: " | head -30)
	echo "== train on cuda"
	(cd train && SLUICE_TEST_DEVICE=cuda timeout 120 ../devrun-sft/train.test \
		-test.run 'TestDeviceOptimizerMatchesHost|TestGradMatchesPyTorch|TestCurvesMatchPyTorch' -test.count=1 -test.v 2>&1 |
		grep -E -- "^\s*--- |^(ok|FAIL|PASS)|panic|\.go:[0-9]+: " | head -40)
} 2>&1 | tee "$OUT/checks.txt"
STEPS=${STEPS:-4} bash bench/train/devrun-sft.sh
