#!/usr/bin/env bash
# The lead's last GPU-machine call of a stop, in one run: rebuild the
# kernels with CUDA 13 (every helper's .cuh together), run the cuda
# conformance suite and the kernel-using package tests against that PTX,
# then the CPU workloads on the machine's 16 quiet cores (bench/devrun-cpu.sh:
# etl/sales-10m Q1-Q5 against DuckDB, cluster/noop at several worker
# counts) with CPU profiles. Build on the development machine:
#
#	mkdir -p devrun-final
#	CGO_ENABLED=0 go test -c -o devrun-final/cuda.test ./gpu/cuda
#	CGO_ENABLED=0 go build -trimpath -o devrun-final/sluice ./cmd/sluice
#	CGO_ENABLED=0 go test -c -trimpath -o devrun-final/coord.test ./executor/cluster/coordinator
#	cp .cache/etl/duckbench devrun-final/    # cgo DuckDB peer (bench/duckdb)
#	tar -C devrun-final -czf devrun-final/bin.tgz cuda.test sluice coord.test duckbench && rm devrun-final/{cuda.test,sluice,coord.test,duckbench}
#
# then run `bash bench/devrun-final.sh` through the device tool with carry
# ["devrun-final"]. $OUT gets kernels.tgz (the PTX, resources and hashes:
# unpack into gpu/kernels/ and commit), cuda.log, etl.log, noop.log,
# profiles.tgz and summary.txt (the tool returns at most eight files).
# SKIP_SUITE=1 / SKIP_CPU=1 leave a part out; RUNS and NOOP as in
# devrun-cpu.sh; SPEC=1 adds bench/infer/devrun-spec.sh (spec.log).
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/devrun-final
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
k=$(mktemp -d)
prof=$(mktemp -d)
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	stamp "== kernels (CUDA 13)"
	bash gpu/kernels/build.sh "$k" >"$prof/build.log" 2>&1 || { tail -40 "$prof/build.log"; exit 1; }
	head -2 "$prof/build.log"
	cat "$k/sluice.cu.sha256"
	tar -C "$k" -czf "$OUT/kernels.tgz" .
	if [ -z "${SKIP_SUITE:-}" ]; then
		stamp "== cuda package tests, sm_90 PTX just built"
		(cd gpu/cuda && SLUICE_CUDA_PTX=$k/sluice_sm90.ptx timeout 240 "$bin/cuda.test" -test.v -test.timeout 230s >"$OUT/cuda.log" 2>&1)
		echo "rc=$?"
		grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic:" "$OUT/cuda.log" | head -30
		echo "passed: $(grep -c -- '--- PASS' "$OUT/cuda.log"), failed: $(grep -c -- '--- FAIL' "$OUT/cuda.log")"
	fi
	if [ -z "${SKIP_CPU:-}" ]; then
		stamp "== CPU workloads (bench/devrun-cpu.sh)"
		mkdir -p "$root/devrun-cpu"
		(cd "$bin" && tar -czf "$root/devrun-cpu/bin.tgz" sluice coord.test duckbench)
		OUT=$OUT bash bench/devrun-cpu.sh >/dev/null 2>&1
		mv "$OUT/summary.txt" "$prof/cpu-summary.txt"
		cat "$prof/cpu-summary.txt"
		stamp "== CPU profiles: etl q1-q3, noop 100k tasks / 16 workers"
		for q in q1 q2 q3; do
			timeout 60 "$bin/sluice" bench etl-query "$q" --in /tmp/bench/sales-10000000-8 \
				--users /tmp/bench/sales-10000000-8-users/users.parquet --out "/tmp/prof-$q" --cpuprofile "$prof/etl-$q.prof" >/dev/null 2>&1
			echo "$q rc=$?"
		done
		(cd executor/cluster/coordinator && timeout 120 "$bin/coord.test" -test.run '^$' -test.bench 'NoopJob$' -test.benchtime 1x \
			-noop.tasks 100000 -noop.workers 16 -test.cpuprofile "$prof/noop.prof" >/dev/null 2>&1)
		echo "noop rc=$?"
	fi
	if [ -n "${SPEC:-}" ]; then
		stamp "== speculative decoding (bench/infer/devrun-spec.sh, SIZE=${SIZE:-1b})"
		SPEC_BIN=$bin OUT=$OUT bash bench/infer/devrun-spec.sh
	fi
	stamp "done"
} 2>&1 | tee "$prof/summary.txt"
cp "$prof/summary.txt" "$OUT/summary.txt"
tar -C "$prof" -czf "$OUT/profiles.tgz" .
