package kernel

import (
	"math"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// keyKind says how a column's values are normalized to be hashed, compared
// for equality and ordered.
type keyKind uint8

const (
	kindNone  keyKind = iota
	kindFixed         // every value maps to one uint64
	kindBytes         // values are compared as raw bytes
)

// keyKindOf returns how values of dt are keyed, or kindNone if this package
// cannot use them as sort, group or join keys.
func keyKindOf(dt arrow.DataType) keyKind {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL,
		arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64,
		arrow.TIME32, arrow.TIME64, arrow.DURATION:
		return kindFixed
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return kindBytes
	case arrow.DICTIONARY:
		dt := dt.(*arrow.DictionaryType)
		if keyKindOf(dt.ValueType) == kindBytes && arrow.IsInteger(dt.IndexType.ID()) {
			return kindBytes
		}
	}
	return kindNone
}

// decoded is the type a key column's values come out as: the value type for
// dictionary-encoded columns, the column's own type otherwise.
func decoded(dt arrow.DataType) arrow.DataType {
	if d, ok := dt.(*arrow.DictionaryType); ok {
		return d.ValueType
	}
	return dt
}

func isSigned(id arrow.Type) bool {
	switch id {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		return true
	}
	return false
}

func isUnsigned(id arrow.Type) bool {
	switch id {
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func isFloat(id arrow.Type) bool { return id == arrow.FLOAT32 || id == arrow.FLOAT64 }

func isNumeric(id arrow.Type) bool { return isSigned(id) || isUnsigned(id) || isFloat(id) }

// typeName is how errors spell a type: the SQL-ish "string" rather than
// arrow's "utf8".
func typeName(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.STRING:
		return "string"
	case arrow.LARGE_STRING:
		return "large_string"
	case arrow.DICTIONARY:
		return "dictionary<" + typeName(dt.(*arrow.DictionaryType).ValueType) + ">"
	}
	return dt.String()
}

// fieldIndex finds the column named name, for error messages listing what
// the schema has when it is not there.
func fieldIndex(schema *arrow.Schema, name string) (int, bool) {
	idx := schema.FieldIndices(name)
	if len(idx) == 0 {
		return -1, false
	}
	return idx[0], true
}

func columnList(schema *arrow.Schema) string {
	names := make([]string, schema.NumFields())
	for i := range names {
		names[i] = schema.Field(i).Name
	}
	return strings.Join(names, ", ")
}

// checkBatch verifies that rec has the columns and types of schema.
func checkBatch(op string, schema *arrow.Schema, rec arrow.RecordBatch) error {
	return checkBatchDict(op, schema, rec, nil)
}

// checkBatchDict is checkBatch, except that column i may also be a
// dictionary of the schema's type (integer indices) where dictOK[i].
func checkBatchDict(op string, schema *arrow.Schema, rec arrow.RecordBatch, dictOK []bool) error {
	if rec == nil {
		return errorf(ErrInvalid, "%s: nil batch", op)
	}
	if int(rec.NumCols()) != schema.NumFields() {
		return errorf(ErrSchema, "%s: batch has %d columns, schema has %d (%s)",
			op, rec.NumCols(), schema.NumFields(), columnList(schema))
	}
	for i := range schema.NumFields() {
		f := schema.Field(i)
		got := rec.Column(i).DataType()
		if d, ok := got.(*arrow.DictionaryType); ok && dictOK != nil && dictOK[i] &&
			arrow.IsInteger(d.IndexType.ID()) && arrow.TypeEqual(d.ValueType, f.Type) {
			continue
		}
		if !arrow.TypeEqual(got, f.Type) {
			return errorf(ErrSchema, "%s: column %d %q is %s, schema says %s",
				op, i, f.Name, typeName(got), typeName(f.Type))
		}
	}
	return nil
}

// rawValues views the value buffer of a fixed-width array as []T, honouring
// the array's offset. It returns nil for an empty or malformed array.
func rawValues[T any](arr arrow.Array) []T {
	d := arr.Data()
	n := d.Len()
	bufs := d.Buffers()
	if n == 0 || len(bufs) < 2 || bufs[1] == nil {
		return nil
	}
	var z T
	w := int(unsafe.Sizeof(z))
	b := bufs[1].Bytes()
	start := d.Offset() * w
	if len(b) < start+n*w {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[start])), n)
}

