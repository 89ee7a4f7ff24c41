#!/usr/bin/env bash
# Builds the kernels of gpu/cuda into PTX, one file per target
# architecture, on a machine with CUDA 13's nvcc (the GPU machine):
#
#	bash gpu/kernels/build.sh [outdir]
#
# outdir defaults to this folder, where the PTX is committed and embedded
# (kernels.go). Also writes the compiler's resource report of each
# architecture to outdir/resources_smXX.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
nvcc=${NVCC:-nvcc}
command -v "$nvcc" >/dev/null || nvcc=/usr/local/cuda/bin/nvcc
"$nvcc" --version | tail -2
for sm in 80 90; do
	"$nvcc" -ptx -O3 -std=c++17 -arch=compute_$sm -o "$out/sluice_sm$sm.ptx" "$here/sluice.cu"
	# The resource report needs machine code: build a throwaway cubin.
	"$nvcc" -cubin -O3 -std=c++17 -arch=sm_$sm -Xptxas -v -o /tmp/sluice_sm$sm.cubin "$here/sluice.cu" \
		>"$out/resources_sm$sm.txt" 2>&1 || { cat "$out/resources_sm$sm.txt"; exit 1; }
done
# The hashes of the source the PTX came from (sluice.cu and the .cuh files
# it includes): gpu/kernels' test fails when one changes and the PTX is not
# rebuilt.
(cd "$here" && sha256sum sluice.cu *.cuh) >"$out/sluice.cu.sha256"
ls -l "$out"
