package cuda

import (
	"bytes"
	"testing"

	"github.com/sluicehq/sluice/gpu/kernels"
)

// TestKernelsBuilt checks, without a GPU, that the embedded PTX of every
// architecture defines every kernel New looks up.
func TestKernelsBuilt(t *testing.T) {
	for _, cc := range [][2]int{{8, 0}, {9, 0}} {
		ptx := kernels.PTX(cc[0], cc[1])
		if ptx == nil {
			t.Fatalf("no PTX for sm_%d%d: run make kernels on the GPU machine", cc[0], cc[1])
		}
		for _, f := range new(kernelFuncs).table() {
			if !bytes.Contains(ptx, []byte(".entry "+f.name+"(")) {
				t.Errorf("sm_%d%d PTX has no kernel %q", cc[0], cc[1], f.name)
			}
		}
	}
}
