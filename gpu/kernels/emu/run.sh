#!/usr/bin/env bash
# Builds and runs flash_emu.cc over the flash section of ../train.cuh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^\/\/ ---- Fused causal attention/{p=1} /^\/\/ The entry points/{p=0} p' "$here/../train.cuh" >"$tmp/flash_body.inc"
g++ -std=c++20 -O2 -pthread -w -I"$tmp" -o "$tmp/emu" "$here/flash_emu.cc"
"$tmp/emu"
