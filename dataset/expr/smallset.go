package expr

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// smallSetMax is the longest IN list answered by linear scan. Filters such
// as category IN ('c1','c7','c9') are the common case; comparing a few
// short strings beats hashing each row, which is what Arrow's is_in does.
const smallSetMax = 8

// smallSet is an IN list held as plain Go values for a linear scan.
type smallSet struct {
	match func(data arrow.ArrayData, out []byte)
}

// newSmallSet returns nil when set is too long or of a type the scan does
// not handle; is_in serves those.
func newSmallSet(set arrow.Array) *smallSet {
	nonNull := set.Len() - set.NullN()
	if nonNull > smallSetMax {
		return nil
	}
	switch a := set.(type) {
	case *array.String:
		vals := make([][]byte, 0, nonNull)
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) {
				vals = append(vals, []byte(a.Value(i)))
			}
		}
		cands := prepareStrings(vals)
		minLen, maxLen := math.MaxInt, 0
		for _, c := range cands {
			minLen, maxLen = min(minLen, c.n), max(maxLen, c.n)
		}
		return &smallSet{match: func(d arrow.ArrayData, out []byte) { matchStrings(d, cands, minLen, maxLen, out) }}
	case *array.Boolean:
		// Arrow's is_in answers FALSE for every boolean in v18.8.0.
		var hasTrue, hasFalse bool
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) {
				hasTrue = hasTrue || a.Value(i)
				hasFalse = hasFalse || !a.Value(i)
			}
		}
		return &smallSet{match: func(d arrow.ArrayData, out []byte) {
			n := d.Len()
			switch {
			case hasTrue && hasFalse:
				for i := range out {
					out[i] = 0xff
				}
			case hasTrue:
				bitutil.CopyBitmap(d.Buffers()[1].Bytes(), d.Offset(), n, out, 0)
			case hasFalse:
				bitutil.InvertBitmap(d.Buffers()[1].Bytes(), d.Offset(), n, out, 0)
			}
		}}
	case *array.Int64:
		return fixedSmallSet(a.Int64Values(), a)
	case *array.Int32:
		return fixedSmallSet(a.Int32Values(), a)
	case *array.Int16:
		return fixedSmallSet(a.Int16Values(), a)
	case *array.Int8:
		return fixedSmallSet(a.Int8Values(), a)
	case *array.Uint64:
		return fixedSmallSet(a.Uint64Values(), a)
	case *array.Uint32:
		return fixedSmallSet(a.Uint32Values(), a)
	case *array.Uint16:
		return fixedSmallSet(a.Uint16Values(), a)
	case *array.Uint8:
		return fixedSmallSet(a.Uint8Values(), a)
	case *array.Date32:
		return fixedSmallSet(arrow.GetValues[int32](a.Data(), 1), a)
	case *array.Timestamp:
		return fixedSmallSet(arrow.GetValues[int64](a.Data(), 1), a)
	}
	// Floats are left to is_in, whose NaN handling we keep.
	return nil
}

func fixedSmallSet[T fixed](all []T, a arrow.Array) *smallSet {
	vals := make([]T, 0, len(all))
	for i, v := range all {
		if a.IsValid(i) {
			vals = append(vals, v)
		}
	}
	return &smallSet{match: func(d arrow.ArrayData, out []byte) {
		xs := arrow.GetValues[T](d, 1)
		for i, x := range xs {
			for _, v := range vals {
				if x == v {
					out[i>>3] |= 1 << (i & 7)
					break
				}
			}
		}
	}}
}

// strCand is an IN-list string prepared for matching: its length and its
// first (up to) 8 bytes as a little-endian word.
type strCand struct {
	n    int
	head uint64
	tail []byte // bytes after the first 8
}

// headMask[l] keeps the first l bytes of a little-endian word.
var headMask = func() (m [9]uint64) {
	for l := 0; l < 8; l++ {
		m[l] = 1<<(8*l) - 1
	}
	m[8] = ^uint64(0)
	return m
}()

