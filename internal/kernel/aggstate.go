package kernel

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// aggState accumulates one aggregate for every group. update runs once per
// batch over the batch's group ids, so the per-row work is a typed loop.
type aggState interface {
	// grow makes room for groups 0..n-1.
	grow(n int)
	// update folds arr's rows into the groups gids names (arr is nil for
	// count_all).
	update(arr arrow.Array, gids []uint32)
	// merge folds o (the same kind of state) in; o's group g is group idmap[g].
	merge(o aggState, idmap []uint32)
	// result builds the output column for n groups.
	result(mem memory.Allocator, n int) (arrow.Array, error)
}

var (
	_ aggState = (*countState)(nil)
	_ aggState = (*sumState[int64])(nil)
	_ aggState = (*sumState[float64])(nil)
	_ aggState = (*minMaxState[int64])(nil)
	_ aggState = (*minMaxBool)(nil)
	_ aggState = (*minMaxBytes)(nil)
	_ aggState = (*countDistinct)(nil)
)

func growTo[T any](s []T, n int) []T {
	if n <= len(s) {
		return s
	}
	return append(s, make([]T, n-len(s))...)
}

// countState is count(col) (non-null rows) or count_all (all rows).
type countState struct {
	all bool
	n   []int64
}

func (s *countState) grow(n int) { s.n = growTo(s.n, n) }

func (s *countState) update(arr arrow.Array, gids []uint32) {
	var bm []byte
	var off int
	if !s.all {
		bm, off = logicalValidity(arr)
	}
	if bm == nil {
		for _, g := range gids {
			s.n[g]++
		}
		return
	}
	for i, g := range gids {
		if bitSet(bm, off+i) {
			s.n[g]++
		}
	}
}

func (s *countState) merge(o aggState, idmap []uint32) {
	for g, c := range o.(*countState).n {
		s.n[idmap[g]] += c
	}
}

func (s *countState) result(mem memory.Allocator, n int) (arrow.Array, error) {
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, s.n[:n], nil), nil
}

// sumState is sum (int64 for integer input, float64 for floats) or mean
// (always float64). Groups with no non-null value give null.
type sumState[A int64 | float64] struct {
	dt   arrow.DataType // input type
	mean bool
	sum  []A
	n    []int64
}

func (s *sumState[A]) grow(n int) {
	s.sum = growTo(s.sum, n)
	s.n = growTo(s.n, n)
}

func (s *sumState[A]) update(arr arrow.Array, gids []uint32) {
	switch s.dt.ID() {
	case arrow.INT8:
		accumulate(s.sum, s.n, rawValues[int8](arr), arr, gids)
	case arrow.INT16:
		accumulate(s.sum, s.n, rawValues[int16](arr), arr, gids)
	case arrow.INT32:
		accumulate(s.sum, s.n, rawValues[int32](arr), arr, gids)
	case arrow.INT64:
		accumulate(s.sum, s.n, rawValues[int64](arr), arr, gids)
	case arrow.UINT8:
		accumulate(s.sum, s.n, rawValues[uint8](arr), arr, gids)
	case arrow.UINT16:
		accumulate(s.sum, s.n, rawValues[uint16](arr), arr, gids)
	case arrow.UINT32:
		accumulate(s.sum, s.n, rawValues[uint32](arr), arr, gids)
	case arrow.UINT64:
		accumulate(s.sum, s.n, rawValues[uint64](arr), arr, gids)
	case arrow.FLOAT32:
		accumulate(s.sum, s.n, rawValues[float32](arr), arr, gids)
	case arrow.FLOAT64:
		accumulate(s.sum, s.n, rawValues[float64](arr), arr, gids)
	}
}

func accumulate[T number, A int64 | float64](sum []A, cnt []int64, vals []T, arr arrow.Array, gids []uint32) {
	if len(vals) < len(gids) {
		return // empty or malformed array
	}
	bm, off := validity(arr)
	if bm == nil {
		for i, g := range gids {
			sum[g] += A(vals[i])
			cnt[g]++
		}
		return
	}
	for i, g := range gids {
		if bitSet(bm, off+i) {
			sum[g] += A(vals[i])
			cnt[g]++
		}
	}
}

func (s *sumState[A]) merge(o aggState, idmap []uint32) {
	os := o.(*sumState[A])
	for g := range os.n {
		s.sum[idmap[g]] += os.sum[g]
		s.n[idmap[g]] += os.n[g]
	}
}

