package kernel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// countDistinct gives the exact counts on its sorted path (values near each
// other, compactions on the way), after moving to its map (a value far from
// the others, a group id past the packed bits), and across merges of
// states in either mode.
func TestCountDistinctPaths(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const groups = 50
	type part struct {
		vals func(r *rand.Rand) int64
		gid  func(r *rand.Rand) uint32 // before idmap
		rows int
	}
	near := func(r *rand.Rand) int64 { return 1_700_000_000_000 + r.Int64N(5000) - 2500 } // timestamps
	small := func(r *rand.Rand) int64 { return r.Int64N(3000) - 1000 }
	wide := func(r *rand.Rand) int64 {
		if r.IntN(50_000) == 0 {
			return math.MinInt64 + r.Int64N(3)
		}
		return r.Int64N(3000)
	}
	g := func(r *rand.Rand) uint32 { return uint32(r.IntN(groups)) }
	bigG := func(r *rand.Rand) uint32 {
		if r.IntN(60_000) == 0 {
			return 1<<distinctGroupBits + uint32(r.IntN(2))
		}
		return uint32(r.IntN(groups))
	}
	cases := map[string]struct {
		parts  []part
		sorted bool // the merged state is still on the sorted path
	}{
		"sorted":              {[]part{{near, g, 300_000}}, true},
		"sorted-merges":       {[]part{{small, g, 200_000}, {small, g, 150_000}, {small, g, 1000}}, true},
		"wide-value":          {[]part{{wide, g, 200_000}}, false},
		"big-group":           {[]part{{small, bigG, 200_000}}, false},
		"merge-map-into-sort": {[]part{{small, g, 100_000}, {wide, g, 200_000}}, false},
		"merge-sort-into-map": {[]part{{wide, g, 200_000}, {small, g, 100_000}}, false},
		"merge-far-base":      {[]part{{small, g, 100_000}, {near, g, 100_000}}, false},
	}
	for name, tc := range cases {
		parts := tc.parts
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			want := map[[2]int64]bool{}
			maxG := uint32(0)
			var states []*countDistinct
			for _, p := range parts {
				s := &countDistinct{bytes: map[string]struct{}{}}
				for off := 0; off < p.rows; off += 4096 {
					n := min(4096, p.rows-off)
					b := array.NewInt64Builder(mem)
					gids := make([]uint32, n)
					for i := range n {
						gids[i] = p.gid(r)
						maxG = max(maxG, gids[i])
						if r.IntN(10) == 0 {
							b.AppendNull()
							continue
						}
						v := p.vals(r)
						b.Append(v)
						want[[2]int64{int64(gids[i]), v}] = true
					}
					arr := b.NewArray()
					b.Release()
					s.grow(int(maxG) + 1)
					s.update(arr, gids)
					arr.Release()
				}
				states = append(states, s)
			}
			// Merge every state into the first, group ids unchanged.
			idmap := make([]uint32, maxG+1)
			for i := range idmap {
				idmap[i] = uint32(i)
			}
			s := states[0]
			s.grow(int(maxG) + 1)
			for _, o := range states[1:] {
				s.merge(o, idmap)
			}
			if sorted := s.fixed == nil; sorted != tc.sorted {
				t.Errorf("on the sorted path: %v, want %v", sorted, tc.sorted)
			}
			res, err := s.result(mem, int(maxG)+1)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			wantN := make([]int64, maxG+1)
			for k := range want {
				wantN[k[0]]++
			}
			got := res.(*array.Int64).Int64Values()
			for i := range wantN {
				if got[i] != wantN[i] {
					t.Fatalf("group %d: %d distinct, want %d", i, got[i], wantN[i])
				}
			}
		})
	}
}

func TestRadixSortU64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 255, 256, 10_000} {
		a := make([]uint64, n)
		for i := range a {
			a[i] = r.Uint64() >> uint(r.IntN(64))
			if i%3 == 0 {
				a[i] = uint64(i % 7) // repeats, and bytes every word shares
			}
		}
		got := radixSortU64(append([]uint64(nil), a...), make([]uint64, n))
		if len(got) != n {
			t.Fatalf("n=%d: %d words back", n, len(got))
		}
		for i := 1; i < n; i++ {
			if got[i-1] > got[i] {
				t.Fatalf("n=%d: not sorted at %d", n, i)
			}
		}
	}
}
