# Shared helpers of the GPU-call scripts (source it after cd to the repo
# root; BUDGET, in seconds, bounds the call, default $1 or 300):
#   stamp MSG   prints MSG with the seconds since sourcing
#   left        the seconds of BUDGET left
#   cap N       a stage's timeout: at most N, at most what is left (>= 5)
#   summ LOG    a test log's failures and its pass/fail/skip counts
#   filter [N]  stdin's test lines (results, failures, log lines), the last N
#   prepare BIN  starts, in the background, bench-1b into /tmp/bench-1b
#               ($model) and a CUDA 13 sm_90 PTX of BIN/kernels.txz into
#               /tmp/k/sluice_sm90.ptx ($ptx); wait on them before use
t0=$(date +%s)
budget=${BUDGET:-${1:-300}}
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
left() { echo $((budget - ($(date +%s) - t0))); }
cap() { local l; l=$(left); echo $((l < $1 ? (l > 5 ? l : 5) : $1)); }
summ() {
	grep -E -- "^\s*--- FAIL|^(ok|FAIL|PASS)$|panic:|_test.go:[0-9]+: " "$1" | grep -v "worst error" | head -30
	echo "passed: $(grep -c -- '--- PASS' "$1"), failed: $(grep -c -- '--- FAIL' "$1"), skipped: $(grep -c -- '--- SKIP' "$1")"
}
filter() {
	local log
	log=$(mktemp)
	cat >"$log"
	grep -E -- "^\s*--- |^(ok|FAIL|PASS)|panic|\.go:[0-9]+: " "$log" | grep -v -E -- "--- PASS: TestConformance/" | tail -"${1:-60}"
}
prepare() {
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1 &
	model=$!
	mkdir -p /tmp/k && tar -C /tmp/k -xJf "$1/kernels.txz"
	(cd /tmp/k && nvcc -ptx -O3 -std=c++17 -arch=compute_90 -o /tmp/k/sluice_sm90.ptx sluice.cu) >/tmp/k/build.log 2>&1 &
	ptx=$!
}
