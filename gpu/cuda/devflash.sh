#!/usr/bin/env bash
# One GPU call for the fused training attention (flashFwd*/flashBwd* of
# gpu/kernels/train.cuh, gpu/cuda/trainattn.go): builds the kernels with the
# machine's nvcc (the embedded PTX has no flash kernels yet), runs the new
# tests and the backward/precision tests of gpu/cuda, train's PyTorch tests
# on cuda at bf16, BenchmarkTrainAttention (bench-1b's attention shape, the
# GEMM path against the fused kernels) and, with time left, one bf16 step
# of `sluice train` on bench-1b with SLUICE_TRAIN_PROFILE=1 (as
# bench/train/devrun-bf16.sh runs it). Build on the development machine:
#
#	d=devrun-fa; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o $d/train.test ./train
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -cJf $d/bin.txz cuda.test train.test sluice && (cd $d && rm cuda.test train.test sluice)
#
# then `bash gpu/cuda/devflash.sh` with carry ["devrun-fa"]. BUDGET
# (seconds, default 240) bounds the whole call; each stage is skipped or
# cut short when too little is left. $OUT: kernels.tgz (the PTX and the
# resource reports built here), build.txt, tests.txt, bench.txt,
# profile.txt (and profile-gemm.txt: the same step with
# SLUICE_CUDA_FLASH_ATTN=0, if time is left). Summary lines go to stdout.
cd "$(dirname "$0")/../.."
root=$PWD
b=$root/devrun-fa
tar -C "$b" -xJf "$b/bin.txz"
. bench/devlib.sh 240
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1) &
model=$!

k=/tmp/fa-kernels
stamp "== build the kernels (gpu/kernels/build.sh $k)"
timeout "$(cap 120)" bash gpu/kernels/build.sh "$k" >"$OUT/build.txt" 2>&1 || { echo "build failed:"; tail -30 "$OUT/build.txt"; }
tar -C "$k" -czf "$OUT/kernels.tgz" . 2>/dev/null
awk '/Compiling entry function .flash/ { f = $0; sub(/.*function ./, "", f); sub(/. for.*/, "", f); n = 3; next }
	n > 0 { n--; if (/spill/) { s = $0; sub(/^ */, "", s) } if (/Used/) { u = $0; sub(/.*: /, "", u); print f ": " u "; " s } }' "$k/resources_sm90.txt"
export SLUICE_CUDA_PTX=$k/sluice_sm90.ptx
[ -f "$SLUICE_CUDA_PTX" ] || { echo "no $SLUICE_CUDA_PTX: stopping"; exit 1; }

{
	stamp "== gpu/cuda: TestFlash*, backward, precision, real bf16"
	(cd gpu/cuda && timeout "$(cap 100)" "$b/cuda.test" -test.run 'TestFlash|TestBackwardVsCPU|TestBackwardConformance|TestRealBF16|TestTrainPrecision' \
		-test.count=1 -test.v 2>&1 | filter 60)
	stamp "== train TestGradMatchesPyTorch|TestCurvesMatchPyTorch on cuda, SLUICE_TEST_PRECISION=bf16"
	(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=bf16 timeout "$(cap 60)" "$b/train.test" \
		-test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch' -test.count=1 -test.v 2>&1 | filter 40)
} 2>&1 | tee "$OUT/tests.txt" | grep -E "^\[|flash at bf16|^(ok|FAIL|PASS)|--- FAIL|panic"

stamp "== BenchmarkTrainAttention (seqs 4, T 1024, heads 32, kv 8, D 64; bf16)" | tee "$OUT/bench.txt"
(cd gpu/cuda && timeout "$(cap 60)" "$b/cuda.test" -test.run '^$' -test.bench 'BenchmarkTrainAttention' -test.benchtime 50x 2>&1) | tee -a "$OUT/bench.txt" | grep -E "Benchmark|FAIL|panic"

# One bf16 step of train/sft-1b with the op profile, as devrun-bf16.sh runs it.
python3 -c "
import json, random
r = random.Random(0)
with open('/tmp/sft.jsonl', 'w') as f:
    for i in range(32 * 3):
        f.write(json.dumps({'input_ids': [r.randrange(128256) for _ in range(1024)]}) + '\n')
"
wait "$model"
step() { # out-file [env]
	[ -f /tmp/bench-1b/config.json ] || { echo "no /tmp/bench-1b: $(tail -2 /tmp/model1.log)"; return; }
	timeout "$(cap 90)" env SLUICE_TRAIN_PROFILE=1 $2 "$b/sluice" train --model /tmp/bench-1b --device cuda --precision bf16 --data /tmp/sft.jsonl \
		--max-seq-len 1024 --batch-size 4 --grad-accum 8 --steps 1 --shuffle=false --peak-flops 989e12 --out /tmp/sft-prof >"$1" 2>&1
	echo "rc=$?" >>"$1"
}
if [ "$(left)" -gt 45 ]; then
	stamp "== one bf16 step, SLUICE_TRAIN_PROFILE=1 (flash), $(left)s left"
	step "$OUT/profile.txt"
	grep -E "^op|CausalAttention|^all|tok/s|rc=" "$OUT/profile.txt" | head -12
fi
if [ "$(left)" -gt 45 ]; then
	stamp "== the same step with SLUICE_CUDA_FLASH_ATTN=0 (GEMM attention), $(left)s left"
	step "$OUT/profile-gemm.txt" SLUICE_CUDA_FLASH_ATTN=0
	grep -E "^op|CausalAttention|^all|tok/s|rc=" "$OUT/profile-gemm.txt" | head -12
fi
stamp done
grep -E -- "--- FAIL|^FAIL|panic" "$OUT/tests.txt" "$OUT/bench.txt" | head -20
