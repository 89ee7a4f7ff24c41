package expr

import (
	"bytes"
	"encoding/binary"
	"math"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// String kernels. Strings are read as byte slices straight out of the
// Arrow buffers and written into a strOut; lengths and positions count
// runes (characters), as in SQL. Invalid UTF-8 bytes are passed through
// unchanged and count as one character each.

// mapStrings applies f, which appends the transformed s to dst, to every
// valid row. NULL rows stay NULL. dst has room for len(s) more bytes; f
// may append beyond that (strOut.end moves the bytes back into the
// allocator's buffer), which only non-ASCII case mapping does.
func mapStrings(ec *evalCtx, arg compute.Datum, f func(dst, s []byte) []byte) (compute.Datum, error) {
	n := ec.n
	valid, nulls, allNull := intersectValidity(ec.mem, n, arg)
	if allNull {
		return compute.NewDatum(scalar.MakeNullScalar(typString)), nil
	}
	x := newStrView(arg)
	hint := len(x.data)
	if x.isConst {
		hint = len(x.c) * n
	}
	so := newStrOut(ec.mem, n, hint+64)
	for i := 0; i < n; i++ {
		if x.ok(i) {
			s := x.at(i)
			// f reserves beyond len(s) itself if it grows the text.
			so.reserve(len(s))
			so.data = f(so.data, s)
		}
		if err := so.end(i); err != nil {
			so.release()
			if valid != nil {
				valid.Release()
			}
			return nil, err
		}
	}
	return so.finish(n, valid, nulls), nil
}

func lowerKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	if d, ok := mapASCII(ec, args[0], 'A', 'Z'); ok {
		return d, nil
	}
	return mapStrings(ec, args[0], appendLower)
}

func upperKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	if d, ok := mapASCII(ec, args[0], 'a', 'z'); ok {
		return d, nil
	}
	return mapStrings(ec, args[0], appendUpper)
}

// mapASCII is the fast path of lower and upper: when every byte of the
// array's character data is ASCII, the result has the same offsets and its
// bytes are the input's with those in [from, to] flipped in case, eight at
// a time. It reports false, having allocated nothing, otherwise.
func mapASCII(ec *evalCtx, arg compute.Datum, from, to byte) (compute.Datum, bool) {
	a, ok := arg.(*compute.ArrayDatum)
	if !ok || a.Value.Len() == 0 {
		return nil, false
	}
	d := a.Value
	offs := arrow.GetOffsets[int32](d, 1)
	var src []byte
	if b := d.Buffers()[2]; b != nil {
		src = b.Bytes()[offs[0]:offs[len(offs)-1]]
	}
	if !isASCII(src) {
		return nil, false
	}
	n := d.Len()
	valid, nulls, _ := intersectValidity(ec.mem, n, arg)
	offBuf, outOffs := newFixedOut[int32](ec.mem, n+1)
	base := offs[0]
	for i, o := range offs {
		outOffs[i] = o - base
	}
	dataBuf, dst := newFixedOut[uint8](ec.mem, len(src))
	flipCaseASCII(dst, src, from, to)
	return makeDatum(typString, n, nulls, valid, offBuf, dataBuf), true
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// flipCaseASCII copies src to dst toggling the case bit (0x20) of bytes in
// [from, to]. src must be ASCII. Per 64-bit word: adding 0x80-from sets a
// byte's high bit when the byte is >= from, adding 0x80-to-1 when it is >
// to; no carry crosses bytes because every byte is below 0x80.
func flipCaseASCII(dst, src []byte, from, to byte) {
	geFrom := uint64(0x80-from) * ones
	gtTo := uint64(0x80-to-1) * ones
	i := 0
	for ; i+8 <= len(src); i += 8 {
		w := binary.LittleEndian.Uint64(src[i:])
		in := (w + geFrom) &^ (w + gtTo) & highs
		binary.LittleEndian.PutUint64(dst[i:], w^(in>>2))
	}
	for ; i < len(src); i++ {
		c := src[i]
		if c >= from && c <= to {
			c ^= 0x20
		}
		dst[i] = c
	}
}

func trimKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return mapStrings(ec, args[0], func(dst, s []byte) []byte {
		return append(dst, bytes.TrimFunc(s, unicode.IsSpace)...)
	})
}

