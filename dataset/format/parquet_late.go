package format

import (
	"context"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Late materialization: with ReadOptions.Late, a batch's LateColumns are
// decoded first, Late says which rows survive, and the other columns are
// decoded only for those rows. Flat string and binary columns are read
// straight from the column chunk (in eager reads too: setFlat), skipping
// the values of dropped rows (a skipped string is never copied); other
// columns are decoded whole and then
// taken: reading numbers row by row through the chunk reader cost Q1 more
// CPU than pqarrow's bulk decode saved (etl/sales Q1, 2026-12-07).

// flatKind is how a late column is read from its column chunk; flatNone
// marks a column read through pqarrow.
type flatKind int

const (
	flatNone flatKind = iota
	flatBytes
)

// lateKind says whether projected field i can be read flat.
func (r *rowGroupReader) lateKind(i int) flatKind {
	sf := &r.man.Fields[r.fields[i]]
	if !sf.IsLeaf() || (r.dict != nil && r.dict[i]) {
		return flatNone
	}
	col := r.md.Schema.Column(sf.ColIndex)
	if col.MaxRepetitionLevel() != 0 || col.MaxDefinitionLevel() > 1 {
		return flatNone
	}
	switch id := r.sc.Field(i).Type.ID(); {
	case col.PhysicalType() == parquet.Types.ByteArray && (id == arrow.STRING || id == arrow.BINARY):
		return flatBytes
	}
	return flatNone
}

// run is a range [lo, hi) of a batch's rows.
type run struct{ lo, hi int64 }

// runsOf turns a keep mask into runs of kept rows and their row count.
func runsOf(keep []bool) ([]run, int64) {
	var (
		out  []run
		kept int64
	)
	for i := 0; i < len(keep); {
		if !keep[i] {
			i++
			continue
		}
		j := i
		for j < len(keep) && keep[j] {
			j++
		}
		out = append(out, run{int64(i), int64(j)})
		kept += int64(j - i)
		i = j
	}
	return out, kept
}

// flatColumn reads one flat leaf of a row group, row by row, skipping rows.
type flatColumn struct {
	kind   flatKind
	cr     file.ColumnChunkReader
	maxDef int16
	typ    arrow.DataType
	defs   []int16
	bytes  []parquet.ByteArray

	// the batch being built (start, finish): offs and valid are reused
	// across batches, data is dbuf's bytes (the array's own buffer)
	offs   []int32
	dbuf   *memory.Buffer
	data   []byte
	perRow float64 // bytes per row of the last batch, to size the next
	valid  []bool  // per row, for a nullable column
	nulls  int
}

func newFlatColumn(kind flatKind, cr file.ColumnChunkReader, typ arrow.DataType) *flatColumn {
	return &flatColumn{kind: kind, cr: cr, maxDef: cr.Descriptor().MaxDefinitionLevel(), typ: typ}
}

func (c *flatColumn) skip(n int64) error {
	if n <= 0 {
		return nil
	}
	var err error
	switch cr := c.cr.(type) {
	case *file.ByteArrayColumnChunkReader:
		_, err = cr.Skip(n)
	default:
		err = fmt.Errorf("%w: no flat reader for %T", ErrUnsupported, c.cr)
	}
	if err == nil {
		err = c.cr.Err()
	}
	return err
}

// readBatch reads the rows of runs out of the next n rows.
func (c *flatColumn) readBatch(mem memory.Allocator, runs []run, kept, n int64) (arr arrow.Array, err error) {
	c.start(mem, kept)
	defer func() {
		if arr == nil { // an error or a decoder panic: free the data buffer
			c.dbuf.Release()
			c.dbuf, c.data = nil, nil
		}
	}()
	pos := int64(0)
	for _, ru := range runs {
		if err := c.skip(ru.lo - pos); err != nil {
			return nil, err
		}
		if err := c.read(ru.hi - ru.lo); err != nil {
			return nil, err
		}
		pos = ru.hi
	}
	if err := c.skip(n - pos); err != nil {
		return nil, err
	}
	return c.finish(mem), nil
}

// A flat string or binary batch is built in bulk: the bytes straight into
// the array's data buffer (sized from the previous batch's bytes per row,
// grown by doubling), offsets and validity in scratch kept across batches
// and copied once. BinaryBuilder.Append per value, with its regrowth of the
// data buffer, was 18% of Q3's CPU.

// start begins a batch of rows rows.
func (c *flatColumn) start(mem memory.Allocator, rows int64) {
	c.offs = append(c.offs[:0], 0)
	c.valid = c.valid[:0]
	c.nulls = 0
	if cap(c.offs) < int(rows)+1 {
		c.offs = slices.Grow(c.offs, int(rows)+1)
	}
	c.dbuf = memory.NewResizableBuffer(mem)
	if est := c.perRow * float64(rows) * 1.05; est > 0 {
		c.dbuf.Reserve(int(min(est, math.MaxInt32)))
	}
	c.data = c.dbuf.Buf()[:0]
}

// reserve makes room in the data buffer for n bytes in all.
func (c *flatColumn) reserve(n int) {
	if n <= cap(c.data) {
		return
	}
	c.dbuf.ResizeNoShrink(len(c.data)) // Reserve keeps the buffer's length
	c.dbuf.Reserve(max(n, 2*cap(c.data), 4096))
	c.data = c.dbuf.Buf()[:len(c.data)]
}

// finish turns the batch built since start into an array.
func (c *flatColumn) finish(mem memory.Allocator) arrow.Array {
	rows := len(c.offs) - 1
	if rows > 0 {
		c.perRow = float64(len(c.data)) / float64(rows)
	}
	obuf := memory.NewResizableBuffer(mem)
	obuf.ResizeNoShrink(len(c.offs) * 4)
	copy(obuf.Bytes(), unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(c.offs))), len(c.offs)*4))
	dbuf := c.dbuf
	dbuf.ResizeNoShrink(len(c.data))
	c.dbuf, c.data = nil, nil
	var vbuf *memory.Buffer
	if c.nulls > 0 {
		vbuf = memory.NewResizableBuffer(mem)
		vbuf.ResizeNoShrink(int(bitutil.BytesForBits(int64(rows))))
		b := vbuf.Bytes()
		clear(b)
		for i, ok := range c.valid {
			if ok {
				bitutil.SetBit(b, i)
			}
		}
	}
	data := array.NewData(c.typ, rows, []*memory.Buffer{vbuf, obuf, dbuf}, nil, c.nulls, 0)
	obuf.Release()
	dbuf.Release()
	if vbuf != nil {
		vbuf.Release()
	}
	defer data.Release()
	return array.MakeFromData(data)
}

