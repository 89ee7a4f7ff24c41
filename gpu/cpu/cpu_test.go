package cpu_test

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

func open(threads int) func(t *testing.T) gpu.Device {
	return func(t *testing.T) gpu.Device {
		d, err := cpu.New(cpu.Config{Threads: threads})
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
}

// TestConformance runs the backend conformance suite serially and with
// more workers than the machine has cores, which exercises the pool's
// chunk stealing.
func TestConformance(t *testing.T) {
	for _, threads := range []int{1, 3} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			gputest.Suite{Open: open(threads), CheckIndices: true}.Run(t)
		})
	}
}
