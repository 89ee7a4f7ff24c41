#!/usr/bin/env bash
# A short call (what a nearly spent device budget allows): the GPU tests
# of sessions 33 and 34's kernels and ops (qMMA, MatMulBackwardAcc, EmbedBackwardGrouped,
# the two-read crossEntropy, the LoRA shrink's warps and the expand's
# loads, bf16 activations), train's PyTorch tests at bf16, and the plain
# BenchmarkLoRA (to set against the first call's). Uses devrun-s34's
# bundle (its header has the build); run `bash bench/devrun-s34c.sh` with
# carry ["devrun-s34"]. $OUT: summary.txt, tests.log.
cd "$(dirname "$0")/.."
bin=$PWD/devrun-s34
for f in cuda.test train.test; do [ -x "$bin/$f" ] || { xz -dk "$bin/$f.xz" && chmod +x "$bin/$f"; }; done
. bench/devlib.sh 75
{
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	stamp "== gpu/cuda tests"
	(cd gpu/cuda && timeout "$(cap 30)" "$bin/cuda.test" -test.v -test.count=1 -test.run 'TestQuantMMA|TestQuantPaths|TestMatMulBackwardAcc|TestEmbedBackwardGrouped|TestBackwardVsCPU|TestBackwardConformance|TestBF16Activations|TestRealBF16|TestConformance$/LoRA|TestLoRA' >"$OUT/tests.log" 2>&1); echo "rc=$?"
	summ "$OUT/tests.log"
	stamp "== train on cuda against PyTorch, bf16"
	(cd train && SLUICE_TEST_DEVICE=cuda SLUICE_TEST_PRECISION=bf16 timeout "$(cap 25)" "$bin/train.test" -test.v -test.count=1 -test.run 'TestGradMatchesPyTorch|TestCurvesMatchPyTorch' >/tmp/t.log 2>&1); echo "rc=$?"
	summ /tmp/t.log; cat /tmp/t.log >>"$OUT/tests.log"
	stamp "== BenchmarkLoRA"
	(cd gpu/cuda && timeout "$(cap 25)" "$bin/cuda.test" -test.run XXX -test.bench BenchmarkLoRA -test.benchtime 2x 2>&1 | grep -E "Benchmark|FAIL|panic" | sed -E 's/ +/ /g')
	stamp done
} 2>&1 | tee /tmp/s34c.txt
cp /tmp/s34c.txt "$OUT/summary.txt"
