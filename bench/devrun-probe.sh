#!/usr/bin/env bash
# A probe call: re-runs the GPU tests of fixes not yet run on a GPU (the
# lt-path revert, bf16 gradients, LoRA graphs) on the committed CUDA 13
# PTX, then, when the machine has Nsight Systems, a kernel-time summary
# (nsys stats cuda_gpu_kern_sum, graphs traced per node) of
# infer/offline-512 on bench-1b for the base, 16 LoRA adapters of rank 16
# and --quantization fp8 W8A8, to see where their time goes. Build here:
#
#	d=devrun-probe; mkdir -p $d && export CGO_ENABLED=0
#	for p in gpu/cuda infer/model train; do go test -c -trimpath -ldflags="-s -w" -o $d/$(basename $p).test ./$p; done
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -cJf $d/bin.txz cuda.test model.test train.test sluice && (cd $d && rm *.test sluice)
#
# and run `bash bench/devrun-probe.sh` with carry ["devrun-probe"].
# $OUT: tests.log, prof-*.txt, summary.txt. BUDGET (default 330 s).
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/devrun-probe
tar -C "$bin" -xJf "$bin/bin.txz"
. bench/devlib.sh 330
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	nsys=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
	echo "nsys: ${nsys:-none}; ncu: $(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)"
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model.log 2>&1 &
	model=$!
	stamp "== gpu/cuda: quant paths, capture, real bf16, LoRA"
	(cd gpu/cuda && SLUICE_CUDA_LORA_GRAPHS=1 timeout 90 "$bin/cuda.test" -test.v -test.count=1 -test.run 'TestQuantPaths|TestQuantCapture|TestRealBF16|TestLoRA' >"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	stamp "== train on cuda bf16"
	(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=bf16 timeout 60 "$bin/train.test" -test.v -test.count=1 -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch|TestDeviceOptimizerMatchesHost' >/tmp/t.log 2>&1); echo "rc=$?"
	summ /tmp/t.log; cat /tmp/t.log >>"$OUT/tests.log"
	stamp "== infer/model quantized + LoRA graphs on cuda"
	(cd infer/model && SLUICE_TEST_DEVICE=cuda SLUICE_CUDA_LORA_GRAPHS=1 timeout 60 "$bin/model.test" -test.v -test.count=1 -test.run 'TestQuantizedDevice|TestLoRAGraphs' >/tmp/m.log 2>&1); echo "rc=$?"
	summ /tmp/m.log; cat /tmp/m.log >>"$OUT/tests.log"
	python3 bench/infer/make_bench_loras.py --model /tmp/bench-1b --n 16 --rank 16 --out /tmp/loras 2>&1 | tail -1
	mods=""
	for i in $(seq 0 15); do mods="$mods a$i=/tmp/loras/a$i"; done
	common=(bench infer --model /tmp/bench-1b --device cuda --prompts 256 --min-len 128 --max-len 512 --max-tokens 128
		--max-num-seqs 256 --max-num-batched-tokens 8192)
	one() { # label, env, flags...
		local label=$1 env=$2
		shift 2
		[ "$(left)" -gt 40 ] || { echo "-- $label: skipped (time)"; return; }
		local pre=()
		[ -n "$nsys" ] && pre=("$nsys" profile -q -t cuda --cuda-graph-trace=node -o "/tmp/p-$label" -f true)
		timeout $(($(left) - 10)) env $env "${pre[@]}" "$bin/sluice" "${common[@]}" "$@" >"/tmp/i-$label.log" 2>&1; echo "rc=$?"
		echo "$label: $(tail -12 "/tmp/i-$label.log" | grep -E -o "[0-9.]+ output tokens/s|peak device memory [0-9]+ MiB|[0-9]+ steps, [^;]*" | tr '\n' ' ')"
		if [ -n "$nsys" ] && [ -f "/tmp/p-$label.nsys-rep" ]; then
			timeout 60 "$nsys" stats -q --report cuda_gpu_kern_sum --format csv "/tmp/p-$label.nsys-rep" 2>/dev/null |
				python3 -c '
import csv,sys
r=list(csv.DictReader(l for l in sys.stdin if l.strip() and not l.startswith("Processing")))
tot=sum(float(x["Total Time (ns)"]) for x in r) or 1
print("kernel time %.1f ms" % (tot/1e6))
for x in r[:22]: print("%5.1f%% %9.2f ms %8d  %s" % (100*float(x["Total Time (ns)"])/tot, float(x["Total Time (ns)"])/1e6, int(x["Instances"]), x["Name"][:110]))
' >"$OUT/prof-$label.txt" 2>&1
			head -24 "$OUT/prof-$label.txt"
		fi
	}
	stamp "== offline (256 prompts), bench-1b"
	one base ""
	one loras16 "SLUICE_CUDA_LORA_GRAPHS=1" --lora-modules "${mods# }" --use-loras --max-loras 16 --max-lora-rank 16
	one fp8w8a8 "SLUICE_CUDA_FP8_ACT=1" --quantization fp8
	stamp "done"
} 2>&1 | tee /tmp/summary.txt
cp /tmp/summary.txt "$OUT/summary.txt"
