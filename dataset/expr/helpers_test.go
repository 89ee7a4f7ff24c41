package expr

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fixtureSchema covers every type the language reads.
var fixtureSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "cat", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: false},
	{Name: "odd name", Type: arrow.PrimitiveTypes.Int64, Nullable: false},
	{Name: "tsz", Type: &arrow.TimestampType{Unit: arrow.Second, TimeZone: "+02:00"}, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
}, nil)

// fixture builds five rows:
//
//	i     i32   f     s          b      ts                   d          cat   ls   u8   odd  tsz (UTC)            f32
//	1     10    1.5   "apple"    true   2024-01-02 03:04:05  2024-01-02 c1    x    1    1    2024-01-01 23:30:00  0.5
//	2     20    -2.5  "Banana"   false  2023-12-31 23:59:59  2023-12-31 c2    y    2    2    2024-01-02 00:00:00  null
//	null  30    null  null       null   null                 null       null  null 3    3    null                 2
//	-4    null  0     ""         true   1969-12-31 23:00:00  1969-12-31 c1    z    4    4    1969-12-31 21:59:59  -1
//	5     50    10    "  pad  "  false  2024-02-29 12:00:00  2024-02-29 c3    ""   255  5    2024-02-29 23:00:00  3.25
func fixture(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	bld := array.NewRecordBuilder(mem, fixtureSchema)
	defer bld.Release()
	appendJSON := func(i int, js string) {
		if err := bld.Field(i).UnmarshalJSON([]byte(js)); err != nil {
			t.Fatalf("column %d: %v", i, err)
		}
	}
	appendJSON(0, `[1, 2, null, -4, 5]`)
	appendJSON(1, `[10, 20, 30, null, 50]`)
	appendJSON(2, `[1.5, -2.5, null, 0, 10]`)
	appendJSON(3, `["apple", "Banana", null, "", "  pad  "]`)
	appendJSON(4, `[true, false, null, true, false]`)
	ts := bld.Field(5).(*array.TimestampBuilder)
	for _, s := range []string{"2024-01-02 03:04:05", "2023-12-31 23:59:59", "", "1969-12-31 23:00:00", "2024-02-29 12:00:00"} {
		if s == "" {
			ts.AppendNull()
			continue
		}
		tm, _ := time.Parse(time.DateTime, s)
		ts.Append(arrow.Timestamp(tm.UnixMicro()))
	}
	d := bld.Field(6).(*array.Date32Builder)
	for _, s := range []string{"2024-01-02", "2023-12-31", "", "1969-12-31", "2024-02-29"} {
		if s == "" {
			d.AppendNull()
			continue
		}
		tm, _ := time.Parse(time.DateOnly, s)
		d.Append(arrow.Date32FromTime(tm))
	}
	cat := bld.Field(7).(*array.BinaryDictionaryBuilder)
	for _, s := range []string{"c1", "c2", "", "c1", "c3"} {
		if s == "" {
			cat.AppendNull()
			continue
		}
		if err := cat.AppendString(s); err != nil {
			t.Fatal(err)
		}
	}
	appendJSON(8, `["x", "y", null, "z", ""]`)
	appendJSON(9, `[1, 2, 3, 4, 255]`)
	appendJSON(10, `[1, 2, 3, 4, 5]`)
	tsz := bld.Field(11).(*array.TimestampBuilder)
	for _, s := range []string{"2024-01-01 23:30:00", "2024-01-02 00:00:00", "", "1969-12-31 21:59:59", "2024-02-29 23:00:00"} {
		if s == "" {
			tsz.AppendNull()
			continue
		}
		tm, _ := time.Parse(time.DateTime, s)
		tsz.Append(arrow.Timestamp(tm.Unix()))
	}
	appendJSON(12, `[0.5, null, 2, -1, 3.25]`)
	return bld.NewRecordBatch()
}

// values renders an array as Go values for comparison with hand-written
// expectations: nil for NULL, int64 for integers, float64 for floats,
// string, bool, "YYYY-MM-DD HH:MM:SS[.f]" for timestamps (UTC) and
// "YYYY-MM-DD" for dates.
func values(t testing.TB, a arrow.Array) []any {
	t.Helper()
	out := make([]any, a.Len())
	for i := range out {
		if a.IsNull(i) {
			continue
		}
		switch a := a.(type) {
		case *array.Int64:
			out[i] = a.Value(i)
		case *array.Int32:
			out[i] = int64(a.Value(i))
		case *array.Int16:
			out[i] = int64(a.Value(i))
		case *array.Int8:
			out[i] = int64(a.Value(i))
		case *array.Uint8:
			out[i] = int64(a.Value(i))
		case *array.Float64:
			out[i] = a.Value(i)
		case *array.Float32:
			out[i] = float64(a.Value(i))
		case *array.String:
			out[i] = a.Value(i)
		case *array.Boolean:
			out[i] = a.Value(i)
		case *array.Timestamp:
			unit := a.DataType().(*arrow.TimestampType).Unit
			out[i] = formatTimestamp(unitToTime(int64(a.Value(i)), unit))
		case *array.Date32:
			out[i] = a.Value(i).FormattedString()
		case *array.List:
			// A list renders as [v1, v2, ...] of its values' renderings.
			lo, hi := a.ValueOffsets(i)
			sub := array.NewSlice(a.ListValues(), lo, hi)
			var parts []string
			for _, v := range values(t, sub) {
				parts = append(parts, fmt.Sprint(v))
			}
			sub.Release()
			out[i] = "[" + strings.Join(parts, ", ") + "]"
		default:
			t.Fatalf("values: unsupported array %T", a)
		}
	}
	return out
}

func sameValues(got, want []any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if wi, ok := w.(int); ok {
			w = int64(wi)
		}
		if gf, ok := g.(float64); ok {
			wf, ok := w.(float64)
			if !ok {
				return false
			}
			if gf == wf || math.IsNaN(gf) && math.IsNaN(wf) || math.Abs(gf-wf) <= 1e-12*math.Max(1, math.Abs(wf)) {
				continue
			}
			return false
		}
		if g != w {
			return false
		}
	}
	return true
}

// evalValues compiles src against rec's schema and evaluates it.
func evalValues(t *testing.T, mem memory.Allocator, rec arrow.RecordBatch, src string) (arrow.DataType, []any, error) {
	t.Helper()
	b, err := Compile(src, rec.Schema())
	if err != nil {
		return nil, nil, err
	}
	out, err := b.Eval(context.Background(), mem, rec)
	if err != nil {
		return nil, nil, err
	}
	defer out.Release()
	if out.Len() != int(rec.NumRows()) {
		return nil, nil, fmt.Errorf("got %d rows, want %d", out.Len(), rec.NumRows())
	}
	if !arrow.TypeEqual(out.DataType(), b.Type()) {
		return nil, nil, fmt.Errorf("result type %s differs from Type() %s", out.DataType(), b.Type())
	}
	if !b.Nullable() && out.NullN() > 0 {
		return nil, nil, fmt.Errorf("Nullable() is false but the result has %d nulls", out.NullN())
	}
	return out.DataType(), values(t, out), nil
}

func typeString(dt arrow.DataType) string {
	return strings.TrimSpace(typeName(dt))
}

// newCheckedMem returns a leak-checking allocator verified at the end of
// the test.
func newCheckedMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}
