package train

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// forwardOnly is the cpu device under another name, its Ops without
// BackwardOps: a backend that can serve but not train.
type forwardOnly struct{ gpu.Device }

func (forwardOnly) Name() string { return "train-test-forward-only" }

func (d forwardOnly) Ops() gpu.Ops { return struct{ gpu.Ops }{d.Device.Ops()} }

// renamed is the cpu device, BackwardOps included, under another name.
type renamed struct{ gpu.Device }

func (renamed) Name() string { return "train-test-cpu" }

func init() {
	gpu.Register("train-test-forward-only", func() (gpu.Device, error) {
		d, err := gpu.Open("cpu")
		if err != nil {
			return nil, err
		}
		return forwardOnly{d}, nil
	})
	gpu.Register("train-test-cpu", func() (gpu.Device, error) {
		d, err := gpu.Open("cpu")
		if err != nil {
			return nil, err
		}
		return renamed{d}, nil
	})
}

// TestAnyBackwardDevice: training takes any registered device whose Ops
// implement gpu.BackwardOps, not only one named cpu, and gives the same
// losses on the same kernels. (A device without them is refused naming it:
// TestBadInput's "no backward" case.)
func TestAnyBackwardDevice(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	c := baseConfig(t, "llama3")
	c.Steps = 3
	want := runLosses(t, c, data)
	c.Device, c.Out = "train-test-cpu", filepath.Join(t.TempDir(), "other")
	got := runLosses(t, c, data)
	for i := range want {
		if got[i].Loss != want[i].Loss || got[i].GradNorm != want[i].GradNorm {
			t.Errorf("step %d on %s: loss %v grad_norm %v; on cpu %v %v", i+1, c.Device, got[i].Loss, got[i].GradNorm, want[i].Loss, want[i].GradNorm)
		}
	}
}
