package gpu_test

import (
	"fmt"
	"log"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cpu" // registers "cpu"
)

// A linear layer: two tokens of three features through a layer of two
// outputs, whose weights are stored [out, in] as torch.nn.Linear keeps them.
func Example() {
	dev, err := gpu.Open("cpu")
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()

	x, err := gpu.FromHost(dev, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	defer x.Free()
	w, err := gpu.FromHost(dev, []gpu.BFloat16{
		gpu.ToBFloat16(1), gpu.ToBFloat16(0), gpu.ToBFloat16(-1),
		gpu.ToBFloat16(0.5), gpu.ToBFloat16(0.5), gpu.ToBFloat16(0.5),
	}, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Free()
	y, err := dev.Alloc(gpu.F32, 2, 2)
	if err != nil {
		log.Fatal(err)
	}
	defer y.Free()

	if err := dev.Ops().MatMul(y, x, w, nil); err != nil { // y = x·wᵀ
		log.Fatal(err)
	}
	out, err := gpu.ToHost[float32](y) // waits for the MatMul
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(y, out)
	// Output: f32[2 2] [-2 3 -2 7.5]
}
