package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/dataset"
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

// counting is the cpu device under another name, counting the bytes its
// Upload and Download move (in transfers).
type counting struct{ gpu.Device }

// transfers are the bytes moved by counting devices, and their calls.
var transfers struct{ calls, bytes atomic.Int64 }

func (counting) Name() string { return "train-test-counting" }

// Alloc gives tensors whose Device is the counting one, so that gpu.Upload
// and gpu.Download on them are counted too.
func (d counting) Alloc(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	t, err := d.Device.Alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	return gpu.NewTensor(d, t.Buffer(), dt, shape...)
}

func (d counting) Upload(dst *gpu.Tensor, src []byte) error {
	transfers.calls.Add(1)
	transfers.bytes.Add(int64(len(src)))
	return d.Device.Upload(dst, src)
}

func (d counting) Download(dst []byte, src *gpu.Tensor) error {
	transfers.calls.Add(1)
	transfers.bytes.Add(int64(len(dst)))
	return d.Device.Download(dst, src)
}

// hostOptim is the cpu device with its Ops hiding gpu.OptimOps, so that
// train updates on the host.
type hostOptim struct{ gpu.Device }

func (hostOptim) Name() string { return "train-test-host-optim" }

type hostOptimOps struct {
	gpu.Ops
	gpu.BackwardOps
}

// Ops hides gpu.OptimOps and keeps the device's CausalAttention (cuda's),
// so that the two sides of a comparison run the same attention.
func (d hostOptim) Ops() gpu.Ops {
	ops := d.Device.Ops()
	h := hostOptimOps{ops, ops.(gpu.BackwardOps)}
	if ca, ok := ops.(causalAttention); ok {
		return struct {
			hostOptimOps
			causalAttention
		}{h, ca}
	}
	return h
}

// SetPrecision passes --precision to the device under it (cuda), so that
// the two sides of a comparison compute alike; cpu has none to set.
func (d hostOptim) SetPrecision(p string) error {
	if ps, ok := d.Device.(precisionSetter); ok {
		return ps.SetPrecision(p)
	}
	return nil
}

func init() {
	gpu.Register("train-test-counting", func() (gpu.Device, error) {
		d, err := gpu.Open("cpu")
		if err != nil {
			return nil, err
		}
		return counting{d}, nil
	})
	gpu.Register("train-test-host-optim", func() (gpu.Device, error) {
		name, _ := testDevice()
		d, err := gpu.Open(name)
		if err != nil {
			return nil, err
		}
		return hostOptim{d}, nil
	})
}

// TestTransfersPerStep: the weights go to the device once and stay there;
// gradients accumulate and the optimizer runs on the device, so a step
// after the first moves only its token ids, losses and gradient norms
// (well under the weights' bytes, whatever the micro-batches), and the
// weights and moments come back once, for the saved model.
func TestTransfersPerStep(t *testing.T) {
	data := writeRows(t, t.TempDir(), 24, 512)
	c := baseConfig(t, "llama3")
	c.Steps, c.GradAccum, c.Device = 4, 4, "train-test-counting"
	check, err := loadNet(context.Background(), c.Model, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	weights := int64(4 * countParams(check.params))
	check.close()
	transfers.calls.Store(0)
	transfers.bytes.Store(0)
	var perStep, calls []int64
	last, lastCalls := int64(0), int64(0)
	c.OnStep = func(m Metrics) error {
		b, n := transfers.bytes.Load(), transfers.calls.Load()
		perStep, calls = append(perStep, b-last), append(calls, n-lastCalls)
		last, lastCalls = b, n
		return nil
	}
	if err := Run(context.Background(), c, dataset.ReadJSONL(data)); err != nil {
		t.Fatal(err)
	}
	t.Logf("weights %d bytes; moved per step %v bytes in %v calls; %d after the last step", weights, perStep, calls, transfers.bytes.Load()-last)
	if perStep[0] < weights {
		t.Errorf("step 1 moved %d bytes, less than the weights' %d: were they uploaded?", perStep[0], weights)
	}
	for i, b := range perStep[1:] {
		if b >= weights/32 {
			t.Errorf("step %d moved %d bytes in %d calls; the weights are %d bytes: want only ids, losses and norms", i+2, b, calls[i+1], weights)
		}
	}
	// At the end: weights and both AdamW moments, once.
	if end := transfers.bytes.Load() - last; end > 3*weights+weights/32 {
		t.Errorf("the save moved %d bytes, want about 3x the weights' %d", end, weights)
	}
}

// TestDeviceOptimizerMatchesHost: the cpu device's OptimOps give the host
// optimizer's losses, gradient norms and trained weights bit for bit, for
// AdamW with weight decay and SGD, with clipping on. On another
// SLUICE_TEST_DEVICE (cuda) the gradient norm is summed in another order,
// so the figures agree to 1e-6 and the weights are not compared.
func TestDeviceOptimizerMatchesHost(t *testing.T) {
	data := writeRows(t, t.TempDir(), 12, 512)
	name, _ := testDevice()
	exact := name == "cpu"
	same := func(a, b float64) bool { return a == b || !exact && relClose(a, b, 1e-6) }
	for _, opt := range []string{"adamw", "sgd"} {
		t.Run(opt, func(t *testing.T) {
			c := baseConfig(t, "llama3")
			c.Steps, c.GradAccum, c.Optimizer, c.WeightDecay, c.MaxGradNorm = 3, 2, opt, 0.1, 0.05
			c.Device, c.Precision = name, testPrecision()
			dev := runLosses(t, c, data)
			h := c
			h.Device, h.Out = "train-test-host-optim", filepath.Join(t.TempDir(), "host")
			host := runLosses(t, h, data)
			for i := range dev {
				if !same(dev[i].Loss, host[i].Loss) || !same(dev[i].GradNorm, host[i].GradNorm) {
					t.Errorf("step %d: device optimizer loss %v grad_norm %v; host %v %v", i+1, dev[i].Loss, dev[i].GradNorm, host[i].Loss, host[i].GradNorm)
				}
			}
			if dev[0].GradNorm <= c.MaxGradNorm {
				t.Errorf("grad_norm %v is within --max-grad-norm %v: clipping is not exercised", dev[0].GradNorm, c.MaxGradNorm)
			}
			if !exact {
				return
			}
			a, err := os.ReadFile(filepath.Join(c.Out, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(h.Out, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("the trained weights differ between the device and the host optimizer")
			}
		})
	}
}
