package cpu_test

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestBackwardConformance runs gputest's BackwardOps suite (every backward
// op against its float64 reference) serially and with more workers than
// the machine has cores.
func TestBackwardConformance(t *testing.T) {
	for _, threads := range []int{1, 3} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			gputest.Suite{Open: open(threads), CheckIndices: true}.RunBackward(t)
		})
	}
}
