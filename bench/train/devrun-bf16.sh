#!/usr/bin/env bash
# One GPU call for issue 13's real bf16 GEMMs (3461029): gpu/cuda's bf16
# and backward tests, train's PyTorch tests on cuda at bf16 and f32, then
# train/sft-1b (bench/train/devrun-sft.sh: sluice --precision bf16 and the
# PyTorch eager peer), an op profile of one bf16 step
# (SLUICE_TRAIN_PROFILE=1) and sluice at --precision tf32, all on the
# embedded PTX. Build on the development machine:
#
#	d=devrun-bf16; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o $d/train.test ./train
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -czf $d/bin.tgz cuda.test train.test sluice && (cd $d && rm cuda.test train.test sluice)
#
# then `bash bench/train/devrun-bf16.sh` with carry ["devrun-bf16"].
# $OUT: tests.txt, profile.txt and devrun-sft.sh's summary.txt, sluice.jsonl,
# torch.jsonl. BUDGET (seconds, default 330) bounds the extra runs.
cd "$(dirname "$0")/../.."
b=$PWD/devrun-bf16
tar -C "$b" -xzf "$b/bin.tgz"
t0=$(date +%s)
budget=${BUDGET:-330}
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
left() { echo $((budget - ($(date +%s) - t0))); }
filter() {
	local log
	log=$(mktemp)
	cat >"$log"
	grep -E -- "^\s*--- |^(ok|FAIL|PASS)|panic|\.go:[0-9]+: " "$log" | grep -v -E -- "--- PASS: TestConformance/|worst error" | tail -"${1:-60}"
}
(python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1) &
trainTests='TestDeviceOptimizerMatchesHost|TestGradMatchesPyTorch|TestCurvesMatchPyTorch'
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	stamp "== gpu/cuda: real bf16, precision, backward, optimizer"
	(cd gpu/cuda && timeout 90 "$b/cuda.test" -test.run 'TestRealBF16|TestTrainPrecision|TestBackwardConformance|TestBackwardVsCPU|TestOptimOpsVsCPU' \
		-test.count=1 -test.v 2>&1 | filter 40)
	for p in bf16 f32; do
		stamp "== train $trainTests on cuda, SLUICE_TEST_PRECISION=$p"
		(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=$p timeout 60 "$b/train.test" -test.run "$trainTests" \
			-test.count=1 -test.v 2>&1 | filter 40)
	done
	stamp done
} 2>&1 | tee "$OUT/tests.txt"
wait
BIN=$b STEPS=${STEPS:-4} SKIP_COMPILE=1 SLUICE_TIMEOUT=90 TORCH_TIMEOUT=70 bash bench/train/devrun-sft.sh >/dev/null
run() { # precision steps out [env]
	timeout "$(left)" env $4 "$b/sluice" train --model /tmp/bench-1b --device cuda --precision "$1" --data /tmp/sft.jsonl --max-seq-len 1024 \
		--batch-size 4 --grad-accum 8 --steps "$2" --shuffle=false --peak-flops 989e12 --out "$3"
}
if [ "$(left)" -gt 40 ]; then
	stamp "== profile: one bf16 step, SLUICE_TRAIN_PROFILE=1" | tee "$OUT/profile.txt"
	run bf16 1 /tmp/sft-prof SLUICE_TRAIN_PROFILE=1 >>"$OUT/profile.txt" 2>&1
fi
if [ "$(left)" -gt 40 ]; then
	stamp "== sluice train --precision tf32 (same flags), $(left)s left" | tee -a "$OUT/summary.txt"
	run tf32 3 /tmp/sft-tf32 2>/dev/null | tee -a "$OUT/summary.txt"
fi
cat "$OUT/summary.txt"
grep -v "^\s*$" "$OUT/profile.txt" | head -60
grep -E -- "--- FAIL|^FAIL|panic" "$OUT/tests.txt" | head -20
