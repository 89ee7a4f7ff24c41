package gpu_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// TestEmbedGroups checks the grouping against its definition: every id
// once in uniq in first-occurrence order, and group g's rows are exactly
// the positions of uniq[g] in ids, ascending.
func TestEmbedGroups(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 500} {
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(r.IntN(n/3 + 1))
		}
		order, starts, uniq := gpu.EmbedGroups(ids)
		if len(order) != n || len(starts) != len(uniq)+1 || starts[0] != 0 || int(starts[len(uniq)]) != n {
			t.Fatalf("n %d: order %d, starts %v, uniq %d", n, len(order), starts, len(uniq))
		}
		var seen []int32
		for _, id := range ids {
			if !slices.Contains(seen, id) {
				seen = append(seen, id)
			}
		}
		if !slices.Equal(seen, uniq) {
			t.Fatalf("n %d: uniq %v, want %v", n, uniq, seen)
		}
		for g, id := range uniq {
			var want []int32
			for i, v := range ids {
				if v == id {
					want = append(want, int32(i))
				}
			}
			if got := order[starts[g]:starts[g+1]]; !slices.Equal(got, want) {
				t.Fatalf("n %d: group %d (id %d): rows %v, want %v", n, g, id, got, want)
			}
		}
	}
}
