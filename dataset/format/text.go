package format

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/storage"
)

// This file holds what CSV and JSONL share: type inference, the
// per-column appenders that parse text into Arrow builders, the batches
// they fill, the one split of a file and the projection of its columns.

// kind is a point in the inference lattice. Merging two kinds gives the
// narrowest kind that holds both: int+float is float, date+timestamp is
// timestamp, anything else that differs is string.
type kind uint8

const (
	kNull kind = iota // only nulls seen so far
	kBool
	kInt
	kFloat
	kDate
	kTimestamp
	kString
)

func mergeKind(a, b kind) kind {
	switch {
	case a == b || b == kNull:
		return a
	case a == kNull:
		return b
	case a == kInt && b == kFloat || a == kFloat && b == kInt:
		return kFloat
	case a == kDate && b == kTimestamp || a == kTimestamp && b == kDate:
		return kTimestamp
	}
	return kString
}

// inferredTimestamp is the type inferred for timestamp text: instants, in
// microseconds, in UTC (text without an offset is read as UTC).
var inferredTimestamp = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

func kindType(k kind) arrow.DataType {
	switch k {
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	case kInt:
		return arrow.PrimitiveTypes.Int64
	case kFloat:
		return arrow.PrimitiveTypes.Float64
	case kDate:
		return arrow.FixedWidthTypes.Date32
	case kTimestamp:
		return inferredTimestamp
	}
	return arrow.BinaryTypes.String
}

// textKind is the kind of one non-null CSV field.
func textKind(s string) kind {
	if s == "" {
		return kString
	}
	if leadingZero(s) {
		// 02134 is a code (a postcode, a phone number), not the number
		// 2134: reading it as one would lose the zero. DuckDB keeps such
		// columns as text too.
		return kString
	}
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return kInt
	}
	if looksNumeric(s) {
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return kFloat
		}
	}
	switch s {
	case "true", "false", "True", "False", "TRUE", "FALSE":
		return kBool
	case "NaN", "+Inf", "-Inf": // as the writers spell them
		return kFloat
	}
	return timeKind(s)
}

// leadingZero reports a number written with a redundant leading zero
// ("02134", "-007", "00.5"), which inference keeps as text.
func leadingZero(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return len(s) >= 2 && s[0] == '0' && '0' <= s[1] && s[1] <= '9'
}

// looksNumeric keeps words such as "Inf" and "nan", which ParseFloat
// accepts, from making a text column numeric: a float needs a digit.
func looksNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			return true
		}
	}
	return false
}

// timeKind is kDate or kTimestamp when s parses as one, else kString.
func timeKind(s string) kind {
	if _, date, ok := parseTime(s); ok {
		if date {
			return kDate
		}
		return kTimestamp
	}
	return kString
}

// Layouts read as timestamps. Text without an offset is UTC.
var timeLayouts = []string{
	time.RFC3339Nano, // also matches RFC 3339 without fractional seconds
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// parseTime reads a date (2006-01-02) or a timestamp in one of timeLayouts.
func parseTime(s string) (t time.Time, dateOnly, ok bool) {
	// Every layout starts with a date; check its shape before asking
	// time.Parse, which is slow to fail.
	if len(s) < 10 || s[4] != '-' || s[7] != '-' || !digits(s[0:4]) || !digits(s[5:7]) || !digits(s[8:10]) {
		return time.Time{}, false, false
	}
	if len(s) == 10 {
		t, err := time.Parse(time.DateOnly, s)
		return t, true, err == nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), false, true
		}
	}
	return time.Time{}, false, false
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appender parses text into one column's builder.
type appender struct {
	name string
	text bool // a string column, which must hold valid UTF-8
	b    array.Builder
	// add parses s and appends it. On failure it appends nothing and
	// returns the reason, without the file, line or column.
	add func(s string) error
}

func cannotParse(s string, t arrow.DataType) error {
	return mark(ErrParse, "cannot parse %q as %s", clip(s), t)
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// textTypeOK reports whether the text formats can read a column of type t.
func textTypeOK(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.STRING, arrow.LARGE_STRING,
		arrow.BINARY, arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
		return true
	}
	return false
}

// newAppender returns the parser and builder for one field of a CSV or
// JSONL schema. The caller checks textTypeOK first.
func newAppender(f arrow.Field, mem memory.Allocator) *appender {
	b := array.NewBuilder(mem, f.Type)
	a := &appender{name: f.Name, b: b}
	t := f.Type
	switch bb := b.(type) {
	case *array.Int8Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseInt(s, 10, 8)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(int8(v))
			return nil
		}
	case *array.Int16Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseInt(s, 10, 16)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(int16(v))
			return nil
		}
	case *array.Int32Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(int32(v))
			return nil
		}
	case *array.Int64Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(v)
			return nil
		}
	case *array.Uint8Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseUint(s, 10, 8)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(uint8(v))
			return nil
		}
	case *array.Uint16Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseUint(s, 10, 16)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(uint16(v))
			return nil
		}
	case *array.Uint32Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(uint32(v))
			return nil
		}
	case *array.Uint64Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(v)
			return nil
		}
	case *array.Float32Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(float32(v))
			return nil
		}
	case *array.Float64Builder:
		a.add = func(s string) error {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(v)
			return nil
		}
	case *array.BooleanBuilder:
		a.add = func(s string) error {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return cannotParse(s, t)
			}
			bb.Append(v)
			return nil
		}
	case *array.StringBuilder:
		a.text = true
		a.add = func(s string) error { bb.Append(s); return nil }
	case *array.LargeStringBuilder:
		a.text = true
		a.add = func(s string) error { bb.Append(s); return nil }
	case *array.BinaryBuilder:
		a.add = func(s string) error { bb.AppendString(s); return nil }
	case *array.TimestampBuilder:
		unit := t.(*arrow.TimestampType).Unit
		a.add = func(s string) error {
			tm, _, ok := parseTime(s)
			if !ok {
				return cannotParse(s, t)
			}
			v, ok := timeToUnit(tm, unit)
			if !ok {
				return mark(ErrParse, "%q is outside the range of %s", clip(s), t)
			}
			bb.Append(arrow.Timestamp(v))
			return nil
		}
	case *array.Date32Builder:
		a.add = func(s string) error {
			tm, _, ok := parseTime(s)
			if !ok {
				return cannotParse(s, t)
			}
			bb.Append(arrow.Date32FromTime(tm))
			return nil
		}
	case *array.Date64Builder:
		a.add = func(s string) error {
			tm, _, ok := parseTime(s)
			if !ok {
				return cannotParse(s, t)
			}
			bb.Append(arrow.Date64FromTime(tm))
			return nil
		}
	default:
		// textTypeOK rules this out; fail loudly in tests, not silently.
		b.Release()
		panic(fmt.Sprintf("format: no text appender for %s", t))
	}
	return a
}

