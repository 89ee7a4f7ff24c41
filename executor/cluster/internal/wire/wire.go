// Package wire is the plumbing of the cluster's compact binary encodings
// (the Raft log's commands, the worker calls' bodies): append functions
// and a Reader whose first error sticks, so a decoder reads field after
// field and checks once. A malformed input is an error, never a panic,
// and no length read from the input sizes an allocation larger than the
// input itself.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrMalformed is an input that does not decode.
var ErrMalformed = errors.New("wire: malformed input")

// The times an input may hold: years 0 to 9999, as JSON allows (and so
// the snapshots that hold them).
const (
	minUnix = -62167219200 // 0000-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// AppendString appends s as a uvarint length and its bytes.
func AppendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// AppendStrings appends a uvarint count and each string.
func AppendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = AppendString(b, s)
	}
	return b
}

// AppendTime appends t as varint Unix seconds and uvarint nanoseconds
// (the zone is not kept: Reader.Time reads UTC; the zero time reads back
// zero).
func AppendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// AppendBool appends b as one byte.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Reader reads an input; after the first error every read returns a zero
// value, and Err reports it.
type Reader struct {
	b   []byte
	off int
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err is the first error, naming the byte it happened at.
func (r *Reader) Err() error { return r.err }

// Left is how many bytes are still to read.
func (r *Reader) Left() int { return len(r.b) - r.off }

// Fail records an error at the current byte (the first one sticks).
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
	}
}

// End fails unless the whole input was read.
func (r *Reader) End() error {
	if r.err == nil && r.off != len(r.b) {
		r.Fail("%d bytes after the end", len(r.b)-r.off)
	}
	return r.err
}

// Uvarint reads a uvarint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.Fail("bad uvarint")
		return 0
	}
	r.off += n
	return v
}

// Varint reads a varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.Fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

// Int reads a varint that fits an int.
func (r *Reader) Int() int {
	v := r.Varint()
	if v < math.MinInt || v > math.MaxInt {
		r.Fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

// Count reads a uvarint count of items that take at least min bytes
// each: one past what is left fails (so it can size an allocation).
func (r *Reader) Count(min int) int {
	n := r.Uvarint()
	if r.err == nil && n > uint64(r.Left()/max(min, 1)) {
		r.Fail("%d items in %d bytes", n, r.Left())
		return 0
	}
	return int(n)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.Fail("the input ends early")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

// Bool reads a byte that is 0 or 1.
func (r *Reader) Bool() bool {
	switch v := r.Byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.Fail("bool byte %d", v)
		return false
	}
}

// Bytes reads a length-prefixed byte string, aliasing the input.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(r.Left()) {
		r.Fail("a string of %d bytes in %d left", n, r.Left())
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// String reads a length-prefixed string.
func (r *Reader) String() string { return string(r.Bytes()) }

// Strings reads what AppendStrings wrote; none is nil.
func (r *Reader) Strings() []string {
	n := r.Count(1)
	if r.err != nil || n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.String()
	}
	return out
}

// Time reads what AppendTime wrote, in UTC.
func (r *Reader) Time() time.Time {
	s, ns := r.Varint(), r.Uvarint()
	switch {
	case r.err != nil:
	case ns >= 1e9:
		r.Fail("%d nanoseconds", ns)
	case s < minUnix || s > maxUnix:
		r.Fail("time %d s outside years 0 to 9999", s)
	}
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}
