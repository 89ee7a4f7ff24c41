package train

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// TestLossAndGradNamesFailedUpload: an upload the device refuses fails the
// pass with the param's name, so a device error (such as cuda's
// CUDA_ERROR_INVALID_VALUE on the qwen2 curves) says which tensor it was.
func TestLossAndGradNamesFailedUpload(t *testing.T) {
	n, err := loadNet(context.Background(), fixtureDir("qwen2"), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	const name = "model.layers.0.self_attn.k_proj.bias"
	p := n.byName[name]
	p.w = p.w[:len(p.w)-1] // a host copy that no longer matches its device tensor
	ref := readReference(t, "qwen2")
	b := &batch{ids: ref.Grad.IDs, lens: ref.Grad.Lens, T: len(ref.Grad.IDs[0])}
	_, _, err = n.lossAndGrad(b, 1)
	if !errors.Is(err, gpu.ErrShape) || !strings.Contains(err.Error(), name) {
		t.Fatalf("lossAndGrad: %v, want gpu.ErrShape naming %s", err, name)
	}
}