// appendLower lower-cases s onto dst, one byte at a time while s is ASCII.
func appendLower(dst, s []byte) []byte {
	start := len(dst)
	dst = dst[:start+len(s)]
	out := dst[start:]
	for i, c := range s {
		if c >= utf8.RuneSelf {
			return appendCaseUnicode(dst[:start+i], s[i:], unicode.ToLower)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return dst
}

func appendUpper(dst, s []byte) []byte {
	start := len(dst)
	dst = dst[:start+len(s)]
	out := dst[start:]
	for i, c := range s {
		if c >= utf8.RuneSelf {
			return appendCaseUnicode(dst[:start+i], s[i:], unicode.ToUpper)
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return dst
}

func appendCaseUnicode(dst, s []byte, f func(rune) rune) []byte {
	for len(s) > 0 {
		r, w := utf8.DecodeRune(s)
		if r == utf8.RuneError && w == 1 {
			dst = append(dst, s[0])
		} else {
			dst = utf8.AppendRune(dst, f(r))
		}
		s = s[w:]
	}
	return dst
}

// isASCII reports whether s has no byte >= 0x80, a word at a time.
func isASCII(s []byte) bool {
	i := 0
	var acc uint64
	for ; i+32 <= len(s); i += 32 {
		acc |= binary.LittleEndian.Uint64(s[i:]) | binary.LittleEndian.Uint64(s[i+8:]) |
			binary.LittleEndian.Uint64(s[i+16:]) | binary.LittleEndian.Uint64(s[i+24:])
	}
	for ; i+8 <= len(s); i += 8 {
		acc |= binary.LittleEndian.Uint64(s[i:])
	}
	if acc&highs != 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lengthKernel counts characters.
func lengthKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	n := ec.n
	valid, nulls, allNull := intersectValidity(ec.mem, n, args[0])
	if allNull {
		return compute.NewDatum(scalar.MakeNullScalar(typInt64)), nil
	}
	x := newStrView(args[0])
	outBuf, out := newFixedOut[int64](ec.mem, n)
	for i := 0; i < n; i++ {
		if !x.ok(i) {
			out[i] = 0
			continue
		}
		out[i] = int64(utf8.RuneCount(x.at(i)))
	}
	return makeDatum(typInt64, n, nulls, valid, outBuf), nil
}

// substrKernel is substr(s, start[, len]) with 1-based start, as in
// PostgreSQL: characters at positions [start, start+len) that exist are
// returned, so substr('hello', 0, 3) is 'he'. A negative len yields the empty string.
func substrKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	n := ec.n
	valid, nulls, allNull := intersectValidity(ec.mem, n, args...)
	if allNull {
		return compute.NewDatum(scalar.MakeNullScalar(typString)), nil
	}
	x := newStrView(args[0])
	start := newFixedView[int64](args[1])
	hasLen := len(args) == 3
	var length fixedView[int64]
	if hasLen {
		length = newFixedView[int64](args[2])
	}
	so := newStrOut(ec.mem, n, len(x.data))
	for i := 0; i < n; i++ {
		if valid == nil || validAt(valid.Bytes(), i) {
			l := int64(math.MaxInt64)
			if hasLen {
				l = length.at(i)
			}
			so.append(substr(x.at(i), start.at(i), l))
		}
		if err := so.end(i); err != nil {
			so.release()
			if valid != nil {
				valid.Release()
			}
			return nil, err
		}
	}
	return so.finish(n, valid, nulls), nil
}

func validAt(bits []byte, i int) bool { return bits[i>>3]&(1<<(i&7)) != 0 }

func substr(s []byte, start, length int64) []byte {
	if length < 0 {
		return nil
	}
	from := start - 1 // 0-based, may be negative
	to := from + length
	if length > 0 && to < from { // overflow: no end
		to = math.MaxInt64
	}
	from = max(from, 0)
	if to <= from {
		return nil
	}
	if isASCII(s) {
		ls := int64(len(s))
		if from >= ls {
			return nil
		}
		return s[from:min(to, ls)]
	}
	begin, end := len(s), len(s)
	var idx int64
	for b := 0; b < len(s); idx++ {
		if idx == from {
			begin = b
		}
		if idx == to {
			end = b
			break
		}
		_, w := utf8.DecodeRune(s[b:])
		b += w
	}
	if begin >= end {
		return nil
	}
	return s[begin:end]
}

// concatKernel joins its arguments, skipping NULLs, as PostgreSQL's
// concat does; the result is never NULL.
func concatKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	n := ec.n
	views := make([]strView, len(args))
	size := 0
	for k, a := range args {
		views[k] = newStrView(a)
		if views[k].isConst {
			size += len(views[k].c) * n
		} else {
			size += len(views[k].data)
		}
	}
	so := newStrOut(ec.mem, n, size)
	for i := 0; i < n; i++ {
		for k := range views {
			if views[k].ok(i) {
				so.append(views[k].at(i))
			}
		}
		if err := so.end(i); err != nil {
			so.release()
			return nil, err
		}
	}
	return so.finish(n, nil, 0), nil
}

// stringPredicate evaluates f(s, t) into a boolean array, NULL when
// either side is NULL.
func stringPredicate(ec *evalCtx, args []compute.Datum, f func(s, t []byte) bool) (compute.Datum, error) {
	n := ec.n
	valid, nulls, allNull := intersectValidity(ec.mem, n, args...)
	if allNull {
		return compute.NewDatum(scalar.MakeNullScalar(typBool)), nil
	}
	s, t := newStrView(args[0]), newStrView(args[1])
	outBuf, out := newBoolOut(ec.mem, n)
	var bits []byte
	if valid != nil {
		bits = valid.Bytes()
	}
	for i := 0; i < n; i++ {
		if bits != nil && !validAt(bits, i) {
			continue
		}
		if f(s.at(i), t.at(i)) {
			out[i>>3] |= 1 << (i & 7)
		}
	}
	return makeDatum(typBool, n, nulls, valid, outBuf), nil
}

func containsKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return stringPredicate(ec, args, bytes.Contains)
}

func startsWithKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return stringPredicate(ec, args, bytes.HasPrefix)
}

func endsWithKernel(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return stringPredicate(ec, args, bytes.HasSuffix)
}

// regexpKernel reports whether the compiled pattern matches anywhere in
// each string (RE2 syntax; anchor with ^ and $ for a full match).
func regexpKernel(re *regexp.Regexp) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		n := ec.n
		valid, nulls, allNull := intersectValidity(ec.mem, n, args[0])
		if allNull {
			return compute.NewDatum(scalar.MakeNullScalar(typBool)), nil
		}
		s := newStrView(args[0])
		outBuf, out := newBoolOut(ec.mem, n)
		for i := 0; i < n; i++ {
			if s.ok(i) && re.Match(s.at(i)) {
				out[i>>3] |= 1 << (i & 7)
			}
		}
		return makeDatum(typBool, n, nulls, valid, outBuf), nil
	}
}