// loadHead reads the first min(len(s), 8) bytes of data[lo:hi] as a word;
// when the buffer extends 8 bytes past lo it reads them in one load.
func loadHead(data []byte, lo, hi int) uint64 {
	l := min(hi-lo, 8)
	if lo+8 <= len(data) {
		return binary.LittleEndian.Uint64(data[lo:]) & headMask[l]
	}
	var w uint64
	for k := l - 1; k >= 0; k-- {
		w = w<<8 | uint64(data[lo+k])
	}
	return w
}

func prepareStrings(vals [][]byte) []strCand {
	cands := make([]strCand, len(vals))
	for k, v := range vals {
		cands[k] = strCand{n: len(v), head: loadHead(v, 0, len(v))}
		if len(v) > 8 {
			cands[k].tail = v[8:]
		}
	}
	return cands
}

// matchStrings sets bit i of out when row i of d is one of cands.
func matchStrings(d arrow.ArrayData, cands []strCand, minLen, maxLen int, out []byte) {
	offs := arrow.GetOffsets[int32](d, 1)
	var data []byte
	if b := d.Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	if maxLen <= 7 && len(cands) > 0 {
		matchShortStrings(offs, data, cands, minLen, maxLen, out)
		return
	}
	for i := 0; i < len(offs)-1; i++ {
		lo, hi := int(offs[i]), int(offs[i+1])
		l := hi - lo
		if l < minLen || l > maxLen {
			continue
		}
		w := loadHead(data, lo, hi)
		for k := range cands {
			c := &cands[k]
			if c.n == l && c.head == w && (l <= 8 || bytes.Equal(c.tail, data[lo+8:hi])) {
				out[i>>3] |= 1 << (i & 7)
				break
			}
		}
	}
}

// matchShortStrings handles lists whose strings all fit in 7 bytes, such
// as category codes. A row's key is its first word with its length in the
// top byte, so one XOR compares length and content. Matching is
// branch-free (a min over the XORs), because whether a row matches is as
// unpredictable as the data.
func matchShortStrings(offs []int32, data []byte, cands []strCand, minLen, maxLen int, out []byte) {
	var keys [smallSetMax]uint64
	for k, c := range cands {
		keys[k] = c.head | uint64(c.n)<<56
	}
	nk := len(cands)
	n := len(offs) - 1
	for base := 0; base < n; base += 8 {
		var bits byte
		end := min(base+8, n)
		for i := base; i < end; i++ {
			lo, hi := int(offs[i]), int(offs[i+1])
			l := hi - lo
			if l > maxLen {
				continue
			}
			var key uint64
			if lo+8 <= len(data) {
				key = binary.LittleEndian.Uint64(data[lo:]) & headMask[l&7]
			} else {
				key = loadHead(data, lo, hi)
			}
			key |= uint64(l) << 56
			diff := key ^ keys[0]
			for k := 1; k < nk; k++ {
				diff = min(diff, key^keys[k])
			}
			var hit byte
			if diff == 0 {
				hit = 1
			}
			bits |= hit << (i - base)
		}
		out[base>>3] = bits
	}
}

// eval runs the scan over d with SQL semantics: a match is TRUE; no match
// is FALSE, or NULL when the list holds NULL; a NULL input is NULL.
func (s *smallSet) eval(ec *evalCtx, d arrow.ArrayData, hasNull, not bool) compute.Datum {
	n := d.Len()
	outBuf, out := newBoolOut(ec.mem, n)
	if n > 0 {
		s.match(d, out)
	}
	inBits, inOff := validityOf(d)
	var valid *memory.Buffer
	nulls := 0
	switch {
	case hasNull:
		// Valid only where the input is valid and matched.
		valid = memory.NewResizableBuffer(ec.mem)
		valid.Resize(len(out))
		vb := valid.Bytes()
		copy(vb, out)
		if inBits != nil {
			bitutil.BitmapAnd(vb, inBits, 0, int64(inOff), vb, 0, int64(n))
		}
		nulls = n - bitutil.CountSetBits(vb, 0, n)
	case inBits != nil:
		valid = memory.NewResizableBuffer(ec.mem)
		valid.Resize(len(out))
		bitutil.CopyBitmap(inBits, inOff, n, valid.Bytes(), 0)
		nulls = nullN(d)
	}
	if not {
		bitutil.InvertBitmap(out, 0, n, out, 0)
	}
	return makeDatum(typBool, n, nulls, valid, outBuf)
}
