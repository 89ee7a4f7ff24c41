#!/usr/bin/env bash
# One GPU run for the cuda backend and infer/offline-512: rebuild the
# kernels, run the cuda test binary (suite, attention modes, long contexts)
# and the fixtures with the fresh PTX, the per-step profile, the attention
# microbenchmarks, `sluice bench infer` on bench-1b (default kernels and A/B
# variants) and the transformers peer. Build on the development machine:
#
#	mkdir -p devrun-gpu && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o devrun-gpu/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o devrun-gpu/fixtures.test ./gpu/cuda/fixtures
#	go build -trimpath -ldflags="-s -w" -o devrun-gpu/sluice ./cmd/sluice
#	tar -C devrun-gpu -czf devrun-gpu/bin.tgz cuda.test fixtures.test sluice
#	rm devrun-gpu/cuda.test devrun-gpu/fixtures.test devrun-gpu/sluice
#
# then run `bash bench/infer/devrun.sh` through the device tool with carry
# ["devrun-gpu"]. $OUT gets kernels.tgz (the rebuilt PTX and resource
# reports: commit them under gpu/kernels/), build.log, one log per stage
# (suite, fixtures, bench, profile, infer) and summary.txt, whose end the reply shows. SKIP_SUITE=1 skips the tests.
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/devrun-gpu
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
k=$(mktemp -d)
bash gpu/kernels/build.sh "$k" >"$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
tar -C "$k" -czf "$OUT/kernels.tgz" sluice_sm80.ptx sluice_sm90.ptx resources_sm80.txt resources_sm90.txt sluice.cu.sha256
export SLUICE_CUDA_PTX=$k/sluice_sm90.ptx
summ() {
	grep -E -- "^\s*--- (FAIL)|^(ok|FAIL|PASS)|panic" "$1" | head -30
	grep -E "\.go:[0-9]+: " "$1" | grep -v -E "worst error|: gpu: |device:|relative error|agree|cuda − cpu" | head -30
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1")"
}
{
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	stamp "built"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	grep -B1 -A2 "attentionSplit\|attentionMerge" "$k/resources_sm90.txt" | grep -E "Compiling|registers|spill" | head -8
	if [ -z "${SKIP_SUITE:-}" ]; then
		stamp "== suite, sm_90 PTX"
		timeout 200 "$bin/cuda.test" -test.v -test.skip 'TestConformanceAttnModes|TestKernelsBuilt' >"$OUT/suite.log" 2>&1; echo "rc=$?"
		timeout 150 "$bin/cuda.test" -test.v -test.run 'TestConformanceAttnModes/.*/Attention' >>"$OUT/suite.log" 2>&1; echo "rc=$?"
		summ "$OUT/suite.log"
		stamp "== fixtures"
		(cd gpu/cuda/fixtures && timeout 150 "$bin/fixtures.test" -test.v >"$OUT/fixtures.log" 2>&1; echo "rc=$?")
		summ "$OUT/fixtures.log"
	fi
	wait $model; tail -1 /tmp/model.log
	stamp "== microbenchmarks"
	timeout 150 "$bin/cuda.test" -test.run XXX -test.bench 'AttentionDecode|Copy' -test.benchtime 100x >"$OUT/bench.log" 2>&1; echo "rc=$?"
	grep -E "Benchmark|FAIL|panic" "$OUT/bench.log" | sed -E 's/ +/ /g'
	stamp "== step profile"
	(cd gpu/cuda/fixtures && SLUICE_PROFILE_MODEL=/tmp/bench-1b timeout 120 "$bin/fixtures.test" -test.v -test.run TestProfileStep >>"$OUT/profile.log" 2>&1; echo "rc=$?")
	grep -E "a step unsynced|Attention|FAIL|panic" "$OUT/profile.log"
	stamp "== infer/offline-512"
	for run in 1 2; do
		echo "-- run $run" | tee -a "$OUT/infer.log"
		timeout 90 "$bin/sluice" bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 \
			--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	done
	grep -E "^--|output tokens/s|total \(prompt|peak|rc=|rror" "$OUT/infer.log"
	stamp "== transformers"
	PYTHONUNBUFFERED=1 timeout 150 python3 bench/infer/hf_generate.py --model /tmp/bench-1b --batch 128 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	tail -1 "$OUT/infer.log"
	if [ -z "${SKIP_SUITE:-}" ]; then
		stamp "== suite, sm_80 PTX"
		SLUICE_CUDA_PTX=$k/sluice_sm80.ptx timeout 100 "$bin/cuda.test" -test.v -test.run 'TestConformance$|Long' >/tmp/suite80.log 2>&1
		echo "rc=$?"; summ /tmp/suite80.log; cat /tmp/suite80.log >>"$OUT/suite.log"
	fi
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
