#!/usr/bin/env bash
# Session 33's first call: the GPU check of c242736 (bench/devrun-s32b.sh's
# tests), the LoRA kernels under Nsight Compute (each kernel's device time,
# DRAM bytes and occupancy beside cuBLAS's product of the same projection,
# from BenchmarkLoRA), and train/sft-1b's op profile (SLUICE_TRAIN_PROFILE=1)
# with EmbedBackwardGrouped against the tree before it (sluice.old, built
# from 4abd106) and a micro-batch 8 × 4 run beside the 4 × 8 default. The
# new binaries run on a CUDA 13 build of the carried kernels (sm_90 PTX,
# built at the start of the call); the tests on the embedded PTX. Build here:
#
#	d=devrun-s33a; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o $d/train.test ./train
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	git stash -q && go build -trimpath -ldflags="-s -w" -o $d/sluice.old ./cmd/sluice && git stash pop -q
#	tar -C gpu/kernels -cJf $d/kernels.txz sluice.cu train.cuh quant.cuh lora.cuh
#	xz -T2 $d/cuda.test $d/train.test $d/sluice $d/sluice.old
#
# and run `bash bench/devrun-s33a.sh` with carry ["devrun-s33a"]. $OUT:
# summary.txt, tests.log, ncu.csv, prof.err, train-*.jsonl.
cd "$(dirname "$0")/.."
bin=$PWD/devrun-s33a
for f in cuda.test train.test sluice sluice.old; do [ -x "$bin/$f" ] || { xz -dk "$bin/$f.xz" && chmod +x "$bin/$f"; }; done
. bench/devlib.sh 420
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	prepare "$bin"
	stamp "== gpu/cuda: quant paths, capture, real bf16, LoRA, flash (c242736)"
	(cd gpu/cuda && timeout "$(cap 120)" "$bin/cuda.test" -test.v -test.count=1 -test.run 'TestQuantPaths|TestQuantCapture|TestRealBF16|TestLoRA|TestFlash|TestCallKeeps|TestEmbedBackwardGrouped|TestBackwardVsCPU|TestBackwardConformance' >"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	grep -E -- "^(--- |    --- )(PASS|FAIL)" "$OUT/tests.log" | grep -v "/.*/" | head -30
	stamp "== train on cuda against PyTorch, bf16 and f32 (EmbedBackwardGrouped)"
	for pr in bf16 f32; do
		(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=$([ $pr = bf16 ] && echo bf16) timeout "$(cap 60)" "$bin/train.test" -test.v -test.count=1 -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch|TestDeviceOptimizerMatchesHost' >/tmp/t-$pr.log 2>&1); echo "$pr rc=$?"
		summ /tmp/t-$pr.log; cat /tmp/t-$pr.log >>"$OUT/tests.log"
	done
	ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
	stamp "== BenchmarkLoRA under ncu ($ncu)"
	m=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__block_size,lts__t_bytes.sum
	for b in q/rows=256 down/rows=256 gate_up/rows=256 q/rows=4096 gate_up/rows=4096 down/rows=4096; do
		echo "## $b" >>"$OUT/ncu.csv"
		(cd gpu/cuda && timeout "$(cap 40)" "$ncu" --clock-control none --csv --metrics $m -c 12 "$bin/cuda.test" -test.run XXX -test.bench "BenchmarkLoRA/^${b%%/*}\$/^${b#*/}\$" -test.benchtime 1x >>"$OUT/ncu.csv" 2>&1); echo "$b rc=$?"
	done
	stamp "== BenchmarkLoRA plain"
	(cd gpu/cuda && timeout "$(cap 40)" "$bin/cuda.test" -test.run XXX -test.bench BenchmarkLoRA -test.benchtime 2x 2>&1 | grep -E "Benchmark|FAIL|panic" | sed -E 's/ +/ /g')
	wait $model; tail -1 /tmp/model1.log
	python3 -c "
import json, random
r = random.Random(0)
with open('/tmp/sft.jsonl', 'w') as f:
    for i in range(32 * 6):
        f.write(json.dumps({'input_ids': [r.randrange(128256) for _ in range(1024)]}) + '\n')
"
	wait $ptx && export SLUICE_CUDA_PTX=/tmp/k/sluice_sm90.ptx && echo "train runs on the CUDA 13 PTX ($(nvcc --version | tail -1))" || tail -5 /tmp/k/build.log
	tr=(train --model /tmp/bench-1b --device cuda --precision bf16 --data /tmp/sft.jsonl --max-seq-len 1024 --shuffle=false --peak-flops 989e12)
	stamp "== sft-1b op profile (4 x 2, one step)"
	SLUICE_TRAIN_PROFILE=1 timeout "$(cap 60)" "$bin/sluice" "${tr[@]}" --batch-size 4 --grad-accum 2 --steps 1 --out /tmp/o1 >"$OUT/train-prof.jsonl" 2>"$OUT/prof.err"; echo "rc=$?"
	grep -v -E '^\s*$' "$OUT/prof.err" | head -60
	for run in "sluice.old 4 8" "sluice 4 8" "sluice 8 4" "sluice.old 4 8"; do
		set -- $run
		stamp "== sft-1b $1 micro $2 x $3, 4 steps"
		SLUICE_CUDA_PTX=$([ $1 = sluice ] && echo "$SLUICE_CUDA_PTX") timeout "$(cap 70)" "$bin/$1" "${tr[@]}" --batch-size $2 --grad-accum $3 --steps 4 --out /tmp/o$2 >"$OUT/train-$1-$2x$3.jsonl" 2>"$OUT/train-$1-$2x$3.err"; echo "rc=$?"
		tail -2 "$OUT/train-$1-$2x$3.err"; tail -2 "$OUT/train-$1-$2x$3.jsonl" | cut -c1-400
	done
	nvidia-smi --query-gpu=memory.used --format=csv,noheader
	stamp done
} 2>&1 | tee /tmp/s33a.txt
cp /tmp/s33a.txt "$OUT/summary.txt"
