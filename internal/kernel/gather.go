package kernel

import (
	"context"
	"math"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A ref names one row of one chunk: the chunk index in the high 32 bits,
// the row in the low 32. nullRef stands for a row of nulls (the right side
// of an unmatched left join row). Refs into a single chunk are plain rows.
const nullRef = ^uint64(0)

func packRef(chunk, row int) uint64 { return uint64(chunk)<<32 | uint64(uint32(row)) }

// gather builds an array of type dt holding, for each ref, the referenced
// value of chunks. Common layouts are copied directly; anything else (lists,
// structs, dictionaries, views) goes through arrow's take kernel.
func gather(mem memory.Allocator, dt arrow.DataType, chunks []arrow.Array, refs []uint64) (arrow.Array, error) {
	if len(refs) == 0 {
		return emptyArray(mem, dt), nil
	}
	switch dt.ID() {
	case arrow.BOOL:
		return gatherBool(mem, dt, chunks, refs), nil
	case arrow.STRING:
		return gatherBytes[int32](mem, dt, chunks, refs, (*array.String).ValueOffsets)
	case arrow.BINARY:
		return gatherBytes[int32](mem, dt, chunks, refs, (*array.Binary).ValueOffsets)
	case arrow.LARGE_STRING:
		return gatherBytes[int64](mem, dt, chunks, refs, (*array.LargeString).ValueOffsets)
	case arrow.LARGE_BINARY:
		return gatherBytes[int64](mem, dt, chunks, refs, (*array.LargeBinary).ValueOffsets)
	}
	switch fixedWidth(dt) {
	case 1:
		return gatherFixed[uint8](mem, dt, chunks, refs), nil
	case 2:
		return gatherFixed[uint16](mem, dt, chunks, refs), nil
	case 4:
		return gatherFixed[uint32](mem, dt, chunks, refs), nil
	case 8:
		return gatherFixed[uint64](mem, dt, chunks, refs), nil
	case 16:
		return gatherFixed[[2]uint64](mem, dt, chunks, refs), nil
	case 32:
		return gatherFixed[[4]uint64](mem, dt, chunks, refs), nil
	}
	return gatherTake(mem, dt, chunks, refs)
}

// fixedWidth is the byte width of types laid out as a validity bitmap plus
// one buffer of equal-width values, or 0.
func fixedWidth(dt arrow.DataType) int {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64,
		arrow.DURATION, arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME,
		arrow.INTERVAL_MONTH_DAY_NANO, arrow.DECIMAL32, arrow.DECIMAL64,
		arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY:
		if fw, ok := dt.(arrow.FixedWidthDataType); ok && fw.BitWidth()%8 == 0 {
			return fw.BitWidth() / 8
		}
	}
	return 0
}

type chunkBits struct {
	bm  []byte
	off int
}

// gatherValidity builds the output validity bitmap, or returns nil when no
// gathered row is null.
func gatherValidity(mem memory.Allocator, chunks []arrow.Array, refs []uint64) (*memory.Buffer, int) {
	bits := make([]chunkBits, len(chunks))
	some := false
	for c, ch := range chunks {
		if ch != nil {
			bits[c].bm, bits[c].off = validity(ch)
			some = some || bits[c].bm != nil
		}
	}
	if !some {
		for _, r := range refs {
			if r == nullRef {
				some = true
				break
			}
		}
		if !some {
			return nil, 0
		}
	}
	buf := newBuffer(mem, (len(refs)+7)/8)
	bm := buf.Bytes()
	clear(bm)
	nulls := 0
	for i, r := range refs {
		if r == nullRef {
			nulls++
			continue
		}
		cb := &bits[r>>32]
		if cb.bm != nil && !bitSet(cb.bm, cb.off+int(uint32(r))) {
			nulls++
			continue
		}
		bm[i>>3] |= 1 << (i & 7)
	}
	return buf, nulls
}