// read appends the next want rows to the batch.
func (c *flatColumn) read(want int64) error {
	if c.maxDef > 0 && int64(len(c.defs)) < want {
		c.defs = make([]int16, want)
	}
	var defs []int16
	if c.maxDef > 0 {
		defs = c.defs
	}
	for want > 0 {
		if !c.cr.HasNext() {
			if err := c.cr.Err(); err != nil {
				return err
			}
			return mark(ErrCorrupt, "column ends early: %d rows missing", want)
		}
		var (
			lvls int64
			vals int
			err  error
		)
		switch cr := c.cr.(type) {
		case *file.ByteArrayColumnChunkReader:
			c.bytes = grow(c.bytes, want)
			lvls, vals, err = cr.ReadBatchInPage(want, c.bytes, defs, nil)
			if err == nil {
				err = c.appendValues(defs, lvls, vals)
			}
		default:
			return fmt.Errorf("%w: no flat reader for %T", ErrUnsupported, c.cr)
		}
		if err != nil {
			return err
		}
		if lvls == 0 && vals == 0 {
			if err := c.cr.Err(); err != nil {
				return err
			}
			if !c.cr.HasNext() {
				continue // reported above
			}
		}
		want -= lvls
	}
	return nil
}

// appendValues appends lvls rows whose vals non-null values are in c.bytes
// (slices of the current page, copied here before the next page is read).
func (c *flatColumn) appendValues(defs []int16, lvls int64, vals int) error {
	values := c.bytes[:vals]
	size := len(c.data)
	for _, v := range values {
		size += len(v)
	}
	if size > math.MaxInt32 {
		return fmt.Errorf("%w: a batch of %s holds %d bytes, more than 2 GiB: read with smaller batches", ErrUnsupported, c.typ, size)
	}
	c.reserve(size)
	if c.maxDef == 0 || int64(vals) == lvls {
		for _, v := range values {
			c.data = append(c.data, v...)
			c.offs = append(c.offs, int32(len(c.data)))
		}
		if c.maxDef > 0 {
			for range values {
				c.valid = append(c.valid, true)
			}
		}
		return nil
	}
	j := 0
	for _, d := range defs[:lvls] {
		if d == c.maxDef {
			c.data = append(c.data, values[j]...)
			j++
			c.valid = append(c.valid, true)
		} else {
			c.valid = append(c.valid, false)
			c.nulls++
		}
		c.offs = append(c.offs, int32(len(c.data)))
	}
	return nil
}

