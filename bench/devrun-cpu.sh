#!/usr/bin/env bash
# The CPU workloads on the GPU machine's 16 quiet cores (the dev VM has 2,
# shared): etl/sales-10m Q1-Q5 against DuckDB (sluice bench etl) and
# cluster/noop-100k's scale figure (BenchmarkNoopJob at 1/4/16/64 workers).
# Build on the development machine:
#
#	mkdir -p devrun-cpu && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o devrun-cpu/sluice ./cmd/sluice
#	CGO_ENABLED=0 go test -c -trimpath -ldflags="-s -w" -o devrun-cpu/coord.test ./executor/cluster/coordinator
#	(cd bench/duckdb && go build -trimpath -ldflags="-s -w" -o ../../devrun-cpu/duckbench .)   # cgo: DuckDB
#	tar -C devrun-cpu -czf devrun-cpu/bin.tgz sluice coord.test duckbench && rm devrun-cpu/{sluice,coord.test,duckbench}
#
# then run `bash bench/devrun-cpu.sh` through the device tool with carry
# ["devrun-cpu"]. SKIP_ETL=1 / SKIP_NOOP=1 leave a part out; NOOP lists
# "tasks:workers" pairs. $OUT gets etl.log, noop.log and summary.txt.
cd "$(dirname "$0")/.."
bin=$PWD/devrun-cpu
tar -C "$bin" -xzf "$bin/bin.tgz"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
{
	nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2; uptime
	if [ -z "${SKIP_ETL:-}" ]; then
		stamp "== etl/sales-10m Q1-Q5, sluice and DuckDB, medians of ${RUNS:-5}"
		timeout 330 "$bin/sluice" bench etl --dir /tmp/bench --duckdb "$bin/duckbench" --runs "${RUNS:-5}" >"$OUT/etl.log" 2>&1
		echo "rc=$?"; tail -12 "$OUT/etl.log"
	fi
	if [ -z "${SKIP_NOOP:-}" ]; then
		cd executor/cluster/coordinator
		for p in ${NOOP:-10000:1 10000:4 10000:16 10000:64 100000:16 100000:64}; do
			stamp "== noop ${p%%:*} tasks, ${p##*:} workers"
			timeout 120 "$bin/coord.test" -test.run '^$' -test.bench 'NoopJob$' -test.benchtime 1x \
				-noop.tasks "${p%%:*}" -noop.workers "${p##*:}" >>"$OUT/noop.log" 2>&1
			echo "rc=$?"; grep -E "^BenchmarkNoopJob" "$OUT/noop.log" | tail -1
		done
	fi
	stamp "done"
} 2>&1 | tee "$OUT/summary.txt"
