#!/usr/bin/env bash
# The GPU machine's check of training on cuda: train's PyTorch comparisons
# (loss and every gradient of each fixture, 20 AdamW and 8 SGD steps) and
# the masked-loss and device tests, on SLUICE_TEST_DEVICE=cuda. Build the
# test binary on the development machine first:
#
#	mkdir -p devrun
#	CGO_ENABLED=0 go test -c -o devrun/train.test ./train
#
# then run `bash train/devcheck.sh` through the device tool with carry
# ["devrun"]. The tolerance on cuda is 2e-2 relative unless SLUICE_TEST_TOL
# sets another (cuda's f32 GEMMs have no TF32, so a tighter one may hold:
# the log prints the failures of a tighter run for comparison).
cd "$(dirname "$0")"
t=$PWD/../devrun/train.test
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
SLUICE_TEST_DEVICE=cuda "$t" -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch' -test.count=1 -test.v 2>&1 |
	grep -E -- "^\s*--- |^(ok|FAIL|PASS)|panic|\.go:[0-9]+: " | head -60
echo "== at 1e-4 (cpu's tolerance), for the record"
SLUICE_TEST_DEVICE=cuda SLUICE_TEST_TOL=1e-4 "$t" -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch' -test.count=1 2>&1 |
	grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)|\.go:[0-9]+: " | head -40
