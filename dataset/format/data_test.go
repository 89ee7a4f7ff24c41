package format_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// column is one generated column: its field and its Go values (nil = null).
type column struct {
	field arrow.Field
	vals  []any
}

var texts = []string{
	"plain", "with,comma", `with "quotes"`, "two\nlines", "ünïcødé ✓", "tab\tinside",
	`back\slash`, " leading space", "trailing space ", "{\"json\": [1, 2]}", "\x01ctrl",
}

// allTypes generates n rows of every type the formats support, with nulls
// scattered through every column and the extreme values of each type.
func allTypes(n int, seed uint64) []column {
	rng := rand.New(rand.NewPCG(seed, 1))
	cols := []column{
		{field: arrow.Field{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true}},
		{field: arrow.Field{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true}},
		{field: arrow.Field{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true}},
		{field: arrow.Field{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true}},
		{field: arrow.Field{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true}},
		{field: arrow.Field{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true}},
		{field: arrow.Field{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true}},
		{field: arrow.Field{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true}},
		{field: arrow.Field{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true}},
		{field: arrow.Field{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true}},
		{field: arrow.Field{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true}},
		{field: arrow.Field{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}},
		{field: arrow.Field{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true}},
		{field: arrow.Field{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true}},
		{field: arrow.Field{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true}},
		{field: arrow.Field{Name: "ts_s", Type: &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Europe/Paris"}, Nullable: true}},
		{field: arrow.Field{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true}},
		{field: arrow.Field{Name: "req", Type: arrow.PrimitiveTypes.Int64, Nullable: false}},
	}
	lo := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	hi := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	for c := range cols {
		vals := make([]any, n)
		for r := range n {
			if cols[c].field.Nullable && (r+c)%7 == 0 {
				continue
			}
			edge := r % 50 // rows 1 and 2 of every 50 hold the extremes
			var v any
			switch cols[c].field.Name {
			case "i8":
				v = []int8{int8(rng.IntN(256) - 128), math.MinInt8, math.MaxInt8}[min(edge, 3)%3]
			case "i16":
				v = []int16{int16(rng.IntN(65536) - 32768), math.MinInt16, math.MaxInt16}[min(edge, 3)%3]
			case "i32":
				v = []int32{rng.Int32() - math.MaxInt32/2, math.MinInt32, math.MaxInt32}[min(edge, 3)%3]
			case "i64":
				v = []int64{rng.Int64() - math.MaxInt64/2, math.MinInt64, math.MaxInt64}[min(edge, 3)%3]
			case "u8":
				v = []uint8{uint8(rng.IntN(256)), 0, math.MaxUint8}[min(edge, 3)%3]
			case "u16":
				v = []uint16{uint16(rng.IntN(65536)), 0, math.MaxUint16}[min(edge, 3)%3]
			case "u32":
				v = []uint32{rng.Uint32(), 0, math.MaxUint32}[min(edge, 3)%3]
			case "u64":
				v = []uint64{rng.Uint64(), 0, math.MaxUint64}[min(edge, 3)%3]
			case "f32":
				v = []float32{float32(rng.NormFloat64() * 1e4), 3, float32(math.Inf(-1)), -0.5}[min(edge, 4)%4]
			case "f64":
				v = []float64{rng.NormFloat64() * 1e6, math.NaN(), math.Inf(1), 1e300, 42}[min(edge, 5)%5]
			case "b":
				v = rng.IntN(2) == 1
			case "s":
				v = texts[rng.IntN(len(texts))] + fmt.Sprint(r)
			case "ts":
				v = arrow.Timestamp(lo.UnixMicro() + rng.Int64N(hi.UnixMicro()-lo.UnixMicro()))
			case "ts_ms":
				v = arrow.Timestamp(lo.UnixMilli() + rng.Int64N(hi.UnixMilli()-lo.UnixMilli()))
			case "ts_s":
				v = arrow.Timestamp(lo.Unix() + rng.Int64N(hi.Unix()-lo.Unix()))
			case "ts_ns":
				v = arrow.Timestamp(rng.Int64() / 2 * int64(1-2*rng.IntN(2)))
			case "d":
				v = arrow.Date32(rng.IntN(100000) - 30000)
			case "req":
				v = int64(r)
			}
			vals[r] = v
		}
		cols[c].vals = vals
	}
	return cols
}

func schemaOf(cols []column) *arrow.Schema {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = c.field
	}
	return arrow.NewSchema(fs, nil)
}

// pick returns the named columns.
func pick(cols []column, names ...string) []column {
	var out []column
	for _, n := range names {
		for _, c := range cols {
			if c.field.Name == n {
				out = append(out, c)
			}
		}
	}
	return out
}

// batches builds rows [0, n) as batches of at most size rows.
func batches(mem memory.Allocator, cols []column, size int) []arrow.RecordBatch {
	sc := schemaOf(cols)
	n := len(cols[0].vals)
	var out []arrow.RecordBatch
	for start := 0; start < n; start += size {
		end := min(start+size, n)
		b := array.NewRecordBuilder(mem, sc)
		for c, col := range cols {
			fb := b.Field(c)
			for _, v := range col.vals[start:end] {
				if v == nil {
					fb.AppendNull()
					continue
				}
				switch fb := fb.(type) {
				case *array.Int8Builder:
					fb.Append(v.(int8))
				case *array.Int16Builder:
					fb.Append(v.(int16))
				case *array.Int32Builder:
					fb.Append(v.(int32))
				case *array.Int64Builder:
					fb.Append(v.(int64))
				case *array.Uint8Builder:
					fb.Append(v.(uint8))
				case *array.Uint16Builder:
					fb.Append(v.(uint16))
				case *array.Uint32Builder:
					fb.Append(v.(uint32))
				case *array.Uint64Builder:
					fb.Append(v.(uint64))
				case *array.Float32Builder:
					fb.Append(v.(float32))
				case *array.Float64Builder:
					fb.Append(v.(float64))
				case *array.BooleanBuilder:
					fb.Append(v.(bool))
				case *array.StringBuilder:
					fb.Append(v.(string))
				case *array.TimestampBuilder:
					fb.Append(v.(arrow.Timestamp))
				case *array.Date32Builder:
					fb.Append(v.(arrow.Date32))
				default:
					panic(fmt.Sprintf("no builder case for %T", fb))
				}
			}
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

// cell is the Go value at row i of a (nil for null).
func cell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int8:
		return a.Value(i)
	case *array.Int16:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return a.Value(i)
	case *array.Uint16:
		return a.Value(i)
	case *array.Uint32:
		return a.Value(i)
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Timestamp:
		return a.Value(i)
	case *array.Date32:
		return a.Value(i)
	}
	panic(fmt.Sprintf("no cell case for %T", a))
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok && math.IsNaN(x) && math.IsNaN(y) {
			return true
		}
	case float32:
		if y, ok := b.(float32); ok && x != x && y != y {
			return true
		}
	}
	return reflect.DeepEqual(a, b)
}

// checkRows compares the batches, column by column, to the generated
// values, after conv (which maps a generated value to the one expected to
// be read back; nil conv keeps it).
func checkRows(t *testing.T, recs []arrow.RecordBatch, want []column, conv func(col string, v any) any) {
	t.Helper()
	row := 0
	for _, rec := range recs {
		if int(rec.NumCols()) != len(want) {
			t.Fatalf("batch has %d columns, want %d", rec.NumCols(), len(want))
		}
		for c, col := range want {
			if got := rec.ColumnName(c); got != col.field.Name {
				t.Fatalf("column %d is %q, want %q", c, got, col.field.Name)
			}
			a := rec.Column(c)
			for i := 0; i < a.Len(); i++ {
				w := col.vals[row+i]
				if conv != nil && w != nil {
					w = conv(col.field.Name, w)
				}
				if g := cell(a, i); !sameValue(g, w) {
					t.Fatalf("row %d column %q: got %#v (%T), want %#v (%T)", row+i, col.field.Name, g, g, w, w)
				}
			}
		}
		row += int(rec.NumRows())
	}
	if row != len(want[0].vals) {
		t.Fatalf("read %d rows, want %d", row, len(want[0].vals))
	}
}
