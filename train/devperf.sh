#!/usr/bin/env bash
# The GPU machine's run for issue 13's training speed, in one call:
#  1. the qwen2 curves bug as the last run had it: train.test on the
#     embedded PTX (which has no training-attention kernels, so the
#     forward takes ops.Attention and the backward attnBwdQ/attnBwdKV) at
#     SLUICE_TEST_PRECISION=f32, i.e. the code paths before e6b4108: the
#     train PyTorch tests on cuda, TestCurvesMatchPyTorch/qwen2 alone, with
#     CUDA_LAUNCH_BLOCKING=1, then compute-sanitizer where the machine has it;
#  2. the kernels rebuilt with CUDA 13 (gpu/kernels/build.sh, from the
#     kernel sources carried in kernels.tgz) while 1 runs, then gpu/cuda's
#     backward conformance, TestBackwardVsCPU, TestTrainPrecision and
#     TestOptimOpsVsCPU, and train's PyTorch tests on cuda at bf16 (the
#     default) and at f32, on that PTX;
#  3. bench/train/devrun-sft.sh (train/sft-1b against PyTorch eager) on it.
# Build on the development machine (see bundle.sh beside this file) and run
# `bash train/devperf.sh` through the device tool with carry
# ["devrun-trainperf"]. $OUT: bug.txt, tests.txt, build.log and the
# benchmark's summary.txt, sluice.jsonl/.err, torch.jsonl/.err.
cd "$(dirname "$0")/.."
b=$PWD/devrun-trainperf
tar -C "$b" -xzf "$b/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/k /tmp/ptx && tar -C /tmp/k -xzf "$b/kernels.tgz"
(bash /tmp/k/build.sh /tmp/ptx >"$OUT/build.log" 2>&1; echo "build rc=$?" >>"$OUT/build.log") &
build=$!
(python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1) &
# filter keeps a test log's results; the log goes through a file first, so
# that head never cuts the test binary short (SIGPIPE, as the cuda tests
# were in the 2026-12-07 12:31 run).
filter() {
	local log
	log=$(mktemp)
	cat >"$log"
	grep -E -- "^\s*--- |^(ok|FAIL|PASS)|panic|\.go:[0-9]+: " "$log" | grep -v -E -- "--- PASS: TestConformance/|worst error" | tail -"${1:-60}"
}
trainTests='TestDeviceOptimizerMatchesHost|TestGradMatchesPyTorch|TestCurvesMatchPyTorch'
{
	stamp "== before (HEAD build, embedded PTX): $trainTests on cuda"
	(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=f32 timeout 60 "$b/train.test" -test.run "$trainTests" -test.count=1 -test.v 2>&1 | filter 40)
	stamp "== before: TestCurvesMatchPyTorch/qwen2 alone"
	(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=f32 timeout 30 "$b/train.test" -test.run 'TestCurvesMatchPyTorch/qwen2' -test.count=1 -test.v 2>&1 | filter 20)
	stamp "== before: $trainTests, CUDA_LAUNCH_BLOCKING=1"
	(cd train && CUDA_LAUNCH_BLOCKING=1 SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=f32 timeout 40 "$b/train.test" -test.run "$trainTests" -test.count=1 -test.v 2>&1 | grep -E -- "FAIL|\.go:[0-9]+: " | head -10)
	san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
	if [ -n "$san" ] && grep -q -- "--- FAIL" "$OUT/bug.txt"; then
		stamp "== before: compute-sanitizer memcheck, $trainTests"
		(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=f32 timeout 45 "$san" --tool memcheck --print-limit 8 "$b/train.test" \
			-test.run "$trainTests" -test.count=1 2>&1 | grep -E -v "^\s*$" | head -60)
	fi
	stamp done
} 2>&1 | tee "$OUT/bug.txt"
wait $build
tail -3 "$OUT/build.log"
export SLUICE_CUDA_PTX=/tmp/ptx/sluice_sm90.ptx
[ -f "$SLUICE_CUDA_PTX" ] || export SLUICE_CUDA_PTX=$b/sluice_sm90_nvcc118.ptx
{
	stamp "== after, PTX $SLUICE_CUDA_PTX: gpu/cuda backward, precision, optimizer"
	(cd gpu/cuda && timeout 90 "$b/cuda.test" -test.run 'TestBackwardConformance|TestBackwardVsCPU|TestTrainPrecision|TestOptimOpsVsCPU' \
		-test.count=1 -test.v 2>&1 | filter 70)
	for p in bf16 f32; do
		stamp "== after: train $trainTests on cuda, SLUICE_TEST_PRECISION=$p"
		(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=$p timeout 60 "$b/train.test" -test.run "$trainTests" \
			-test.count=1 -test.v 2>&1 | filter 40)
	done
	stamp done
} 2>&1 | tee "$OUT/tests.txt"
wait
BIN=$b STEPS=${STEPS:-4} SKIP_COMPILE=1 SLUICE_TIMEOUT=90 TORCH_TIMEOUT=70 bash bench/train/devrun-sft.sh >/dev/null
left=$((285 - $(date +%s) + t0))
if [ "$left" -gt 45 ]; then
	stamp "== sluice train --precision tf32 (same flags), ${left}s left" | tee -a "$OUT/summary.txt"
	timeout "$left" "$b/sluice" train --model /tmp/bench-1b --device cuda --precision tf32 --data /tmp/sft.jsonl --max-seq-len 1024 \
		--batch-size 4 --grad-accum 8 --steps 3 --shuffle=false --peak-flops 989e12 --out /tmp/sft-tf32 2>/dev/null | tee -a "$OUT/summary.txt"
fi
cat "$OUT/summary.txt"
grep -E -- "--- FAIL|^FAIL|panic" "$OUT/bug.txt" "$OUT/tests.txt" | head -20
