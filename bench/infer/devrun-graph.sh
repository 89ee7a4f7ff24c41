#!/usr/bin/env bash
# One GPU run for CUDA graphs of decode steps: the cuda backend's graph
# test with the conformance suite, the fixtures (graphs are on by default,
# so TestF32, TestBF16 and TestBF16Paths run through them) with TestGraphs
# (eager, padded and graph steps compared), TestGraphStep (a decode step of
# bench-1b eager and from graphs, same tokens), `sluice bench infer` on
# bench-1b with graphs on and off (SLUICE_CUDA_GRAPHS=0), and the
# transformers peer. It uses the committed PTX. Build on the development
# machine as bench/infer/devrun.sh says, into devrun-graph/:
#
#	mkdir -p devrun-graph && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o devrun-graph/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o devrun-graph/fixtures.test ./gpu/cuda/fixtures
#	go build -trimpath -ldflags="-s -w" -o devrun-graph/sluice ./cmd/sluice
#	tar -C devrun-graph -czf devrun-graph/bin.tgz cuda.test fixtures.test sluice
#	rm devrun-graph/cuda.test devrun-graph/fixtures.test devrun-graph/sluice
#
# then run `bash bench/infer/devrun-graph.sh` through the device tool with
# carry ["devrun-graph"]. SKIP_SUITE=1 skips the tests, SKIP_HF=1 the peer;
# STEP_SEQS lists the batch sizes of TestGraphStep (256 16); RUNS the
# environments of the greedy bench runs. A last run samples (temperature
# 0.8, top_p 0.95) through the device sampler.
cd "$(dirname "$0")/../.."
bin=$PWD/devrun-graph
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
summ() {
	grep -E -- "^\s*--- (FAIL)|^(ok|FAIL|PASS)|panic" "$1" | head -30
	grep -E "\.go:[0-9]+: " "$1" | grep -v -E "worst error|: gpu: |device:|relative error|agree|cuda − cpu" | head -30
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1")"
}
{
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	stamp "start"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	if [ -z "${SKIP_SUITE:-}" ]; then
		stamp "== cuda: graphs, conformance, long contexts"
		timeout 150 "$bin/cuda.test" -test.v -test.run 'TestGraph|TestConformance$|Long|TestSampleVocab|TestKernelsBuilt' >"$OUT/suite.log" 2>&1; echo "rc=$?"
		summ "$OUT/suite.log"
		stamp "== fixtures, graphs on by default; TestGraphs"
		(cd gpu/cuda/fixtures && timeout 150 "$bin/fixtures.test" -test.v -test.skip 'TestProfileStep|TestGraphStep' >"$OUT/fixtures.log" 2>&1; echo "rc=$?")
		summ "$OUT/fixtures.log"
		grep -E "graphs; argmax" "$OUT/fixtures.log" | head -12
	fi
	wait $model; tail -1 /tmp/model.log
	stamp "== decode step, eager vs graphs"
	for n in ${STEP_SEQS:-256 16}; do
		(cd gpu/cuda/fixtures && SLUICE_PROFILE_SEQS=$n SLUICE_PROFILE_MODEL=/tmp/bench-1b timeout 150 "$bin/fixtures.test" -test.v -test.run TestGraphStep >>"$OUT/step.log" 2>&1; echo "rc=$?")
	done
	grep -E "decode step|FAIL|panic|rror" "$OUT/step.log"
	stamp "== infer/offline-512"
	for v in ${RUNS:-SLUICE_CUDA_GRAPHS=1 SLUICE_CUDA_GRAPHS=0 SLUICE_CUDA_GRAPHS=1 SLUICE_CUDA_GRAPHS=0}; do
		echo "-- $v" | tee -a "$OUT/infer.log"
		env $v timeout 90 "$bin/sluice" bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 \
			--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	done
	# Sampled (temperature 0.8, top_p 0.95, seeded): every step samples on the device.
	echo "-- sampled: --temperature 0.8 --top-p 0.95" | tee -a "$OUT/infer.log"
	timeout 90 "$bin/sluice" bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 \
		--max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192 --temperature 0.8 --top-p 0.95 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	grep -E "^--|output tokens/s|total \(prompt|peak|rc=|rror" "$OUT/infer.log"
	if [ -z "${SKIP_HF:-}" ]; then
		stamp "== transformers"
		PYTHONUNBUFFERED=1 timeout 150 python3 bench/infer/hf_generate.py --model /tmp/bench-1b --batch 128 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
		tail -1 "$OUT/infer.log"
	fi
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