// validity returns arr's validity bitmap and bit offset, or nil when the
// array has no nulls.
func validity(arr arrow.Array) ([]byte, int) {
	if arr.NullN() == 0 {
		return nil, 0
	}
	return arr.NullBitmapBytes(), arr.Data().Offset()
}

func bitSet(bm []byte, i int) bool { return bm[i>>3]&(1<<(i&7)) != 0 }

// colView is one column of one batch normalized for keying. Building a view
// costs one pass over the column; afterwards hashing, equality and ordering
// run over plain slices with no per-row interface calls.
type colView struct {
	kind    keyKind
	u       []uint64 // kindFixed: normalized values, 0 for nulls
	b       [][]byte // kindBytes without codes: values, nil for nulls
	codes   []int32  // kindBytes from a dictionary: row i is dict[codes[i]]
	dict    [][]byte
	valid   []byte  // validity bitmap; nil when the column has no nulls
	codeBuf []int32 // reused for codes
	off     int
	// dictData is the dictionary whose values dict holds: a batch with
	// the same one (a join's shared dictionary) reuses them.
	dictData  arrow.ArrayData
	dictBytes [][]byte // the values of dictData; dict is this when codes are set
}

func (v *colView) null(i int) bool {
	return v.valid != nil && !bitSet(v.valid, v.off+i)
}

func (v *colView) bytes(i int) []byte {
	if v.codes != nil {
		return v.dict[v.codes[i]]
	}
	return v.b[i]
}

// order selects the normalization: hashing needs equal values to map to
// equal words (ints of any width by their int64 value), sorting needs the
// words to order as the values do (signed ints with the sign bit flipped,
// floats by their IEEE order trick).
type order bool

const (
	forHash  order = false
	forOrder order = true
)

// load fills v from arr, reusing v's slices. arr's kind must be kindFixed or
// kindBytes.
func (v *colView) load(arr arrow.Array, o order) {
	n := arr.Len()
	v.kind = keyKindOf(arr.DataType())
	v.valid, v.off = validity(arr)
	v.codes, v.dict = nil, nil
	switch v.kind {
	case kindFixed:
		v.u = grow(v.u, n)
		normalize(arr, v.u, o)
		if v.valid != nil {
			for i := range n {
				if !bitSet(v.valid, v.off+i) {
					v.u[i] = 0
				}
			}
		}
	case kindBytes:
		if d, ok := arr.(*array.Dictionary); ok {
			v.loadDict(d)
			return
		}
		v.b = bytesValues(arr, grow(v.b, n))
	}
}

func (v *colView) loadDict(d *array.Dictionary) {
	dd := d.Dictionary().Data()
	if dd != v.dictData || len(v.dictBytes) == 0 {
		v.dictBytes = bytesValues(d.Dictionary(), v.dictBytes[:0])
		if len(v.dictBytes) == 0 {
			v.dictBytes = append(v.dictBytes, nil) // for the codes of null rows
		}
		v.dictData = dd
	}
	v.dict = v.dictBytes
	idx := d.Indices()
	if bm, _ := validity(idx); bm == nil && idx.DataType().ID() == arrow.INT32 && idx.Len() > 0 {
		v.codes = rawValues[int32](idx) // read only: no copy needed
	} else {
		v.codeBuf = dictCodes(idx, grow(v.codeBuf, d.Len()))
		v.codes = v.codeBuf
	}
	v.valid, v.off = logicalValidity(d)
}

// logicalValidity is validity, except that for a dictionary array a row
// whose dictionary entry is null is null too.
func logicalValidity(arr arrow.Array) ([]byte, int) {
	d, ok := arr.(*array.Dictionary)
	if !ok || d.Dictionary().NullN() == 0 {
		return validity(arr)
	}
	dv := d.Dictionary()
	n := d.Len()
	bm := make([]byte, (n+7)/8)
	for i := range n {
		if d.IsValid(i) && dv.IsValid(d.GetValueIndex(i)) {
			bm[i>>3] |= 1 << (i & 7)
		}
	}
	return bm, 0
}