func (s *sumState[A]) result(mem memory.Allocator, n int) (arrow.Array, error) {
	nulls := make([]bool, n)
	for g := range n {
		nulls[g] = s.n[g] == 0
	}
	if s.mean {
		m := make([]float64, n)
		for g := range n {
			if s.n[g] > 0 {
				m[g] = float64(s.sum[g]) / float64(s.n[g])
			}
		}
		return fixedArray(mem, arrow.PrimitiveTypes.Float64, m, nulls), nil
	}
	var z A
	var dt arrow.DataType = arrow.PrimitiveTypes.Int64
	if _, ok := any(z).(float64); ok {
		dt = arrow.PrimitiveTypes.Float64
	}
	return fixedArray(mem, dt, s.sum[:n], nulls), nil
}

// minMaxState is min or max over a fixed-width type laid out as T
// (timestamps and dates use their integer layout). Float NaN counts as the
// largest value, as in the sort order. Values start at the identity of
// the operation (the type's minimum for max; its maximum, or NaN, for min)
// so the per-row loop is one compare.
type minMaxState[T number] struct {
	dt   arrow.DataType
	max  bool
	init T
	v    []T
	has  []bool
}

func newMinMax[T number](dt arrow.DataType, max bool) *minMaxState[T] {
	lo, hi := extremes[T]()
	s := &minMaxState[T]{dt: dt, max: max, init: hi}
	if max {
		s.init = lo
	}
	return s
}

// extremes returns the least and the greatest value of T in the kernels'
// order, where NaN is above +Inf.
func extremes[T number]() (lo, hi T) {
	var z T
	var l, h any
	switch any(z).(type) {
	case int8:
		l, h = int8(math.MinInt8), int8(math.MaxInt8)
	case int16:
		l, h = int16(math.MinInt16), int16(math.MaxInt16)
	case int32:
		l, h = int32(math.MinInt32), int32(math.MaxInt32)
	case int64:
		l, h = int64(math.MinInt64), int64(math.MaxInt64)
	case uint8:
		l, h = uint8(0), uint8(math.MaxUint8)
	case uint16:
		l, h = uint16(0), uint16(math.MaxUint16)
	case uint32:
		l, h = uint32(0), uint32(math.MaxUint32)
	case uint64:
		l, h = uint64(0), uint64(math.MaxUint64)
	case float32:
		l, h = float32(math.Inf(-1)), float32(math.NaN())
	case float64:
		l, h = math.Inf(-1), math.NaN()
	}
	return l.(T), h.(T)
}

func (s *minMaxState[T]) grow(n int) {
	old := len(s.v)
	s.v = growTo(s.v, n)
	for g := old; g < n; g++ {
		s.v[g] = s.init
	}
	s.has = growTo(s.has, n)
}

// less orders NaN after everything else; for integers x != x is false and
// the compiler drops the test.
func less[T number](a, b T) bool { return a < b || (b != b && a == a) }

func (s *minMaxState[T]) update(arr arrow.Array, gids []uint32) {
	vals := rawValues[T](arr)
	if len(vals) < len(gids) {
		return
	}
	vals = vals[:len(gids)]
	bm, off := validity(arr)
	v, has := s.v, s.has
	switch {
	case s.max && bm == nil:
		for i, g := range gids {
			has[g] = true
			if x := vals[i]; less(v[g], x) {
				v[g] = x
			}
		}
	case s.max:
		for i, g := range gids {
			if bitSet(bm, off+i) {
				has[g] = true
				if x := vals[i]; less(v[g], x) {
					v[g] = x
				}
			}
		}
	case bm == nil:
		for i, g := range gids {
			has[g] = true
			if x := vals[i]; less(x, v[g]) {
				v[g] = x
			}
		}
	default:
		for i, g := range gids {
			if bitSet(bm, off+i) {
				has[g] = true
				if x := vals[i]; less(x, v[g]) {
					v[g] = x
				}
			}
		}
	}
}

func (s *minMaxState[T]) merge(o aggState, idmap []uint32) {
	os := o.(*minMaxState[T])
	for og, ok := range os.has {
		if !ok {
			continue
		}
		g, x := idmap[og], os.v[og]
		s.has[g] = true
		if (s.max && less(s.v[g], x)) || (!s.max && less(x, s.v[g])) {
			s.v[g] = x
		}
	}
}

func (s *minMaxState[T]) result(mem memory.Allocator, n int) (arrow.Array, error) {
	return fixedArray(mem, s.dt, s.v[:n], notIn(s.has[:n])), nil
}

func notIn(has []bool) []bool {
	nulls := make([]bool, len(has))
	for i, h := range has {
		nulls[i] = !h
	}
	return nulls
}

// minMaxBool is min (every value true) or max (some value true) over bools.
type minMaxBool struct {
	max bool
	v   []bool
	has []bool
}

func (s *minMaxBool) grow(n int) {
	s.v = growTo(s.v, n)
	s.has = growTo(s.has, n)
}

