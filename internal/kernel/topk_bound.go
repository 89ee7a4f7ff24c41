package kernel

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
)

// TopKBound is the running cut-off of a top-k query, shared by its partial
// TopKs (SetBound) and the scan under them (Filter): once a partial holds k
// rows, a row whose first sort key sorts strictly after that partial's
// worst row's cannot be in the query's first k (k rows that sort before it
// exist already), so the scan may drop it before it decodes the row's other
// columns (DuckDB's top-n dynamic filter). Only a first key of a
// fixed-width type has a bound; ties and null keys are never dropped. Safe
// for concurrent use.
type TopKBound struct {
	key   SortKey
	typ   arrow.DataType
	limit atomic.Uint64 // the least worst word a full partial reported; MaxUint64 while none is full
	words sync.Pool     // []uint64 scratch of Filter
}

// NewTopKBound returns the bound of a top-k ordered first by key, a column
// of type typ, or nil when typ has no fixed-width order word.
func NewTopKBound(key SortKey, typ arrow.DataType) *TopKBound {
	if keyKindOf(typ) != kindFixed {
		return nil
	}
	b := &TopKBound{key: key, typ: typ}
	b.limit.Store(math.MaxUint64)
	return b
}

// lower tightens the bound to w (the normalized first key of a full
// partial's worst row) when w is tighter.
func (b *TopKBound) lower(w uint64) {
	for {
		cur := b.limit.Load()
		if w >= cur || b.limit.CompareAndSwap(cur, w) {
			return
		}
	}
}

// Filter clears keep[i] for the rows of arr (the first sort key's values,
// of the bound's type, one per row of keep) that sort strictly after the
// bound. It leaves keep alone while no partial is full, for null rows, and
// when arr is not of the bound's type.
func (b *TopKBound) Filter(arr arrow.Array, keep []bool) {
	limit := b.limit.Load()
	n := arr.Len()
	if limit == math.MaxUint64 || n != len(keep) || !arrow.TypeEqual(arr.DataType(), b.typ) {
		return
	}
	p, _ := b.words.Get().(*[]uint64)
	if p == nil || cap(*p) < n {
		s := make([]uint64, n)
		p = &s
	}
	w := (*p)[:n]
	normalize(arr, w, forOrder)
	bm, off := validity(arr)
	desc := b.key.Descending
	for i, u := range w {
		if desc {
			u = ^u
		}
		if u > limit && (bm == nil || bitSet(bm, off+i)) {
			keep[i] = false
		}
	}
	b.words.Put(p)
}

// SetBound makes t report its worst row's first key to b after each Push
// that leaves it holding k rows; b must be for t's first sort key (nil
// turns it off).
func (t *TopK) SetBound(b *TopKBound) { t.bound = b }

// report tells t's bound the first key of its worst row, when t is full
// and that key is fixed-width and not null.
func (t *TopK) report() {
	if t.bound == nil || t.k == 0 || len(t.heap) < t.k {
		return
	}
	top := t.heap[0]
	c := &t.batches[top.batch].cols[0]
	if !c.fixed || c.nulls != nil && c.nulls[top.row] {
		return
	}
	t.bound.lower(c.u[top.row])
}
