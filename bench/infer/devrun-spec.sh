#!/usr/bin/env bash
# One GPU run for issue 23's speculative-decoding figures: output tokens/s
# at batch 1 and 8 without speculation and with (a) the target as its own
# draft (acceptance about 1: the ceiling), (b) bench-1b as the draft of
# bench-8b (random weights accept almost nothing: the floor; SIZE=8b only),
# (c) n-gram prompt lookup on the prompt-copying workload (--workload copy)
# against the same workload without it; the acceptance rate of each. Build
# on the development machine:
#
#	mkdir -p devrun-spec && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o devrun-spec/sluice ./cmd/sluice
#	tar -C devrun-spec -czf devrun-spec/bin.tgz sluice && rm devrun-spec/sluice
#
# then run `SIZE=8b bash bench/infer/devrun-spec.sh` (or SIZE=1b, the
# default: bench-1b as target and as its own draft) through the device tool
# with carry ["devrun-spec"]. K is the draft length (default 4). $OUT gets
# spec.log and summary.txt. bench/ callers may source it with
# SPEC_IN_CALL=1 to reuse an already unpacked $bin.
cd "$(dirname "$0")/../.."
bin=${SPEC_BIN:-$PWD/devrun-spec}
[ -f "$bin/bin.tgz" ] && tar -C "$bin" -xzf "$bin/bin.tgz"
size=${SIZE:-1b}
k=${K:-4}
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
run() { # label, batch, extra flags...
	local label=$1 batch=$2
	shift 2
	echo "-- $label, batch $batch" >>"$OUT/spec.log"
	timeout 120 "$bin/sluice" bench infer --model "/tmp/bench-$size" --device cuda --prompts $((batch * 4)) --max-num-seqs "$batch" \
		--min-len 128 --max-len 256 --max-tokens 128 "$@" >>"$OUT/spec.log" 2>&1
	echo "rc=$?" >>"$OUT/spec.log"
	echo "$label, batch $batch: $(tail -30 "$OUT/spec.log" | grep -E -o "[0-9.,]+ output tokens/s|acceptance[^,;]*" | tr '\n' ' ')"
}
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	[ -d "/tmp/bench-$size" ] || python3 bench/infer/make_bench_model.py --size "$size" --out "/tmp/bench-$size" 2>&1 | tail -1
	if [ "$size" = 8b ] && [ ! -d /tmp/bench-1b ]; then python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b 2>&1 | tail -1; fi
	for b in 1 8; do
		stamp "== batch $b"
		run "no speculation" "$b"
		run "self draft, K=$k" "$b" --speculative-model "/tmp/bench-$size" --num-speculative-tokens "$k"
		[ "$size" = 8b ] && run "bench-1b draft, K=$k" "$b" --speculative-model /tmp/bench-1b --num-speculative-tokens "$k"
		run "copy workload, no speculation" "$b" --workload copy
		run "copy workload, [ngram], K=$k" "$b" --workload copy --speculative-model "[ngram]" --num-speculative-tokens "$k"
	done
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
