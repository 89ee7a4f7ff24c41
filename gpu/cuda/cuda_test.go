package cuda_test

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/gpu/cuda"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// open opens the GPU for one test, or skips the test where this machine has
// none (no driver, no device, no cuBLAS).
func open(t *testing.T) gpu.Device {
	t.Helper()
	return openConfig(t, cuda.DefaultConfig())
}

// openConfig is open with cfg.
func openConfig(t *testing.T, cfg cuda.Config) *cuda.Device {
	t.Helper()
	d, err := cuda.New(cfg)
	if errors.Is(err, cuda.ErrUnavailable) {
		t.Skipf("no CUDA GPU here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func TestConformance(t *testing.T) {
	d := open(t) // skip the whole suite at once when there is no GPU
	t.Logf("device: %v", d)
	gputest.Suite{Open: open, CheckIndices: false}.Run(t)
}

// TestConformanceAttnModes reruns the conformance suite on devices opened
// with each forced attention choice of Config: AttnPrefill sends every
// Attention batch, decode ones included, through the tiled prefill kernels
// where their shapes allow; AttnSplitMost gives decode batches the most
// splits (one tile of keys each); Splits 1 one split (no merge).
func TestConformanceAttnModes(t *testing.T) {
	open(t) // skip at once where there is no GPU
	for _, c := range []struct {
		name string
		attn cuda.AttnKernels
		n    int
	}{{"prefill", cuda.AttnPrefill, 0}, {"split-most", cuda.AttnSplitMost, 0}, {"split1", cuda.AttnAuto, 1}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := cuda.DefaultConfig()
			cfg.Attn, cfg.Splits = c.attn, c.n
			gputest.Suite{Open: func(t *testing.T) gpu.Device { return openConfig(t, cfg) }, CheckIndices: false}.Run(t)
		})
	}
}

// TestAuto checks that "auto" opens cuda where there is a GPU, and falls
// back to cpu, saying why, where there is none.
func TestAuto(t *testing.T) {
	var logs bytes.Buffer
	r := gpu.NewRegistry()
	r.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r.Register("cuda", func() (gpu.Device, error) { return cuda.New(cuda.DefaultConfig()) })
	r.Register("cpu", func() (gpu.Device, error) { return gpu.Open("cpu") })
	d, err := r.Open("auto")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, cerr := cuda.New(cuda.DefaultConfig())
	want := "cuda"
	if cerr != nil {
		want = "cpu"
	}
	if d.Name() != want {
		t.Errorf("auto opened %q, want %q (cuda: %v)", d.Name(), want, cerr)
	}
	t.Log(logs.String())
}

// TestClosed checks calls after Close.
func TestClosed(t *testing.T) {
	d, err := cuda.New(cuda.DefaultConfig())
	if errors.Is(err, cuda.ErrUnavailable) {
		t.Skipf("no CUDA GPU here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alloc(gpu.F32, 2); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("Alloc after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}
