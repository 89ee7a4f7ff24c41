#!/usr/bin/env bash
# One GPU run for serve/online-1b (issue 15): bench-1b behind `sluice serve`
# on the GPU, `sluice bench serve` (Poisson arrivals, the infer/offline-512
# prompt and output lengths) at rate inf, then at fixed rates and at half
# of the saturated request rate measured first; `sluice bench infer`'s
# offline figure on the same model with the same engine flags in the same
# call (the peer: vLLM is not installed on the GPU machine; the script
# checks). Build on the development machine:
#
#	mkdir -p devrun-serve && export CGO_ENABLED=0
#	go build -trimpath -ldflags="-s -w" -o devrun-serve/sluice ./cmd/sluice
#	go test -c -trimpath -ldflags="-s -w" -o devrun-serve/cuda.test ./gpu/cuda
#	go test -c -overlay OVERLAY -trimpath -ldflags="-s -w" -o devrun-serve/engine.test ./infer/engine
#	tar -C devrun-serve -czf devrun-serve/bin.tgz sluice cuda.test engine.test
#	rm devrun-serve/sluice devrun-serve/cuda.test devrun-serve/engine.test
#
# where OVERLAY is a go build overlay adding infer/engine/zz_cuda_test.go,
# `package engine; import _ "github.com/sluicehq/sluice/gpu/cuda"`, so that
# the engine's fixture tests open cuda with SLUICE_TEST_DEVICE=cuda (the
# package's own tests import only the cpu backend). The test binaries are
# needed only with SUITE=1.
#
# Then run `bash bench/serve/devrun-serve.sh` through the device tool with
# carry ["devrun-serve"]. SKIP_BENCH=1 skips the benchmark; RATES lists the fixed rates (req/s); SUITE=1 also
# runs the cuda suite, the engine's fixture and speculative tests on cuda,
# the quantized loader on cuda and an n-gram speculative bench infer;
# ATTN_MODES=1 (with SUITE=1) also the suite under each forced attention choice.
# $OUT gets offline.jsonl and serve.jsonl (one JSON result per run),
# serve.log (the server's log), suite.log and summary.txt.
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/devrun-serve
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
flags=(--device cuda --max-num-seqs 256 --max-num-batched-tokens 8192)
port=8011
url=http://127.0.0.1:$port
serve() { # rate, requests, seed
	echo "-- rate $1, $2 requests, seed $3" >>"$OUT/serve.log"
	rm -f /tmp/one.json
	timeout 150 "$bin/sluice" bench serve --url "$url" --rate "$1" --requests "$2" --seed "$3" \
		--min-len 128 --max-len 512 --output-len 128 --vocab 128256 --output json >/tmp/one.json 2>>"$OUT/serve.log"
	echo "rc=$?"
	cat /tmp/one.json >>"$OUT/serve.jsonl"
	python3 -c 'import json,sys
r=json.load(open("/tmp/one.json"))
print("rate %-6s %4d/%d req in %6.2fs: %7.2f req/s, %8.1f output tok/s; TTFT p50/p99 %7.1f/%7.1f ms; TPOT p50/p99 %6.2f/%6.2f ms; ITL p50/p99 %6.2f/%6.2f ms%s" % (
 r["rate"], r["completed"], r["requests"], r["duration_s"], r["request_throughput"], r["output_throughput"],
 r["ttft"]["p50_ms"], r["ttft"]["p99_ms"], r["tpot"]["p50_ms"], r["tpot"]["p99_ms"], r["itl"]["p50_ms"], r["itl"]["p99_ms"],
 "; failed %d: %s" % (r["failed"], r.get("first_error", "")) if r["failed"] else ""))' 2>&1
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	python3 -c 'import vllm; print("vllm", vllm.__version__)' 2>&1 | tail -1
	[ -f /tmp/bench-1b/config.json ] || { python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1; tail -1 /tmp/model.log; }
	if [ -z "${SKIP_BENCH:-}" ]; then
		stamp "== offline: sluice bench infer, the same engine flags"
		for i in 1 2; do
			timeout 90 "$bin/sluice" bench infer --model /tmp/bench-1b "${flags[@]}" --prompts 512 --min-len 128 --max-len 512 \
				--max-tokens 128 --output json >/tmp/off.json 2>>"$OUT/serve.log"
			echo "rc=$?"
			cat /tmp/off.json >>"$OUT/offline.jsonl"
			python3 -c 'import json
r=json.load(open("/tmp/off.json"))
print("offline: %d req, %d output tokens in %.2fs: %.1f output tok/s (%.2f req/s), %.1f total tok/s, %d steps; load %.2fs + start %.2fs; peak %.0f MiB" % (
 r["prompts"], r["output_tokens"], r["seconds"], r["output_tokens_per_s"], r["prompts"] / r["seconds"], r["total_tokens_per_s"], r["steps"],
 r["load_s"], r["engine_start_s"], r["peak_device_bytes"] / 2**20))' 2>&1
		done
		stamp "== sluice serve"
		"$bin/sluice" serve --model /tmp/bench-1b "${flags[@]}" --port $port --served-model-name bench-1b >>"$OUT/serve.log" 2>&1 &
		srv=$!
		for _ in $(seq 240); do curl -sf "$url/health" >/dev/null && break; sleep 0.5; done
		curl -sf "$url/health" >/dev/null || { echo "server not up"; tail -20 "$OUT/serve.log"; }
		stamp "up"
		serve inf 64 100 >/dev/null # warm-up: graphs, step buffers
		stamp "== saturated (rate inf, all at once)"
		serve inf 512 1
		half=$(python3 -c 'import json; print("%.1f" % (json.load(open("/tmp/one.json"))["request_throughput"] / 2))')
		serve inf 512 2
		stamp "== fixed rates; half of saturation = $half req/s"
		seed=10
		for r in ${RATES:-8 16 32 64 128} "$half" 256; do
			n=$(python3 -c "print(min(512, max(128, int(float('$r') * 20))))") # about 20 s of arrivals, 128 to 512 requests
			serve "$r" "$n" $seed
			seed=$((seed + 1))
		done
		curl -s "$url/metrics" | grep -E "^sluice:(num_preemptions|prefix_cache_hits|kv_cache_usage)" | head -5
		kill $srv; wait $srv; echo "serve exit $?"
	fi
	if [ -n "${SUITE:-}" ]; then
		stamp "== cuda suite"
		(cd gpu/cuda && timeout 180 "$bin/cuda.test" -test.v -test.skip 'TestConformanceAttnModes' >"$OUT/suite.log" 2>&1; echo "cuda.test rc=$?")
		grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic" "$OUT/suite.log" | head -20
		echo "cuda passed: $(grep -c -- '--- PASS' "$OUT/suite.log"), failed: $(grep -c -- '--- FAIL' "$OUT/suite.log")"
		if [ -n "${ATTN_MODES:-}" ]; then
			stamp "== the cuda suite under each forced attention choice (TestConformanceAttnModes)"
			(cd gpu/cuda && timeout 240 "$bin/cuda.test" -test.v -test.run 'TestConformanceAttnModes' >"$OUT/attn.log" 2>&1; echo "attn modes rc=$?")
			grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic" "$OUT/attn.log" | head -20
			echo "attn modes passed: $(grep -c -- '--- PASS' "$OUT/attn.log"), failed: $(grep -c -- '--- FAIL' "$OUT/attn.log")"
		fi
		stamp "== engine fixtures and speculative decoding on cuda"
		(cd infer/engine && SLUICE_TEST_DEVICE=cuda timeout 150 "$bin/engine.test" -test.v \
			-test.run 'TestFixturesGreedy|TestFixtureSampling|TestSpeculative' >/tmp/engine.log 2>&1; echo "engine.test rc=$?")
		grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic|\.go:[0-9]+: " /tmp/engine.log | head -20
		echo "engine passed: $(grep -c -- '--- PASS' /tmp/engine.log), failed: $(grep -c -- '--- FAIL' /tmp/engine.log)"
		cat /tmp/engine.log >>"$OUT/suite.log"
		stamp "== quantized checkpoints and --quantization fp8 on cuda"
		for m in infer/model/testdata/quant/*/; do
			echo "-- $m: $(timeout 30 "$bin/sluice" generate --model "$m" --device cuda --prompt-ids 1,2,3 --max-tokens 4 --output json 2>&1 | tail -1)"
		done
		echo "-- --quantization fp8 llama3: $(timeout 30 "$bin/sluice" generate --model infer/model/testdata/fixtures/llama3 --device cuda \
			--quantization fp8 --prompt-ids 1,2,3 --max-tokens 4 --output json 2>&1 | tail -1)"
		stamp "== speculative [ngram] k=3 bench infer on cuda (random prompts: few drafts accepted)"
		timeout 90 "$bin/sluice" bench infer --model /tmp/bench-1b "${flags[@]}" --prompts 512 --min-len 128 --max-len 512 \
			--max-tokens 128 --speculative-model "[ngram]" --num-speculative-tokens 3 >/tmp/spec.log 2>&1
		echo "rc=$?"; grep -E "output tokens/s|total \(prompt|rror" /tmp/spec.log
		cat /tmp/spec.log >>"$OUT/suite.log"
	fi
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
