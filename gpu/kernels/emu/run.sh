#!/usr/bin/env bash
# Builds and runs the emulators of this folder over their kernels' source:
# flash_emu.cc over the flash section of ../train.cuh, qmma_emu.cc over the
# qMMA section of ../quant.cuh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^\/\/ ---- Fused causal attention/{p=1} /^\/\/ The entry points/{p=0} p' "$here/../train.cuh" >"$tmp/flash_body.inc"
awk '/^\/\/ ---- int4 tensor-core product/{p=1} p; /^\/\/ ---- end qMMA/{p=0}' "$here/../quant.cuh" >"$tmp/qmma_body.inc"
awk '/^\/\/ qSplitSum:/{p=1} p; p && /^}$/{p=0}' "$here/../quant.cuh" >>"$tmp/qmma_body.inc"
for e in ${EMU:-flash qmma}; do
	g++ -std=c++20 -O2 -pthread -w -I"$tmp" -I"$here" -o "$tmp/$e" "$here/${e}_emu.cc"
	"$tmp/$e"
done