func gatherFixed[T any](mem memory.Allocator, dt arrow.DataType, chunks []arrow.Array, refs []uint64) arrow.Array {
	srcs := make([][]T, len(chunks))
	for c, ch := range chunks {
		if ch != nil {
			srcs[c] = rawValues[T](ch)
		}
	}
	valid, nulls := gatherValidity(mem, chunks, refs)
	var z T
	buf := newBuffer(mem, len(refs)*int(unsafe.Sizeof(z)))
	dst := unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(buf.Bytes()))), len(refs))
	if len(srcs) == 1 {
		src := srcs[0]
		for i, r := range refs {
			if r == nullRef || int(r) >= len(src) {
				dst[i] = z
				continue
			}
			dst[i] = src[r]
		}
	} else {
		for i, r := range refs {
			if r == nullRef {
				dst[i] = z
				continue
			}
			src := srcs[r>>32]
			if row := int(uint32(r)); row < len(src) {
				dst[i] = src[row]
			} else {
				dst[i] = z // a null row of a chunk whose value buffer is missing
			}
		}
	}
	return makeArray(dt, len(refs), nulls, valid, buf)
}

func gatherBool(mem memory.Allocator, dt arrow.DataType, chunks []arrow.Array, refs []uint64) arrow.Array {
	srcs := make([]*array.Boolean, len(chunks))
	for c, ch := range chunks {
		if ch != nil {
			srcs[c] = ch.(*array.Boolean)
		}
	}
	valid, nulls := gatherValidity(mem, chunks, refs)
	buf := newBuffer(mem, (len(refs)+7)/8)
	bm := buf.Bytes()
	clear(bm)
	for i, r := range refs {
		if r != nullRef && srcs[r>>32].Value(int(uint32(r))) {
			bm[i>>3] |= 1 << (i & 7)
		}
	}
	return makeArray(dt, len(refs), nulls, valid, buf)
}

type bytesSrc[O int32 | int64] struct {
	offs []O
	data []byte
}

func gatherBytes[O int32 | int64, A arrow.Array](mem memory.Allocator, dt arrow.DataType, chunks []arrow.Array, refs []uint64, offsets func(A) []O) (arrow.Array, error) {
	srcs := make([]bytesSrc[O], len(chunks))
	for c, ch := range chunks {
		if ch == nil || ch.Len() == 0 {
			continue
		}
		srcs[c].offs = offsets(ch.(A))
		if bufs := ch.Data().Buffers(); len(bufs) > 2 && bufs[2] != nil {
			srcs[c].data = bufs[2].Bytes()
		}
	}
	valid, nulls := gatherValidity(mem, chunks, refs)
	var vbm []byte
	if valid != nil {
		vbm = valid.Bytes()
	}
	// Null rows get no bytes, whatever their source offsets say.
	total := 0
	for i, r := range refs {
		if vbm != nil && !bitSet(vbm, i) {
			continue
		}
		s := &srcs[r>>32]
		row := uint32(r)
		total += int(s.offs[row+1] - s.offs[row])
	}
	var limit int64 = math.MaxInt64
	if unsafe.Sizeof(O(0)) == 4 {
		limit = math.MaxInt32
	}
	if int64(total) > limit {
		if valid != nil {
			valid.Release()
		}
		return nil, errorf(ErrInvalid, "gather: %d bytes of %s data exceed the 2 GiB a %s column can hold; use the large_ type or smaller batches",
			total, typeName(dt), typeName(dt))
	}
	obuf := newBuffer(mem, (len(refs)+1)*int(unsafe.Sizeof(O(0))))
	offs := unsafe.Slice((*O)(unsafe.Pointer(unsafe.SliceData(obuf.Bytes()))), len(refs)+1)
	dbuf := newBuffer(mem, total)
	data := dbuf.Bytes()
	pos := 0
	offs[0] = 0
	for i, r := range refs {
		if vbm == nil || bitSet(vbm, i) {
			s := &srcs[r>>32]
			row := uint32(r)
			pos += copy(data[pos:], s.data[s.offs[row]:s.offs[row+1]])
		}
		offs[i+1] = O(pos)
	}
	return makeArray(dt, len(refs), nulls, valid, obuf, dbuf), nil
}

