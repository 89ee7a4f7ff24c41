package model

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// A config.json whose num_hidden_layers disagrees with the weight files
// fails before anything is allocated for the layers, naming the key and
// the weight file.
func TestLoadLayerCountChecked(t *testing.T) {
	dev := openCPU(t)
	for _, n := range []string{"1000000000", "10000000", "3", "1"} {
		t.Run(n, func(t *testing.T) {
			dir := copyFixture(t, "mistral")
			editConfig(t, dir, `"num_hidden_layers": 2`, `"num_hidden_layers": `+n)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			m, err := Load(dir, dev, Options{DType: gpu.F32})
			runtime.ReadMemStats(&after)
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			want := fmt.Sprintf("model: %s/config.json: num_hidden_layers (%s) does not match the weights: %s/model.safetensors holds 2 layers", dir, n, dir)
			if !errors.Is(err, ErrConfig) || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("got  %v\nwant %s…", err, want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Fatalf("Load allocated %d bytes before failing", grew)
			}
		})
	}
	// Not a JSON integer: refused by the decoder, naming the key.
	dir := copyFixture(t, "mistral")
	editConfig(t, dir, `"num_hidden_layers": 2`, `"num_hidden_layers": 1e9`)
	if _, err := Load(dir, dev, Options{DType: gpu.F32}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "num_hidden_layers") {
		t.Fatalf("num_hidden_layers 1e9: %v", err)
	}
}
