package cuda_test

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cpu"
	_ "github.com/sluicehq/sluice/gpu/cuda" // registers "cuda"
)

// Opening "auto" gives the GPU where the driver finds one and the CPU
// elsewhere (logging which and why); the same calls run on either.
func Example() {
	dev, err := gpu.Open("auto")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dev.Close()
	a, _ := gpu.FromHost(dev, []float32{1, 2, 3, 4}, 2, 2)
	b, _ := gpu.FromHost(dev, []float32{1, 1, 0, 2}, 2, 2) // [n, k], as torch.nn.Linear stores it
	c, _ := dev.Alloc(gpu.F32, 2, 2)
	defer a.Free()
	defer b.Free()
	defer c.Free()
	if err := dev.Ops().MatMul(c, a, b, nil); err != nil {
		fmt.Println(err)
		return
	}
	out, _ := gpu.ToHost[float32](c)
	fmt.Println(out)
	// Output: [3 4 7 8]
}
