// Package kernels holds the CUDA kernels of the cuda backend of gpu: the
// source (sluice.cu and the .cuh files it includes, one per area, so that
// areas are edited apart), the script that compiles it on the GPU machine
// (build.sh, or make kernels) and the committed PTX, embedded here and
// loaded by gpu/cuda with cuModuleLoadData.
//
// Unstable: the kernels' names and parameters change with gpu/cuda.
package kernels

import _ "embed" // the PTX

var (
	// Source is the hash lines (sha256sum's output) of the sluice.cu and
	// the .cuh files it includes that the PTX was built from, for the test
	// that catches stale PTX.
	//go:embed sluice.cu.sha256
	Source string
	//go:embed sluice_sm80.ptx
	sm80 []byte
	//go:embed sluice_sm90.ptx
	sm90 []byte
)

// PTX returns the kernels' PTX for a device of compute capability
// major.minor, NUL-terminated as cuModuleLoadData wants it, or nil when the
// PTX for it was not built (empty placeholder files). Hopper and newer get
// the compute_90 PTX, Ampere and Ada the compute_80 one.
func PTX(major, minor int) []byte {
	src := sm80
	switch {
	case major >= 9:
		src = sm90
	case major < 8:
		return nil
	}
	if len(src) == 0 {
		return nil
	}
	out := make([]byte, len(src)+1)
	copy(out, src)
	return out
}
