#!/usr/bin/env bash
# The next GPU call (written in session 33, which could not run it, and
# extended in session 34, which had no device): first the int4
# tensor-core product (qMMA: TestQuantMMA, TestQuantPaths, TestQuantCapture
# on the embedded PTX, then BenchmarkQMatMul's int4 paths side by side
# with bf16 cuBLAS on the CUDA 13 PTX); then MatMulBackwardAcc and the
# larger LM-head chunks
# on the GPU (gpu/cuda and train's PyTorch tests), the LoRA kernels under
# Nsight Compute (their own device time, DRAM bytes, occupancy), then
# train/sft-1b: sluice at micro-batch 8 × 4 against PyTorch eager at 8 × 4
# in the same call (bench/train/devrun-sft.sh), and sluice with the MLP's
# activations in bf16 (SLUICE_TRAIN_BF16_ACTS=1) before them; then infer/offline-512 on
# bench-1b, base against 16 adapters of rank 16. sluice runs on a CUDA 13
# build of the carried kernels; the tests on the embedded PTX. Build here:
#
#	d=devrun-s34; mkdir -p $d && export CGO_ENABLED=0
#	go test -c -trimpath -ldflags="-s -w" -o $d/cuda.test ./gpu/cuda
#	go test -c -trimpath -ldflags="-s -w" -o $d/train.test ./train
#	go test -c -trimpath -ldflags="-s -w" -o $d/fixtures.test ./gpu/cuda/fixtures
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C gpu/kernels -cJf $d/kernels.txz sluice.cu train.cuh quant.cuh lora.cuh
#	xz -T2 $d/cuda.test $d/train.test $d/fixtures.test $d/sluice
#
# and run `bash bench/devrun-s34.sh` with carry ["devrun-s34"]. $OUT:
# summary.txt, tests.log, quant.log, qbench.txt, ncu.csv and devrun-sft.sh's files.
cd "$(dirname "$0")/.."
bin=$PWD/devrun-s34
for f in cuda.test train.test fixtures.test sluice; do [ -x "$bin/$f" ] || { xz -dk "$bin/$f.xz" && chmod +x "$bin/$f"; }; done
. bench/devlib.sh 540
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	prepare "$bin"
	stamp "== gpu/cuda: int4 tensor-core product (qMMA)"
	(cd gpu/cuda && timeout "$(cap 60)" "$bin/cuda.test" -test.v -test.count=1 -test.run 'TestQuantMMA|TestQuantPaths|TestQuantCapture' >"$OUT/quant.log" 2>&1); echo "rc=$?"
	summ "$OUT/quant.log"
	wait $ptx && export SLUICE_CUDA_PTX=/tmp/k/sluice_sm90.ptx && echo "benchmarks run on the CUDA 13 PTX ($(nvcc --version | tail -1))" || tail -5 /tmp/k/build.log
	stamp "== BenchmarkQMatMul: bench-8b gate_up, bf16 against int4 auto/mma/tile/gemv"
	(cd gpu/cuda && timeout "$(cap 90)" "$bin/cuda.test" -test.run XXX -test.bench 'BenchmarkQMatMul/(bf16|int4)' -test.benchtime 20x 2>&1 | grep -E "Benchmark|FAIL|panic" | sed -E 's/ +/ /g' | tee "$OUT/qbench.txt")
	unset SLUICE_CUDA_PTX
	stamp "== gpu/cuda: MatMulBackwardAcc, EmbedBackwardGrouped, backward vs cpu, bf16"
	(cd gpu/cuda && timeout "$(cap 60)" "$bin/cuda.test" -test.v -test.count=1 -test.run 'TestMatMulBackwardAcc|TestEmbedBackwardGrouped|TestBackwardVsCPU|TestBackwardConformance|TestRealBF16|TestTrainPrecision|TestConformance$/LoRA|TestLoRA|TestBF16Activations' >"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	stamp "== train on cuda against PyTorch at bf16, without and with SLUICE_TRAIN_BF16_ACTS=1"
	for acts in 0 1; do
		pr=bf16-acts$acts
		(cd train && SLUICE_TRAIN_BF16_ACTS=$acts SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=bf16 timeout "$(cap 60)" "$bin/train.test" -test.v -test.count=1 -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch|TestDeviceOptimizerMatchesHost' >/tmp/t-$pr.log 2>&1); echo "$pr rc=$?"
		summ /tmp/t-$pr.log; cat /tmp/t-$pr.log >>"$OUT/tests.log"
	done
	wait $model; tail -1 /tmp/model1.log
	[ -s /tmp/k/sluice_sm90.ptx ] && export SLUICE_CUDA_PTX=/tmp/k/sluice_sm90.ptx && echo "sluice runs on the CUDA 13 PTX"
	python3 -c "
import json, random
r = random.Random(0)
with open('/tmp/sft.jsonl', 'w') as f:
    for i in range(32 * 6):
        f.write(json.dumps({'input_ids': [r.randrange(128256) for _ in range(1024)]}) + '\n')
"
	stamp "== train/sft-1b: sluice 8 x 4, PyTorch eager 8 x 4"
	BIN=$bin STEPS=4 SKIP_COMPILE=1 SLUICE_TIMEOUT=$(cap 90) TORCH_TIMEOUT=$(cap 110) bash bench/train/devrun-sft.sh >/dev/null 2>&1
	grep -v '^{' "$OUT/summary.txt"; grep -h -E '"step":' "$OUT/sluice.jsonl" | tail -2 | cut -c1-330; tail -2 "$OUT/torch.jsonl"
	stamp "== train/sft-1b: sluice 8 x 4 with SLUICE_TRAIN_BF16_ACTS=1"
	SLUICE_TRAIN_BF16_ACTS=1 timeout "$(cap 80)" "$bin/sluice" train --model /tmp/bench-1b --device cuda --precision bf16 --data /tmp/sft.jsonl --max-seq-len 1024 \
		--batch-size 8 --grad-accum 4 --steps 4 --shuffle=false --peak-flops 989e12 --out /tmp/sft-acts >"$OUT/sluice-acts.jsonl" 2>"$OUT/sluice-acts.err"; echo "rc=$?"
	tail -2 "$OUT/sluice-acts.err"; grep -h -E '"step":' "$OUT/sluice-acts.jsonl" | tail -2 | cut -c1-330
	ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
	stamp "== LoRA kernels under ncu"
	m=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__block_size,lts__t_bytes.sum,smsp__inst_executed.sum,l1tex__t_bytes.sum
	for b in q/rows=256 down/rows=256 q/rows=4096 gate_up/rows=4096; do
		echo "## $b" >>"$OUT/ncu.csv"
		(cd gpu/cuda && timeout "$(cap 30)" "$ncu" --clock-control none --csv --metrics $m -k regex:lora -c 4 "$bin/cuda.test" -test.run XXX -test.bench "BenchmarkLoRA/^${b%%/*}\$/^${b#*/}\$" -test.benchtime 1x >>"$OUT/ncu.csv" 2>&1); echo "$b rc=$?"
	done
	stamp "== infer/offline-512 bench-1b: base, 16 LoRA adapters of rank 16"
	python3 bench/infer/make_bench_loras.py --model /tmp/bench-1b --n 16 --rank 16 --out /tmp/loras 2>&1 | tail -1
	mods=""
	for i in $(seq 0 15); do mods="$mods a$i=/tmp/loras/a$i"; done
	common=(bench infer --model /tmp/bench-1b --device cuda --prompts 512 --min-len 128 --max-len 512 --max-tokens 128 --max-num-seqs 256 --max-num-batched-tokens 8192)
	echo "-- base" >>"$OUT/infer.log"
	timeout "$(cap 50)" "$bin/sluice" "${common[@]}" >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	echo "-- loras16" >>"$OUT/infer.log"
	SLUICE_CUDA_LORA_GRAPHS=1 timeout "$(cap 60)" "$bin/sluice" "${common[@]}" --lora-modules "${mods# }" --use-loras --max-loras 16 --max-lora-rank 16 >>"$OUT/infer.log" 2>&1; echo "rc=$?"
	grep -E "^--|output tokens/s|LoRA adapters| steps, |rror" "$OUT/infer.log"
	stamp done
} 2>&1 | tee /tmp/s34.txt
cp /tmp/s34.txt "$OUT/summary.txt"
