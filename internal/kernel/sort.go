package kernel

import (
	"bytes"
	"context"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// SortKey orders rows by one column. The zero value sorts ascending with
// nulls last; NullsFirst applies whatever the direction (so descending keeps
// nulls last unless asked, as DuckDB and Spark's desc do).
//
// Floats order with NaN above +Inf and -0 equal to +0. Strings and binaries
// order bytewise (UTF-8 codepoint order). Booleans order false < true.
type SortKey struct {
	Column     string
	Descending bool
	NullsFirst bool
}

// sortCol is one sort key over a range of rows, normalized so comparing two
// rows is a word compare (fixed-width types, with Descending already folded
// in) or a bytes.Compare.
type sortCol struct {
	fixed      bool
	u          []uint64 // 0 for null rows, so equal-keyed radix passes keep null rows in order
	b          [][]byte
	nulls      []bool // nil when the rows hold no null
	desc       bool
	nullsFirst bool
}

// compareRows orders row i of a against row j of b (same keys, possibly
// different batches).
func compareRows(a []sortCol, i int, b []sortCol, j int) int {
	for k := range a {
		ca, cb := &a[k], &b[k]
		na := ca.nulls != nil && ca.nulls[i]
		nb := cb.nulls != nil && cb.nulls[j]
		if na || nb {
			switch {
			case na && nb:
				continue
			case na == ca.nullsFirst:
				return -1
			default:
				return 1
			}
		}
		if ca.fixed {
			x, y := ca.u[i], cb.u[j]
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
			continue
		}
		if c := bytes.Compare(ca.b[i], cb.b[j]); c != 0 {
			if ca.desc {
				return -c
			}
			return c
		}
	}
	return 0
}

// resolveSortKeys checks keys against schema and returns their column indices.
func resolveSortKeys(op string, schema *arrow.Schema, keys []SortKey) ([]int, error) {
	if len(keys) == 0 {
		return nil, errorf(ErrInvalid, "%s: no sort keys", op)
	}
	idx := make([]int, len(keys))
	for k, key := range keys {
		i, ok := fieldIndex(schema, key.Column)
		if !ok {
			return nil, errorf(ErrColumn, "%s: sort key %q: no such column (have %s)", op, key.Column, columnList(schema))
		}
		if dt := schema.Field(i).Type; keyKindOf(dt) == kindNone {
			return nil, errorf(ErrType, "%s: sort key %q: cannot sort by a %s column", op, key.Column, typeName(dt))
		}
		idx[k] = i
	}
	return idx, nil
}

// fillSortCols normalizes the key columns of rec into rows base.. of cols
// (sized by newSortCols).
func fillSortCols(cols []sortCol, keys []SortKey, colIdx []int, rec arrow.RecordBatch, base int, view *colView) {
	n := int(rec.NumRows())
	for k := range cols {
		sc := &cols[k]
		arr := rec.Column(colIdx[k])
		var bm []byte
		var off int
		if sc.fixed {
			dst := sc.u[base : base+n]
			normalize(arr, dst, forOrder)
			if keys[k].Descending {
				for i := range dst {
					dst[i] = ^dst[i]
				}
			}
			bm, off = validity(arr)
		} else {
			view.load(arr, forOrder)
			for i := range n {
				sc.b[base+i] = view.bytes(i)
			}
			bm, off = view.valid, view.off // includes null dictionary entries
		}
		if bm == nil {
			continue
		}
		if sc.nulls == nil {
			sc.nulls = make([]bool, max(len(sc.u), len(sc.b)))
		}
		for i := range n {
			if !bitSet(bm, off+i) {
				sc.nulls[base+i] = true
				if sc.fixed {
					sc.u[base+i] = 0
				} else {
					sc.b[base+i] = nil
				}
			}
		}
	}
}

func newSortCols(schema *arrow.Schema, keys []SortKey, colIdx []int, rows int) []sortCol {
	cols := make([]sortCol, len(keys))
	for k, key := range keys {
		sc := &cols[k]
		sc.desc, sc.nullsFirst = key.Descending, key.NullsFirst
		sc.fixed = keyKindOf(schema.Field(colIdx[k]).Type) == kindFixed
		if sc.fixed {
			sc.u = make([]uint64, rows)
		} else {
			sc.b = make([][]byte, rows)
		}
	}
	return cols
}

// Sort returns all rows of recs (which all have schema) ordered by keys, as
// batches of at most maxRows rows (one batch when maxRows <= 0). The sort
// is stable: rows with equal keys keep their input order, recs[0]'s rows
// first. No input rows gives no batches. recs stay owned by the caller.
//
// Keys are sorted with an LSD radix sort over order-preserving words; a
// string key is first replaced by the rank of each value among the key's
// distinct values, so low-cardinality strings cost a hash lookup per row.
func Sort(ctx context.Context, mem memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch, keys []SortKey, maxRows int) ([]arrow.RecordBatch, error) {
	colIdx, err := resolveSortKeys("Sort", schema, keys)
	if err != nil {
		return nil, err
	}
	var live []arrow.RecordBatch
	total := 0
	for _, rec := range recs {
		if err := checkBatch("Sort", schema, rec); err != nil {
			return nil, err
		}
		if rec.NumRows() > 0 {
			live = append(live, rec)
			total += int(rec.NumRows())
		}
	}
	if total == 0 {
		return nil, nil
	}
	if total > math.MaxUint32 || len(live) > math.MaxInt32 {
		return nil, errorf(ErrInvalid, "Sort: %d rows in %d batches exceed what one in-memory sort handles (2^32 rows); sort partitions and merge", total, len(live))
	}
	cols := newSortCols(schema, keys, colIdx, total)
	starts := make([]int, len(live)+1)
	var view colView
	for i, rec := range live {
		fillSortCols(cols, keys, colIdx, rec, starts[i], &view)
		starts[i+1] = starts[i] + int(rec.NumRows())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	for k := range cols {
		if !cols[k].fixed {
			rankBytes(&cols[k])
		}
	}
	perm := sortPerm(cols, total)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if maxRows <= 0 {
		maxRows = total
	}
	// blocks[i] is the chunk holding global row i<<blockBits, so finding a
	// row's chunk takes a step or two instead of a binary search.
	const blockBits = 10
	blocks := make([]uint32, (total>>blockBits)+1)
	for c := range live {
		for i := (starts[c] + 1<<blockBits - 1) >> blockBits; i<<blockBits < starts[c+1]; i++ {
			blocks[i] = uint32(c)
		}
	}
	src := newSource(mem, schema, live)
	defer src.release()
	src.manyChunks = 256
	out := make([]arrow.RecordBatch, 0, (total+maxRows-1)/maxRows)
	refs := make([]uint64, 0, min(maxRows, total))
	for lo := 0; lo < total; lo += maxRows {
		if err := ctx.Err(); err != nil {
			releaseBatches(out)
			return nil, err
		}
		refs = refs[:0]
		for _, p := range perm[lo:min(lo+maxRows, total)] {
			row, chunk := int(p), 0
			if len(live) > 1 {
				chunk = int(blocks[row>>blockBits])
				for starts[chunk+1] <= row {
					chunk++
				}
				row -= starts[chunk]
			}
			refs = append(refs, packRef(chunk, row))
		}
		rec, err := src.batch(mem, refs)
		if err != nil {
			releaseBatches(out)
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func releaseBatches(recs []arrow.RecordBatch) {
	for _, r := range recs {
		if r != nil {
			r.Release()
		}
	}
}

// sortPerm returns the stable sort permutation of rows 0..n-1 under cols,
// which must all be fixed (see rankBytes).
func sortPerm(cols []sortCol, n int) []uint32 {
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	// LSD over keys: a stable sort by each key, least significant first.
	a := make([]radixPair, n)
	b := make([]radixPair, n)
	var nullTmp []uint32
	for k := len(cols) - 1; k >= 0; k-- {
		c := &cols[k]
		for i, p := range perm {
			a[i] = radixPair{c.u[p], p}
		}
		sorted := radixSort(a, b)
		for i := range sorted {
			perm[i] = sorted[i].row
		}
		if c.nulls != nil {
			nullTmp = partitionNulls(perm, c.nulls, c.nullsFirst, nullTmp)
		}
	}
	return perm
}

// partitionNulls stably moves the rows whose nulls flag is set to the front
// or back of perm.
func partitionNulls(perm []uint32, nulls []bool, first bool, tmp []uint32) []uint32 {
	tmp = tmp[:0]
	w := 0
	for _, p := range perm {
		if nulls[p] {
			tmp = append(tmp, p)
		} else {
			perm[w] = p
			w++
		}
	}
	if first {
		copy(perm[len(tmp):], perm[:w])
		copy(perm, tmp)
	} else {
		copy(perm[w:], tmp)
	}
	return tmp
}

// rankBytes turns a bytes sort column into a fixed one holding each row's
// rank among the column's distinct values (descending folded in, 0 for
// nulls), so a single radix sort handles every key.
func rankBytes(c *sortCol) {
	n := len(c.b)
	views := []colView{{kind: kindBytes, b: c.b}}
	hashes, _ := hashRows(views, n, nil, nil)
	m := newGroupMap([]keyKind{kindBytes})
	ids := make([]uint32, n)
	for i, h := range hashes {
		if c.nulls == nil || !c.nulls[i] {
			ids[i] = m.insert(views, i, h)
		}
	}
	hashes = nil
	store := &m.keys.cols[0]
	order := make([]uint32, m.len())
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return bytes.Compare(store.bytes(int(x)), store.bytes(int(y))) })
	rank := make([]uint64, len(order))
	for r, id := range order {
		rank[id] = uint64(r)
	}
	c.u = make([]uint64, n)
	for i, id := range ids {
		switch {
		case c.nulls != nil && c.nulls[i]:
			c.u[i] = 0
		case c.desc:
			c.u[i] = ^rank[id]
		default:
			c.u[i] = rank[id]
		}
	}
	c.fixed, c.b = true, nil
}