func (s *minMaxBool) update(arr arrow.Array, gids []uint32) {
	b := arr.(*array.Boolean)
	for i, g := range gids {
		if b.IsNull(i) {
			continue
		}
		s.fold(g, b.Value(i))
	}
}

func (s *minMaxBool) fold(g uint32, x bool) {
	switch {
	case !s.has[g]:
		s.v[g], s.has[g] = x, true
	case s.max:
		s.v[g] = s.v[g] || x
	default:
		s.v[g] = s.v[g] && x
	}
}

func (s *minMaxBool) merge(o aggState, idmap []uint32) {
	os := o.(*minMaxBool)
	for og, ok := range os.has {
		if ok {
			s.fold(idmap[og], os.v[og])
		}
	}
}

func (s *minMaxBool) result(mem memory.Allocator, n int) (arrow.Array, error) {
	return boolArray(mem, s.v[:n], notIn(s.has[:n])), nil
}

// minMaxBytes is min or max over strings or binaries, bytewise. Each group
// owns a copy of its current extreme.
type minMaxBytes struct {
	dt   arrow.DataType // output type
	max  bool
	v    [][]byte
	has  []bool
	view colView
}

func (s *minMaxBytes) grow(n int) {
	s.v = growTo(s.v, n)
	s.has = growTo(s.has, n)
}

func (s *minMaxBytes) update(arr arrow.Array, gids []uint32) {
	s.view.load(arr, forHash)
	for i, g := range gids {
		if !s.view.null(i) {
			s.fold(g, s.view.bytes(i))
		}
	}
}

func (s *minMaxBytes) fold(g uint32, x []byte) {
	if !s.has[g] {
		s.v[g], s.has[g] = append([]byte{}, x...), true
		return
	}
	if c := bytes.Compare(x, s.v[g]); (s.max && c > 0) || (!s.max && c < 0) {
		s.v[g] = append(s.v[g][:0], x...)
	}
}

func (s *minMaxBytes) merge(o aggState, idmap []uint32) {
	os := o.(*minMaxBytes)
	for og, ok := range os.has {
		if ok {
			s.fold(idmap[og], os.v[og])
		}
	}
}

func (s *minMaxBytes) result(mem memory.Allocator, n int) (arrow.Array, error) {
	return bytesArray(mem, s.dt, s.v[:n], notIn(s.has[:n]))
}

// countDistinct counts the distinct non-null values of each group.
//
// Fixed-width values take the sorted path while they fit: each non-null
// row appends one word, its group in the high distinctGroupBits and its
// value less a base (set by the first value) in the low distinctValueBits,
// and the words are radix sorted and deduplicated now and then (when the
// unsorted tail has grown as long as the deduplicated head, so each word is
// sorted a bounded number of times) and once more for the result. That is
// a sequential append per row instead of a random probe into a hash table
// of every (group, value) pair. A value or group that does not fit moves
// the state to one map keyed by (group, value); strings always use a map
// keyed by the group's 4 bytes then the value. Merge needs the sets, not
// just the counts.
type countDistinct struct {
	n      []int64 // per group, kept in map mode; computed by result in sorted mode
	words  []uint64
	sorted int // words[:sorted] are sorted and distinct
	base   uint64
	hasB   bool
	fixed  map[[2]uint64]struct{} // nil while on the sorted path
	bytes  map[string]struct{}    // key: 4-byte little-endian group, then the value
	view   colView
	key    []byte
	buf    []uint64
}

const (
	distinctValueBits = 40
	distinctGroupBits = 64 - distinctValueBits
	distinctMinTail   = 1 << 16
)

func (s *countDistinct) grow(n int) { s.n = growTo(s.n, n) }

// pack returns the word of (g, v), or false if it does not fit.
func (s *countDistinct) pack(g uint32, v uint64) (uint64, bool) {
	if !s.hasB {
		s.base, s.hasB = v-1<<(distinctValueBits-1), true
	}
	d := v - s.base
	if d>>distinctValueBits != 0 || uint64(g)>>distinctGroupBits != 0 {
		return 0, false
	}
	return uint64(g)<<distinctValueBits | d, true
}

// unpack is pack's inverse.
func (s *countDistinct) unpack(w uint64) (uint32, uint64) {
	return uint32(w >> distinctValueBits), w&(1<<distinctValueBits-1) + s.base
}

// compact sorts and deduplicates the words.
func (s *countDistinct) compact() {
	if s.sorted == len(s.words) {
		return
	}
	if cap(s.buf) < len(s.words) {
		s.buf = make([]uint64, len(s.words), cap(s.words))
	}
	w := radixSortU64(s.words, s.buf[:len(s.words)])
	out := w[:0]
	for i, x := range w {
		if i == 0 || x != w[i-1] {
			out = append(out, x)
		}
	}
	if &w[0] != &s.words[0] {
		s.buf, s.words = s.words, out
	} else {
		s.words = out
	}
	s.sorted = len(s.words)
}