// gatherTake handles the layouts gather does not copy itself, by
// concatenating the chunks and calling arrow's take kernel.
func gatherTake(mem memory.Allocator, dt arrow.DataType, chunks []arrow.Array, refs []uint64) (arrow.Array, error) {
	starts := make([]int64, len(chunks))
	var values arrow.Array
	if len(chunks) == 1 {
		values = chunks[0]
		values.Retain()
	} else {
		var live []arrow.Array
		var n int64
		for c, ch := range chunks {
			starts[c] = n
			if ch != nil {
				live = append(live, ch)
				n += int64(ch.Len())
			}
		}
		if len(live) == 0 { // every ref is nullRef
			return array.MakeArrayOfNull(mem, dt, len(refs)), nil
		}
		var err error
		if values, err = array.Concatenate(live, mem); err != nil {
			return nil, errorf(ErrType, "gather %s: %v", typeName(dt), err)
		}
	}
	defer values.Release()
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	ib.Reserve(len(refs))
	for _, r := range refs {
		if r == nullRef {
			ib.UnsafeAppendBoolToBitmap(false)
			continue
		}
		ib.UnsafeAppend(starts[r>>32] + int64(uint32(r)))
	}
	idx := ib.NewInt64Array()
	defer idx.Release()
	out, err := compute.TakeArray(compute.WithAllocator(context.Background(), mem), values, idx)
	if err != nil {
		return nil, errorf(ErrType, "gather %s: %v", typeName(dt), err)
	}
	return out, nil
}

// direct reports whether gather copies dt itself rather than through
// arrow's take kernel.
func direct(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.BOOL, arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return true
	}
	switch fixedWidth(dt) {
	case 1, 2, 4, 8, 16, 32:
		return true
	}
	return false
}

// source is a set of batches sharing a schema that rows are gathered from.
// A column gather does not copy itself is concatenated across the batches
// once, on first use, rather than on every gather. A source is safe for
// concurrent use.
type source struct {
	mem    memory.Allocator
	schema *arrow.Schema
	recs   []arrow.RecordBatch // not owned
	starts []int64             // first global row of each batch
	once   []sync.Once
	concat []arrow.Array
	err    []error
	// manyChunks, when set, is the number of batches above which every
	// column is concatenated once and gathered from one chunk: a source
	// that serves many output batches from thousands of small inputs
	// would otherwise set up every chunk for every output batch.
	manyChunks int
}

func newSource(mem memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch) *source {
	s := &source{mem: mem, schema: schema, recs: recs, starts: make([]int64, len(recs)),
		once: make([]sync.Once, schema.NumFields()), concat: make([]arrow.Array, schema.NumFields()),
		err: make([]error, schema.NumFields())}
	var n int64
	for i, rec := range recs {
		s.starts[i] = n
		n += rec.NumRows()
	}
	return s
}

// column gathers column c at refs (into s.recs).
func (s *source) column(mem memory.Allocator, c int, refs []uint64) (arrow.Array, error) {
	dt := s.schema.Field(c).Type
	if len(s.recs) > 1 && (!direct(dt) || s.manyChunks > 0 && len(s.recs) > s.manyChunks) {
		s.once[c].Do(func() {
			arrs := make([]arrow.Array, len(s.recs))
			for i, rec := range s.recs {
				arrs[i] = rec.Column(c)
			}
			s.concat[c], s.err[c] = array.Concatenate(arrs, s.mem)
		})
		if s.err[c] != nil {
			return nil, errorf(ErrType, "gather %s: %v", typeName(dt), s.err[c])
		}
		global := make([]uint64, len(refs))
		for i, r := range refs {
			global[i] = r
			if r != nullRef {
				global[i] = uint64(s.starts[r>>32]) + uint64(uint32(r))
			}
		}
		return gather(mem, dt, []arrow.Array{s.concat[c]}, global)
	}
	chunks := make([]arrow.Array, len(s.recs))
	for i, rec := range s.recs {
		chunks[i] = rec.Column(c)
	}
	return gather(mem, dt, chunks, refs)
}

func (s *source) release() { releaseAll(s.concat) }

// batch gathers every column at refs into one batch.
func (s *source) batch(mem memory.Allocator, refs []uint64) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, s.schema.NumFields())
	defer releaseAll(cols)
	for c := range cols {
		col, err := s.column(mem, c, refs)
		if err != nil {
			return nil, err
		}
		cols[c] = col
	}
	return array.NewRecordBatch(s.schema, cols, int64(len(refs))), nil
}

// gatherBatch gathers the rows refs of recs (sharing schema) into one batch.
func gatherBatch(mem memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch, refs []uint64) (arrow.RecordBatch, error) {
	src := newSource(mem, schema, recs)
	defer src.release()
	return src.batch(mem, refs)
}

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}