// timeToUnit converts t to a count of unit since the epoch; false when it
// does not fit in an int64 (nanoseconds cover 1677 to 2262 only).
func timeToUnit(t time.Time, unit arrow.TimeUnit) (int64, bool) {
	switch unit {
	case arrow.Second:
		return t.Unix(), true
	case arrow.Millisecond:
		return t.UnixMilli(), true
	case arrow.Microsecond:
		return t.UnixMicro(), true
	}
	const maxSec = math.MaxInt64 / int64(time.Second)
	if sec := t.Unix(); sec <= -maxSec || sec >= maxSec {
		return 0, false
	}
	return t.UnixNano(), true
}

// unitToTime is the inverse of timeToUnit, in UTC.
func unitToTime(v int64, unit arrow.TimeUnit) time.Time {
	switch unit {
	case arrow.Second:
		return time.Unix(v, 0).UTC()
	case arrow.Millisecond:
		return time.UnixMilli(v).UTC()
	case arrow.Microsecond:
		return time.UnixMicro(v).UTC()
	}
	return time.Unix(0, v).UTC()
}

// batchBuilder turns the appenders' builders into record batches of at
// most limit rows: the part of Read that the text formats (CSV, JSONL)
// share once a line is parsed into the appenders.
type batchBuilder struct {
	sc    *arrow.Schema
	apps  []*appender
	rows  int64
	limit int64
}

// newBatchBuilder starts a text format's Read of the output columns fields:
// batches of opts' batch rows, on mem (nil: the default allocator).
func newBatchBuilder(fields []arrow.Field, opts ReadOptions, mem memory.Allocator) *batchBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	bb := &batchBuilder{sc: arrow.NewSchema(fields, nil), apps: make([]*appender, len(fields)), limit: int64(opts.batchRows())}
	for i, f := range fields {
		bb.apps[i] = newAppender(f, mem)
	}
	return bb
}

// endRow counts the row just appended and emits a batch when it is full
// (after checking ctx, so a cancelled read stops within a batch).
func (bb *batchBuilder) endRow(ctx context.Context, emit func(arrow.RecordBatch) error) error {
	bb.rows++
	if bb.rows < bb.limit {
		return nil
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return emit(bb.finish())
}

// flush emits the rows left at the end of the file, if any.
func (bb *batchBuilder) flush(emit func(arrow.RecordBatch) error) error {
	if bb.rows > 0 {
		return emit(bb.finish())
	}
	return nil
}

// finish returns the rows appended since the last finish as a batch.
func (bb *batchBuilder) finish() arrow.RecordBatch {
	cols := make([]arrow.Array, len(bb.apps))
	for i, a := range bb.apps {
		cols[i] = a.b.NewArray()
	}
	rec := array.NewRecordBatch(bb.sc, cols, bb.rows)
	for _, c := range cols {
		c.Release()
	}
	bb.rows = 0
	return rec
}

func (bb *batchBuilder) release() {
	for _, a := range bb.apps {
		a.b.Release()
	}
}

// wholeFile is the one split of a text file (CSV, JSONL), which is read
// from its start.
func wholeFile(f storage.File) []Split {
	return []Split{{Path: f.Path(), Size: f.Size(), Rows: -1}}
}

// pickColumns is the index in fields of each of cols, in order; a column
// fields lacks is ErrNoColumn naming the file p and the columns it has.
func pickColumns(p string, fields []arrow.Field, cols []string) ([]int, error) {
	have := make([]string, len(fields))
	for i, fl := range fields {
		have[i] = fl.Name
	}
	idx := make([]int, len(cols))
	for k, c := range cols {
		i := slices.Index(have, c)
		if i < 0 {
			return nil, noColumn(p, c, have)
		}
		idx[k] = i
	}
	return idx, nil
}

// appendFloatText writes a float so that it reads back as a float: integral
// values get ".0", and NaN and infinities are spelled as ParseFloat reads them.
func appendFloatText(dst []byte, v float64, bits int) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, v, 'g', -1, bits)
	for _, c := range dst[start:] {
		if c == '.' || c == 'e' || c == 'E' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

// appendTimeText writes a timestamp as RFC 3339 in UTC, with as many
// fractional digits as it needs.
func appendTimeText(dst []byte, v int64, unit arrow.TimeUnit) []byte {
	return unitToTime(v, unit).AppendFormat(dst, time.RFC3339Nano)
}
