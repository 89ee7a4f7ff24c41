package kernel

import (
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TopK keeps the first k rows of a stream in the order of its sort keys, as
// Sort followed by a slice of k rows would, ties included (earlier rows
// first). It retains at most about 2k+4096 rows plus the batch being pushed:
// a max-heap of (batch, row) references picks the rows, batches no row
// refers to any more are released at once, and when the retained batches
// hold too many rows the heap's rows are copied into one compact batch.
//
// A TopK is used from one goroutine.
type TopK struct {
	mem       memory.Allocator
	schema    *arrow.Schema
	keys      []SortKey
	colIdx    []int
	k         int
	batches   []topBatch
	heap      []topEntry // heap[0] is the entry that sorts last
	seq       int64      // rows pushed so far
	rows      int        // rows held by batches
	spare     []sortCol  // normalized keys of a pushed batch that kept no row
	spareRows int
	view      colView
	done      bool
	bound     *TopKBound // told the worst kept row's first key (SetBound)
}

type topBatch struct {
	rec  arrow.RecordBatch // nil once released
	cols []sortCol
	live int // heap entries referring to this batch
}

type topEntry struct {
	batch, row int32
	seq        int64 // position in the stream, the last sort key
}

// NewTopK returns a TopK keeping k rows of schema ordered by keys.
func NewTopK(mem memory.Allocator, schema *arrow.Schema, keys []SortKey, k int) (*TopK, error) {
	colIdx, err := resolveSortKeys("TopK", schema, keys)
	if err != nil {
		return nil, err
	}
	if k < 0 || k > 1<<31-1 {
		return nil, errorf(ErrInvalid, "TopK: k is %d, want 0 <= k < 2^31", k)
	}
	return &TopK{mem: mem, schema: schema, keys: slices.Clone(keys), colIdx: colIdx, k: k}, nil
}

func (t *TopK) compactAt() int { return 2*t.k + 4096 }

// before reports whether entry x sorts before entry y.
func (t *TopK) before(x, y topEntry) bool {
	c := compareRows(t.batches[x.batch].cols, int(x.row), t.batches[y.batch].cols, int(y.row))
	if c != 0 {
		return c < 0
	}
	return x.seq < y.seq
}

// Push offers the rows of rec; rec stays owned by the caller (TopK retains
// it while it holds some of its rows).
func (t *TopK) Push(rec arrow.RecordBatch) error {
	if t.done {
		return errorf(ErrState, "TopK.Push after Release")
	}
	if err := checkBatch("TopK.Push", t.schema, rec); err != nil {
		return err
	}
	n := int(rec.NumRows())
	if n == 0 || t.k == 0 {
		t.seq += int64(n)
		return nil
	}
	if n > 1<<31-1 {
		return errorf(ErrInvalid, "TopK.Push: batch of %d rows; at most 2^31-1", n)
	}
	cols := t.spare
	if cols == nil || t.spareRows < n {
		cols, t.spareRows = newSortCols(t.schema, t.keys, t.colIdx, n), n
	} else {
		for k := range cols {
			c := &cols[k]
			if c.fixed {
				c.u = c.u[:n]
			} else {
				c.b = c.b[:n]
			}
			c.nulls = nil
		}
	}
	fillSortCols(cols, t.keys, t.colIdx, rec, 0, &t.view)

	cur := int32(len(t.batches))
	t.batches = append(t.batches, topBatch{cols: cols})
	evicted := false
	// With one fixed-width key and no nulls in the batch, rows that cannot
	// beat the worst kept row are skipped by a plain word compare.
	fast := len(cols) == 1 && cols[0].fixed && cols[0].nulls == nil
	for r := 0; r < n; r++ {
		if len(t.heap) < t.k {
			t.heap = append(t.heap, topEntry{batch: cur, row: int32(r), seq: t.seq + int64(r)})
			t.siftUp(len(t.heap) - 1)
			t.batches[cur].live++
			continue
		}
		top := t.heap[0]
		topCols := t.batches[top.batch].cols
		// A tie with the current worst row loses: this row came later.
		if fast && (topCols[0].nulls == nil || !topCols[0].nulls[top.row]) {
			limit, u := topCols[0].u[top.row], cols[0].u
			for r < n && u[r] >= limit {
				r++
			}
			if r == n {
				break
			}
		} else if compareRows(cols, r, topCols, int(top.row)) >= 0 {
			continue
		}
		t.batches[top.batch].live--
		evicted = true
		t.heap[0] = topEntry{batch: cur, row: int32(r), seq: t.seq + int64(r)}
		t.siftDown(0)
		t.batches[cur].live++
	}
	t.seq += int64(n)

	if t.batches[cur].live == 0 {
		t.batches = t.batches[:cur]
		t.spare = cols
	} else {
		rec.Retain()
		t.batches[cur].rec = rec
		t.rows += n
		t.spare = nil
	}
	if evicted {
		for i := range t.batches {
			if b := &t.batches[i]; b.live == 0 && b.rec != nil {
				t.recycle(b)
			}
		}
	}
	t.report()
	if t.rows > t.compactAt() {
		return t.compact()
	}
	return nil
}

// recycle releases b's batch and keeps its key buffers for the next Push.
func (t *TopK) recycle(b *topBatch) {
	rows := int(b.rec.NumRows())
	t.rows -= rows
	b.rec.Release()
	if rows > t.spareRows || t.spare == nil {
		t.spare, t.spareRows = b.cols, rows
	}
	b.rec, b.cols = nil, nil
}

func (t *TopK) siftUp(i int) {
	h := t.heap
	for i > 0 {
		p := (i - 1) / 2
		if !t.before(h[p], h[i]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (t *TopK) siftDown(i int) {
	h := t.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && t.before(h[l], h[r]) {
			m = r
		}
		if !t.before(h[i], h[m]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// gatherEntries copies the rows of entries, in order, into one batch.
func (t *TopK) gatherEntries(entries []topEntry) (arrow.RecordBatch, error) {
	chunks := make([]arrow.RecordBatch, 0, len(t.batches))
	chunkOf := make([]int, len(t.batches))
	for i, b := range t.batches {
		if b.rec != nil {
			chunkOf[i] = len(chunks)
			chunks = append(chunks, b.rec)
		}
	}
	refs := make([]uint64, len(entries))
	for i, e := range entries {
		refs[i] = packRef(chunkOf[e.batch], int(e.row))
	}
	return gatherBatch(t.mem, t.schema, chunks, refs)
}

// compact replaces the retained batches by one batch holding the heap's rows.
func (t *TopK) compact() error {
	rec, err := t.gatherEntries(t.heap)
	if err != nil {
		return err
	}
	for i := range t.batches {
		if b := &t.batches[i]; b.rec != nil {
			t.recycle(b)
		}
	}
	n := len(t.heap)
	cols := newSortCols(t.schema, t.keys, t.colIdx, n)
	fillSortCols(cols, t.keys, t.colIdx, rec, 0, &t.view)
	t.batches = append(t.batches[:0], topBatch{rec: rec, cols: cols, live: n})
	clear(t.batches[1:cap(t.batches)])
	for i := range t.heap {
		t.heap[i].batch, t.heap[i].row = 0, int32(i)
	}
	t.rows = n
	return nil
}

// Finish returns the kept rows, sorted, as one batch owned by the caller
// (empty when nothing was pushed or k is 0). The TopK stays usable.
func (t *TopK) Finish() (arrow.RecordBatch, error) {
	if t.done {
		return nil, errorf(ErrState, "TopK.Finish after Release")
	}
	entries := slices.Clone(t.heap)
	slices.SortFunc(entries, func(x, y topEntry) int {
		if t.before(x, y) {
			return -1
		}
		if t.before(y, x) {
			return 1
		}
		return 0
	})
	return t.gatherEntries(entries)
}

// Release frees the retained batches.
func (t *TopK) Release() {
	for _, b := range t.batches {
		if b.rec != nil {
			b.rec.Release()
		}
	}
	t.batches, t.heap, t.spare = nil, nil, nil
	t.done = true
}