func dictCodes(idx arrow.Array, dst []int32) []int32 {
	switch idx.DataType().ID() {
	case arrow.INT8:
		castInto(dst, rawValues[int8](idx))
	case arrow.INT16:
		castInto(dst, rawValues[int16](idx))
	case arrow.INT32:
		castInto(dst, rawValues[int32](idx))
	case arrow.INT64:
		castInto(dst, rawValues[int64](idx))
	case arrow.UINT8:
		castInto(dst, rawValues[uint8](idx))
	case arrow.UINT16:
		castInto(dst, rawValues[uint16](idx))
	case arrow.UINT32:
		castInto(dst, rawValues[uint32](idx))
	case arrow.UINT64:
		castInto(dst, rawValues[uint64](idx))
	}
	// Null rows may hold any index; point them at entry 0, which loadDict
	// makes sure exists.
	if bm, off := validity(idx); bm != nil {
		for i := range dst {
			if !bitSet(bm, off+i) {
				dst[i] = 0
			}
		}
	}
	return dst
}

func castInto[T integer](dst []int32, src []T) {
	for i, x := range src {
		dst[i] = int32(x)
	}
}

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

type signed interface {
	~int8 | ~int16 | ~int32 | ~int64
}

type unsigned interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

type float interface{ ~float32 | ~float64 }

type number interface{ integer | float }

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// bytesValues returns the values of a string or binary array in dst's
// memory (nil for null rows; the slices share the array's buffers).
func bytesValues(arr arrow.Array, dst [][]byte) [][]byte {
	dst = dst[:0]
	n := arr.Len()
	var data []byte
	if bufs := arr.Data().Buffers(); len(bufs) > 2 && bufs[2] != nil {
		data = bufs[2].Bytes()
	}
	switch a := arr.(type) {
	case *array.String:
		return offsetBytes(dst, a.ValueOffsets(), data, a, n)
	case *array.Binary:
		return offsetBytes(dst, a.ValueOffsets(), data, a, n)
	case *array.LargeString:
		return offsetBytes(dst, a.ValueOffsets(), data, a, n)
	case *array.LargeBinary:
		return offsetBytes(dst, a.ValueOffsets(), data, a, n)
	}
	dst = grow(dst, n)
	clear(dst)
	return dst
}

func offsetBytes[O int32 | int64](dst [][]byte, offs []O, data []byte, arr arrow.Array, n int) [][]byte {
	if n == 0 || len(offs) < n+1 || data == nil {
		dst = grow(dst, n)
		clear(dst)
		return dst
	}
	bm, off := validity(arr)
	dst = grow(dst, n)
	out, offs := dst, offs[:n+1]
	if bm == nil {
		for i := range out {
			lo, hi := offs[i], offs[i+1]
			out[i] = data[lo:hi:hi]
		}
		return dst
	}
	for i := range out {
		if !bitSet(bm, off+i) {
			out[i] = nil
			continue
		}
		lo, hi := offs[i], offs[i+1]
		out[i] = data[lo:hi:hi]
	}
	return dst
}

const signBit = 1 << 63

// canonicalNaN is the one NaN every NaN is mapped to, so NaNs group together
// and sort after +Inf, as in Spark, DuckDB and PostgreSQL.
const canonicalNaN = 0x7FF8000000000000