func grow[T any](s []T, n int64) []T {
	if int64(len(s)) < n {
		return make([]T, n)
	}
	return s
}

// takeRows keeps the rows of runs of arr (a column decoded whole).
func takeRows(mem memory.Allocator, arr arrow.Array, runs []run, kept int64) (arrow.Array, error) {
	if kept == int64(arr.Len()) {
		arr.Retain()
		return arr, nil
	}
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	ib.Reserve(int(kept))
	for _, ru := range runs {
		for i := ru.lo; i < ru.hi; i++ {
			ib.UnsafeAppend(int32(i))
		}
	}
	idx := ib.NewArray()
	defer idx.Release()
	return compute.TakeArray(compute.WithAllocator(context.Background(), mem), arr, idx)
}

// setLate turns late materialization on when opts ask for it, every late
// column is projected, and some projected column is not a late one.
func (r *rowGroupReader) setLate(opts ReadOptions) {
	if opts.Late == nil || len(opts.LateColumns) == 0 {
		return
	}
	in := make([]bool, len(r.fields))
	var fs []arrow.Field
	for _, c := range opts.LateColumns {
		i := r.sc.FieldIndices(c)
		if len(i) != 1 {
			return
		}
		if !in[i[0]] {
			in[i[0]] = true
		}
	}
	others := false
	for i := range r.fields {
		if in[i] {
			fs = append(fs, r.sc.Field(i))
			continue
		}
		others = true
	}
	if !others {
		return
	}
	r.late, r.lateIn, r.lateSc = opts.Late, in, arrow.NewSchema(fs, nil)
}

// setFlat picks the projected fields read flat from their column chunks,
// late or not: flat string and binary leaves not asked for as dictionaries.
func (r *rowGroupReader) setFlat() {
	r.flat = make([]flatKind, len(r.fields))
	for i := range r.fields {
		r.flat[i] = r.lateKind(i)
	}
}

// lateBatch reads the next n rows of a row group the late way and returns
// the batch of the rows Late keeps (nil when none). cols holds the decoded
// late columns for the caller to release.
func (r *rowGroupReader) lateBatch(ctx context.Context, rg int, readers []*pqarrow.ColumnReader, flats []*flatColumn, cols []arrow.Array, n int64, column *string) (rec arrow.RecordBatch, err error) {
	var fcols []arrow.Array
	for i := range r.fields {
		if !r.lateIn[i] {
			continue
		}
		*column = r.sc.Field(i).Name
		if cols[i], err = r.next(rg, i, readers[i], flats[i], n); err != nil {
			return nil, err
		}
		fcols = append(fcols, cols[i])
	}
	*column = ""
	frec := array.NewRecordBatch(BatchSchema(r.lateSc, fcols), fcols, n)
	keep, err := r.late(ctx, frec)
	frec.Release()
	if err != nil {
		return nil, &errEmit{err}
	}
	if int64(len(keep)) != n {
		return nil, fmt.Errorf("format: late filter kept %d rows of a batch of %d", len(keep), n)
	}
	runs, kept := runsOf(keep)
	out := make([]arrow.Array, len(r.fields))
	defer func() {
		for _, a := range out {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i := range r.fields {
		name := r.sc.Field(i).Name
		*column = name
		switch {
		case r.lateIn[i]:
			if out[i], err = takeRows(r.mem, cols[i], runs, kept); err != nil {
				return nil, r.fail(rg, name, err)
			}
		case flats[i] != nil:
			if out[i], err = flats[i].readBatch(r.mem, runs, kept, n); err != nil {
				return nil, r.fail(rg, name, err)
			}
		default:
			a, err := r.column(rg, i, readers[i], n)
			if err != nil {
				return nil, err
			}
			out[i], err = takeRows(r.mem, a, runs, kept)
			a.Release()
			if err != nil {
				return nil, r.fail(rg, name, err)
			}
		}
	}
	*column = ""
	if kept == 0 {
		return nil, nil
	}
	return array.NewRecordBatch(BatchSchema(r.sc, out), out, kept), nil
}