// toMap moves the state to map mode, counting each group's values.
func (s *countDistinct) toMap() {
	s.compact()
	clear(s.n) // sorted mode counts nothing until result
	s.fixed = make(map[[2]uint64]struct{}, len(s.words))
	for _, w := range s.words {
		g, v := s.unpack(w)
		s.fixed[[2]uint64{uint64(g), v}] = struct{}{}
		s.n[g]++
	}
	s.words, s.buf, s.sorted = nil, nil, 0
}

func (s *countDistinct) addMap(g uint32, v uint64) {
	k := [2]uint64{uint64(g), v}
	if _, ok := s.fixed[k]; !ok {
		s.fixed[k] = struct{}{}
		s.n[g]++
	}
}

// reserve makes room for n more words, doubling (append grows large
// slices by a quarter, copying them more often).
func (s *countDistinct) reserve(n int) {
	if cap(s.words)-len(s.words) >= n {
		return
	}
	w := make([]uint64, len(s.words), max(2*cap(s.words), len(s.words)+n, 1<<16))
	copy(w, s.words)
	s.words = w
}

func (s *countDistinct) maybeCompact() {
	if tail := len(s.words) - s.sorted; tail >= distinctMinTail && tail >= s.sorted {
		s.compact()
	}
}

func (s *countDistinct) update(arr arrow.Array, gids []uint32) {
	s.view.load(arr, forHash)
	v := &s.view
	if v.kind == kindFixed {
		if s.fixed == nil {
			s.reserve(len(gids))
		}
		for i, g := range gids {
			if v.null(i) {
				continue
			}
			if s.fixed == nil {
				if w, ok := s.pack(g, v.u[i]); ok {
					s.words = append(s.words, w)
					continue
				}
				s.toMap()
			}
			s.addMap(g, v.u[i])
		}
		s.maybeCompact()
		return
	}
	for i, g := range gids {
		if v.null(i) {
			continue
		}
		s.key = binary.LittleEndian.AppendUint32(s.key[:0], g)
		s.key = append(s.key, v.bytes(i)...)
		if _, ok := s.bytes[string(s.key)]; !ok {
			s.bytes[string(s.key)] = struct{}{}
			s.n[g]++
		}
	}
}

func (s *countDistinct) merge(o aggState, idmap []uint32) {
	os := o.(*countDistinct)
	if s.fixed == nil {
		s.reserve(len(os.words))
	}
	for _, w := range os.words {
		g, v := os.unpack(w)
		g = idmap[g]
		if s.fixed == nil {
			if w, ok := s.pack(g, v); ok {
				s.words = append(s.words, w)
				continue
			}
			s.toMap()
		}
		s.addMap(g, v)
	}
	s.maybeCompact()
	if len(os.fixed) > 0 && s.fixed == nil {
		s.toMap()
	}
	for k := range os.fixed {
		s.addMap(idmap[k[0]], k[1])
	}
	for k := range os.bytes {
		g := idmap[binary.LittleEndian.Uint32([]byte(k[:4]))]
		s.key = binary.LittleEndian.AppendUint32(s.key[:0], g)
		s.key = append(s.key, k[4:]...)
		if _, ok := s.bytes[string(s.key)]; !ok {
			s.bytes[string(s.key)] = struct{}{}
			s.n[g]++
		}
	}
}

func (s *countDistinct) result(mem memory.Allocator, n int) (arrow.Array, error) {
	if s.fixed == nil && len(s.words) > 0 {
		// Sorted mode: the counts are the distinct words per group (the
		// string map is empty, as a state sees one column type).
		s.compact()
		clear(s.n)
		for _, w := range s.words {
			s.n[w>>distinctValueBits]++
		}
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, s.n[:n], nil), nil
}

// radixSortU64 sorts a using b (as long as a) as scratch, least significant
// byte first, skipping the bytes where every word agrees, and returns the
// sorted slice: a or b.
func radixSortU64(a, b []uint64) []uint64 {
	if len(a) < 256 {
		slices.Sort(a)
		return a
	}
	var cnt [8][256]int
	for _, x := range a {
		for d := range 8 {
			cnt[d][byte(x>>(8*d))]++
		}
	}
	for d := range 8 {
		c := &cnt[d]
		if c[byte(a[0]>>(8*d))] == len(a) {
			continue // every word has this byte
		}
		pos := 0
		for i, k := range c {
			c[i] = pos
			pos += k
		}
		shift := uint(8 * d)
		for _, x := range a {
			k := byte(x >> shift)
			b[c[k]] = x
			c[k]++
		}
		a, b = b, a
	}
	return a
}
