package train

import (
	"errors"
	"iter"
	"slices"
	"testing"
)

func numbered(n int, reads *int) func() iter.Seq2[sample, error] {
	return func() iter.Seq2[sample, error] {
		*reads++
		return func(yield func(sample, error) bool) {
			for i := range n {
				if !yield(sample{ids: []int32{int32(i)}}, nil) {
					return
				}
			}
		}
	}
}

// TestStream: with a shuffle buffer smaller than the data, every epoch
// hands out each row once, epochs differ, and a stream started at a saved
// position continues exactly as the uninterrupted one.
func TestStream(t *testing.T) {
	const n = 23
	reads := 0
	s := &stream{rows: numbered(n, &reads), shuffle: true, seed: 5, bufSize: 4}
	defer s.close()
	var all []int32
	var mid dataPos
	for i := range 3 * n {
		if i == n+7 {
			mid = s.pos
		}
		r, err := s.row()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, r.ids[0])
	}
	if reads != 3 || s.known != n {
		t.Errorf("the data was read %d times for 3 epochs (rows per epoch %d)", reads, s.known)
	}
	for e := range 3 {
		ep := slices.Clone(all[e*n : (e+1)*n])
		slices.Sort(ep)
		for i, v := range ep {
			if v != int32(i) {
				t.Fatalf("epoch %d holds %v, want each row once", e, all[e*n:(e+1)*n])
			}
		}
	}
	if slices.Equal(all[:n], all[n:2*n]) || slices.IsSorted(all[:n]) {
		t.Errorf("epochs are not shuffled: %v", all)
	}
	r := &stream{rows: numbered(n, &reads), shuffle: true, seed: 5, bufSize: 4, pos: mid, want: n}
	defer r.close()
	for i := n + 7; i < 3*n; i++ {
		row, err := r.row()
		if err != nil {
			t.Fatal(err)
		}
		if row.ids[0] != all[i] {
			t.Fatalf("resumed at %+v: row %d is %d, the uninterrupted stream had %d", mid, i, row.ids[0], all[i])
		}
	}
	// A checkpoint made on other data is found when the epoch ends.
	o := &stream{rows: numbered(n-1, &reads), want: n}
	defer o.close()
	var err error
	for range n {
		if _, err = o.row(); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrCheckpoint) {
		t.Errorf("a %d-row epoch against a %d-row checkpoint: %v", n-1, n, err)
	}
}
