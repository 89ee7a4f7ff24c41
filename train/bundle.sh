#!/usr/bin/env bash
# Builds devrun-trainperf/ for train/devperf.sh on the development machine:
# the binaries of the working tree's training files over a clean HEAD
# (others' uncommitted work stays out), train-old.test from HEAD alone,
# and the kernel sources (kernels.tgz) the run compiles with CUDA 13.
# FILES lists the changed files to lay over HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/devrun-trainperf
rm -rf "$out" /tmp/bld-old /tmp/bld-new && mkdir -p "$out" /tmp/bld-old /tmp/bld-new
git archive HEAD | tar -x -C /tmp/bld-old
git archive HEAD | tar -x -C /tmp/bld-new
for f in ${FILES:?}; do mkdir -p "/tmp/bld-new/$(dirname "$f")" && cp "$f" "/tmp/bld-new/$f"; done
flags=(-trimpath -ldflags="-s -w")
(cd /tmp/bld-old && CGO_ENABLED=0 go test -c "${flags[@]}" -o "$out/train-old.test" ./train)
(cd /tmp/bld-new && CGO_ENABLED=0 go test -c "${flags[@]}" -o "$out/train.test" ./train &&
	CGO_ENABLED=0 go test -c "${flags[@]}" -o "$out/cuda.test" ./gpu/cuda &&
	CGO_ENABLED=0 go build "${flags[@]}" -o "$out/sluice" ./cmd/sluice)
tar -C "$out" -czf "$out/bin.tgz" train-old.test train.test cuda.test sluice
rm "$out"/*.test "$out/sluice"
tar -C /tmp/bld-new/gpu/kernels -czf "$out/kernels.tgz" sluice.cu train.cuh quant.cuh lora.cuh build.sh
nvcc -ptx -O3 -std=c++17 -arch=compute_90 -o "$out/sluice_sm90_nvcc118.ptx" /tmp/bld-new/gpu/kernels/sluice.cu
ls -l "$out"
