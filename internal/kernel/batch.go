package kernel

import (
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Concat joins recs (all of schema) into one batch owned by the caller. One
// batch is returned as is, retained; none gives an empty batch.
func Concat(mem memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	var live []arrow.RecordBatch
	rows := int64(0)
	for _, rec := range recs {
		if err := checkBatch("Concat", schema, rec); err != nil {
			return nil, err
		}
		if rec.NumRows() > 0 {
			live = append(live, rec)
			rows += rec.NumRows()
		}
	}
	if len(live) == 1 {
		live[0].Retain()
		return live[0], nil
	}
	cols := make([]arrow.Array, schema.NumFields())
	defer releaseAll(cols)
	arrs := make([]arrow.Array, len(live))
	for c := range cols {
		if len(live) == 0 {
			cols[c] = emptyArray(mem, schema.Field(c).Type)
			continue
		}
		for i, rec := range live {
			arrs[i] = rec.Column(c)
		}
		col, err := array.Concatenate(arrs, mem)
		if err != nil {
			return nil, errorf(ErrType, "Concat: column %q: %v", schema.Field(c).Name, err)
		}
		cols[c] = col
	}
	return array.NewRecordBatch(schema, cols, rows), nil
}

// Take returns the rows of rec at indices, in that order (repeats allowed),
// as a new batch owned by the caller.
func Take(mem memory.Allocator, rec arrow.RecordBatch, indices []int32) (arrow.RecordBatch, error) {
	n := rec.NumRows()
	refs := make([]uint64, len(indices))
	for i, x := range indices {
		if x < 0 || int64(x) >= n {
			return nil, errorf(ErrInvalid, "Take: index %d at position %d is outside the batch's %d rows", x, i, n)
		}
		refs[i] = uint64(x)
	}
	return gatherBatch(mem, rec.Schema(), []arrow.RecordBatch{rec}, refs)
}

// HashPartition splits rec into n parts by a hash of the key columns, so
// rows with equal keys land in the same part; within a part rows keep their
// order. Empty parts are nil. The hash depends only on the key values (not
// on the process), with integers of any width hashing by value and string
// like large_string, so workers of a distributed shuffle agree on parts.
func HashPartition(mem memory.Allocator, rec arrow.RecordBatch, keys []string, n int) ([]arrow.RecordBatch, error) {
	if n <= 0 {
		return nil, errorf(ErrInvalid, "HashPartition: %d parts; want at least 1", n)
	}
	schema := rec.Schema()
	views := make([]colView, len(keys))
	for k, name := range keys {
		i, ok := fieldIndex(schema, name)
		if !ok {
			return nil, errorf(ErrColumn, "HashPartition: key %q: no such column (have %s)", name, columnList(schema))
		}
		if dt := schema.Field(i).Type; keyKindOf(dt) == kindNone {
			return nil, errorf(ErrType, "HashPartition: key %q: cannot hash a %s column", name, typeName(dt))
		}
		views[k].load(rec.Column(i), forHash)
	}
	rows := int(rec.NumRows())
	parts := make([]arrow.RecordBatch, n)
	if rows == 0 {
		return parts, nil
	}
	if n == 1 {
		rec.Retain()
		parts[0] = rec
		return parts, nil
	}
	hashes, _ := hashRows(views, rows, nil, nil)
	// Count, then lay the row numbers of all parts out in one slice.
	part := make([]uint32, rows)
	starts := make([]int, n+1)
	for i, h := range hashes {
		p := uint32((uint64(uint32(h>>32)) * uint64(n)) >> 32)
		part[i] = p
		starts[p+1]++
	}
	for p := range n {
		starts[p+1] += starts[p]
	}
	refs := make([]uint64, rows)
	fill := append([]int(nil), starts[:n]...)
	for i, p := range part {
		refs[fill[p]] = uint64(i)
		fill[p]++
	}
	src := []arrow.RecordBatch{rec}
	for p := range n {
		if starts[p] == starts[p+1] {
			continue
		}
		out, err := gatherBatch(mem, schema, src, refs[starts[p]:starts[p+1]])
		if err != nil {
			releaseBatches(parts)
			return nil, err
		}
		parts[p] = out
	}
	return parts, nil
}

// Shuffle returns rec's rows in an order drawn from rng (the same seed gives
// the same order) as a new batch owned by the caller.
func Shuffle(mem memory.Allocator, rec arrow.RecordBatch, rng *rand.Rand) (arrow.RecordBatch, error) {
	n := int(rec.NumRows())
	refs := make([]uint64, n)
	for i := range refs {
		refs[i] = uint64(i)
	}
	rng.Shuffle(n, func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })
	return gatherBatch(mem, rec.Schema(), []arrow.RecordBatch{rec}, refs)
}

// BatchBytes is the memory rec holds: the length of every buffer it refers
// to, children and dictionaries included. A slice counts the whole buffers
// it keeps alive.
func BatchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	if d == nil {
		return 0
	}
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	// Dictionary returns a typed nil for non-dictionary arrays.
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		n += dataBytes(dict)
	}
	return n
}

// RowHashes returns a hash of each row of rec over the columns that can
// be hashed (as HashPartition hashes keys: by value, the same in every
// process), or an error when none can.
func RowHashes(rec arrow.RecordBatch) ([]uint64, error) {
	var views []colView
	for i, f := range rec.Schema().Fields() {
		if keyKindOf(f.Type) == kindNone {
			continue
		}
		var v colView
		v.load(rec.Column(i), forHash)
		views = append(views, v)
	}
	if len(views) == 0 && rec.NumCols() > 0 {
		return nil, errorf(ErrType, "RowHashes: no column of %s can be hashed", columnList(rec.Schema()))
	}
	h, _ := hashRows(views, int(rec.NumRows()), nil, nil)
	return h, nil
}
