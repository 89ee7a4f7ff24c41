package kernel

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The aggregates that pick rows rather than fold them. They keep the input
// type and the batches their picks point into, until Finish.
const (
	First       AggFunc = "first"        // the group's first value in input order, NULL included (DuckDB's first)
	Last        AggFunc = "last"         // the group's last value in input order, NULL included
	CollectList AggFunc = "collect_list" // the group's non-null values in input order, as a list
	CollectAll  AggFunc = "collect_all"  // every value of the group, NULLs included, in input order, as a list (dataset.Window's rows)
)

var _ aggState = (*refState)(nil)

// refState remembers, per group, references into the batches it kept.
// Merge appends the other state's batches after its own, so "input order"
// is the order of the parts merged (the task order).
type refState struct {
	fn     AggFunc
	dt     arrow.DataType
	chunks []arrow.Array
	one    []uint64   // first, last: the picked row
	has    []bool     // first, last: whether the group has a row
	lists  [][]uint64 // collect_list: every non-null row
}

func (s *refState) grow(n int) {
	if s.fn == CollectList || s.fn == CollectAll {
		s.lists = growTo(s.lists, n)
		return
	}
	s.one = growTo(s.one, n)
	s.has = growTo(s.has, n)
}

func (s *refState) update(arr arrow.Array, gids []uint32) {
	c := len(s.chunks)
	used := false
	bm, off := validity(arr)
	for i, g := range gids {
		switch {
		case s.fn == CollectList || s.fn == CollectAll:
			if s.fn == CollectAll || bm == nil || bitSet(bm, off+i) {
				s.lists[g] = append(s.lists[g], packRef(c, i))
				used = true
			}
		case s.fn == Last || !s.has[g]:
			s.one[g], s.has[g], used = packRef(c, i), true, true
		}
	}
	if used {
		arr.Retain()
		s.chunks = append(s.chunks, arr)
	}
}

func (s *refState) merge(o aggState, idmap []uint32) {
	os := o.(*refState)
	base := uint64(len(s.chunks)) << 32
	s.chunks = append(s.chunks, os.chunks...)
	os.chunks = nil
	for g, l := range os.lists {
		for _, r := range l {
			s.lists[idmap[g]] = append(s.lists[idmap[g]], r+base)
		}
	}
	for g, ok := range os.has {
		if ok && (s.fn == Last || !s.has[idmap[g]]) {
			s.one[idmap[g]], s.has[idmap[g]] = os.one[g]+base, true
		}
	}
}

func (s *refState) result(mem memory.Allocator, n int) (arrow.Array, error) {
	defer func() {
		for _, c := range s.chunks {
			c.Release()
		}
		s.chunks = nil
	}()
	if s.fn == CollectList || s.fn == CollectAll {
		var refs []uint64
		offs := make([]int32, n+1)
		for g := range n {
			refs = append(refs, s.lists[g]...)
			offs[g+1] = int32(len(refs))
		}
		vals, err := gather(mem, s.dt, s.chunks, refs)
		if err != nil {
			return nil, err
		}
		defer vals.Release()
		ob := memory.NewResizableBuffer(mem)
		ob.Resize(4 * (n + 1))
		copy(arrow.Int32Traits.CastFromBytes(ob.Bytes()), offs)
		data := array.NewData(arrow.ListOf(s.dt), n, []*memory.Buffer{nil, ob}, []arrow.ArrayData{vals.Data()}, 0, 0)
		ob.Release()
		defer data.Release()
		return array.MakeFromData(data), nil
	}
	refs := make([]uint64, n)
	missing := false
	for g := range n {
		refs[g] = s.one[g]
		missing = missing || !s.has[g]
	}
	if missing {
		// A group without rows (the one global group of an empty input)
		// points at a one-row NULL chunk.
		null := array.MakeArrayOfNull(mem, s.dt, 1)
		s.chunks = append(s.chunks, null)
		for g := range n {
			if !s.has[g] {
				refs[g] = packRef(len(s.chunks)-1, 0)
			}
		}
	}
	return gather(mem, s.dt, s.chunks, refs)
}