func normalize(arr arrow.Array, dst []uint64, o order) {
	var flip uint64
	if o == forOrder {
		flip = signBit
	}
	switch arr.DataType().ID() {
	case arrow.INT8:
		normSigned(dst, rawValues[int8](arr), flip)
	case arrow.INT16:
		normSigned(dst, rawValues[int16](arr), flip)
	case arrow.INT32, arrow.DATE32, arrow.TIME32:
		normSigned(dst, rawValues[int32](arr), flip)
	case arrow.INT64, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME64, arrow.DURATION:
		normSigned(dst, rawValues[int64](arr), flip)
	case arrow.UINT8:
		normUnsigned(dst, rawValues[uint8](arr))
	case arrow.UINT16:
		normUnsigned(dst, rawValues[uint16](arr))
	case arrow.UINT32:
		normUnsigned(dst, rawValues[uint32](arr))
	case arrow.UINT64:
		normUnsigned(dst, rawValues[uint64](arr))
	case arrow.FLOAT32:
		normFloat(dst, rawValues[float32](arr), o)
	case arrow.FLOAT64:
		normFloat(dst, rawValues[float64](arr), o)
	case arrow.BOOL:
		b := arr.(*array.Boolean)
		for i := range dst {
			dst[i] = 0
			if b.Value(i) {
				dst[i] = 1
			}
		}
	}
}

func normSigned[T signed](dst []uint64, src []T, flip uint64) {
	if len(src) < len(dst) {
		clear(dst)
		return
	}
	for i, x := range src[:len(dst)] {
		dst[i] = uint64(int64(x)) ^ flip
	}
}

func normUnsigned[T unsigned](dst []uint64, src []T) {
	if len(src) < len(dst) {
		clear(dst)
		return
	}
	for i, x := range src[:len(dst)] {
		dst[i] = uint64(x)
	}
}

func normFloat[T float](dst []uint64, src []T, o order) {
	if len(src) < len(dst) {
		clear(dst)
		return
	}
	for i, x := range src[:len(dst)] {
		dst[i] = floatKey(float64(x), o)
	}
}

// floatKey maps f to a word that is equal for equal floats (all NaNs equal,
// -0 == +0) and, for forOrder, orders as the floats do with NaN last.
func floatKey(f float64, o order) uint64 {
	var u uint64
	switch {
	case f != f:
		u = canonicalNaN
	case f == 0:
		u = 0
	default:
		u = math.Float64bits(f)
	}
	if o == forHash {
		return u
	}
	if u&signBit != 0 {
		return ^u
	}
	return u | signBit
}

// fixedFromNorm builds an array of type dt from hash-normalized words (the
// inverse of normalize with forHash).
func fixedFromNorm(mem memory.Allocator, dt arrow.DataType, u []uint64, nulls []bool) arrow.Array {
	n := len(u)
	switch dt.ID() {
	case arrow.INT8:
		return fixedArray(mem, dt, convert[int8](u), nulls)
	case arrow.INT16:
		return fixedArray(mem, dt, convert[int16](u), nulls)
	case arrow.INT32, arrow.DATE32, arrow.TIME32:
		return fixedArray(mem, dt, convert[int32](u), nulls)
	case arrow.INT64, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME64, arrow.DURATION:
		return fixedArray(mem, dt, convert[int64](u), nulls)
	case arrow.UINT8:
		return fixedArray(mem, dt, convert[uint8](u), nulls)
	case arrow.UINT16:
		return fixedArray(mem, dt, convert[uint16](u), nulls)
	case arrow.UINT32:
		return fixedArray(mem, dt, convert[uint32](u), nulls)
	case arrow.UINT64:
		return fixedArray(mem, dt, u, nulls)
	case arrow.FLOAT32:
		v := make([]float32, n)
		for i, x := range u {
			v[i] = float32(math.Float64frombits(x))
		}
		return fixedArray(mem, dt, v, nulls)
	case arrow.FLOAT64:
		v := make([]float64, n)
		for i, x := range u {
			v[i] = math.Float64frombits(x)
		}
		return fixedArray(mem, dt, v, nulls)
	case arrow.BOOL:
		v := make([]bool, n)
		for i, x := range u {
			v[i] = x != 0
		}
		return boolArray(mem, v, nulls)
	}
	panic("kernel: fixedFromNorm: unkeyed type " + dt.String()) // unreachable: types are checked up front
}

func convert[T integer](u []uint64) []T {
	v := make([]T, len(u))
	for i, x := range u {
		v[i] = T(x)
	}
	return v
}
