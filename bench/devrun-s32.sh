#!/usr/bin/env bash
# Session 32's measuring call: the quantized product's open GPU failure
# (TestQuantPaths under compute-sanitizer memcheck, and each path in a
# process of its own), infer/model's quantized checkpoints with FP8 W8A8 on
# by default, then train/sft-1b (sluice with the fused attention against
# PyTorch eager, torch.compile when time is left) through
# bench/train/devrun-sft.sh. Build here:
#
#	d=devrun-s32; mkdir -p $d && export CGO_ENABLED=0
#	for p in gpu/cuda infer/model; do go test -c -trimpath -ldflags="-s -w" -o $d/$(basename $p).test ./$p; done
#	go build -trimpath -ldflags="-s -w" -o $d/sluice ./cmd/sluice
#	tar -C $d -cJf $d/bin.txz cuda.test model.test sluice && (cd $d && rm *.test sluice)
#
# and run `bash bench/devrun-s32.sh` with carry ["devrun-s32"]. $OUT:
# summary.txt, quant.log, sanitizer.log and devrun-sft.sh's files.
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/devrun-s32
tar -C "$bin" -xJf "$bin/bin.txz"
. bench/devlib.sh 450
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	python3 bench/infer/make_bench_model.py --size 1b --out /tmp/bench-1b >/tmp/model1.log 2>&1 &
	model=$!
	san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
	stamp "== TestQuantPaths, each path alone"
	for p in auto gemv lt ltrow tile; do
		(cd gpu/cuda && timeout "$(cap 30)" "$bin/cuda.test" -test.v -test.count=1 -test.run "TestQuantPaths/^$p\$" >"/tmp/q-$p.log" 2>&1)
		echo "$p: rc=$? $(grep -c -- '--- PASS' "/tmp/q-$p.log") passed, $(grep -c -- '--- FAIL' "/tmp/q-$p.log") failed; first: $(grep -m1 -E -- '_test.go:[0-9]+:|quant.go:[0-9]+:|panic' "/tmp/q-$p.log" | cut -c1-300)"
		cat "/tmp/q-$p.log" >>"$OUT/quant.log"
	done
	stamp "== TestQuantPaths whole under memcheck ($san)"
	(cd gpu/cuda && timeout "$(cap 80)" "$san" --tool memcheck --show-backtrace device --print-limit 20 "$bin/cuda.test" -test.count=1 -test.run 'TestQuantPaths' >"$OUT/sanitizer.log" 2>&1); echo "rc=$?"
	grep -E -m12 -- "Invalid|ERROR SUMMARY|Address|at 0x|by thread|--- FAIL" "$OUT/sanitizer.log" | cut -c1-240
	stamp "== infer/model quantized checkpoints (W8A8 default)"
	(cd infer/model && SLUICE_TEST_DEVICE=cuda timeout "$(cap 60)" "$bin/model.test" -test.v -test.count=1 -test.run 'TestQuantizedDevice' >/tmp/m.log 2>&1); echo "rc=$?"
	summ /tmp/m.log; cat /tmp/m.log >>"$OUT/quant.log"
	wait $model; tail -1 /tmp/model1.log
	stamp "== train/sft-1b"
	[ "$(left)" -gt 260 ] || export SKIP_COMPILE=1
	BIN=$bin STEPS=${STEPS:-4} SLUICE_TIMEOUT=$(cap 120) TORCH_TIMEOUT=90 bash bench/train/devrun-sft.sh >/dev/null 2>&1
	cat "$OUT/summary.txt" 2>/dev/null | grep -v '^{' ; grep -h -E '"step":' "$OUT/sluice.jsonl" | tail -2; tail -4 "$OUT/torch.jsonl"
	stamp done
} 2>&1 | tee /tmp/s32.txt
cp /tmp/s32.txt "$OUT/s32.txt"
