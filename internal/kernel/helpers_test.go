package kernel

import (
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// column builds an array of dt from Go values; nil is null. Integers may be
// given as int, floats as float64, timestamps and dates as int or int64.
func column(mem memory.Allocator, dt arrow.DataType, vals []any) arrow.Array {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	for _, v := range vals {
		if v == nil {
			b.AppendNull()
			continue
		}
		switch bb := b.(type) {
		case *array.Int8Builder:
			bb.Append(int8(toInt(v)))
		case *array.Int16Builder:
			bb.Append(int16(toInt(v)))
		case *array.Int32Builder:
			bb.Append(int32(toInt(v)))
		case *array.Int64Builder:
			bb.Append(toInt(v))
		case *array.Uint8Builder:
			bb.Append(uint8(toInt(v)))
		case *array.Uint16Builder:
			bb.Append(uint16(toInt(v)))
		case *array.Uint32Builder:
			bb.Append(uint32(toInt(v)))
		case *array.Uint64Builder:
			if u, ok := v.(uint64); ok {
				bb.Append(u)
			} else {
				bb.Append(uint64(toInt(v)))
			}
		case *array.Float32Builder:
			bb.Append(float32(v.(float64)))
		case *array.Float64Builder:
			bb.Append(v.(float64))
		case *array.BooleanBuilder:
			bb.Append(v.(bool))
		case *array.StringBuilder:
			bb.Append(v.(string))
		case *array.LargeStringBuilder:
			bb.Append(v.(string))
		case *array.BinaryBuilder:
			bb.Append([]byte(v.(string)))
		case *array.TimestampBuilder:
			bb.Append(arrow.Timestamp(toInt(v)))
		case *array.Date32Builder:
			bb.Append(arrow.Date32(toInt(v)))
		case *array.Date64Builder:
			bb.Append(arrow.Date64(toInt(v)))
		case *array.BinaryDictionaryBuilder:
			if err := bb.AppendString(v.(string)); err != nil {
				panic(err)
			}
		default:
			panic(fmt.Sprintf("column: no case for %T", b))
		}
	}
	return b.NewArray()
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	}
	panic(fmt.Sprintf("toInt(%T)", v))
}

// batch builds a record of schema from columns of Go values.
func batch(mem memory.Allocator, schema *arrow.Schema, cols ...[]any) arrow.RecordBatch {
	arrs := make([]arrow.Array, len(cols))
	for i, c := range cols {
		arrs[i] = column(mem, schema.Field(i).Type, c)
	}
	n := 0
	if len(cols) > 0 {
		n = len(cols[0])
	}
	rec := array.NewRecordBatch(schema, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// value reads row i of arr as a Go value: int64 for integers, timestamps
// and dates, uint64 for uint64, float64 for floats, string for strings and
// binaries, bool; nil for null.
func value(arr arrow.Array, i int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return int64(a.Value(i))
	case *array.Uint16:
		return int64(a.Value(i))
	case *array.Uint32:
		return int64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Date32:
		return int64(a.Value(i))
	case *array.Date64:
		return int64(a.Value(i))
	case *array.Dictionary:
		return value(a.Dictionary(), a.GetValueIndex(i))
	}
	return arr.ValueStr(i)
}

// rowsOf reads every row of recs.
func rowsOf(recs ...arrow.RecordBatch) [][]any {
	var out [][]any
	for _, rec := range recs {
		for i := range int(rec.NumRows()) {
			row := make([]any, rec.NumCols())
			for c := range row {
				row[c] = value(rec.Column(c), i)
			}
			out = append(out, row)
		}
	}
	return out
}

// sameValue compares Go values, NaN equal to NaN.
func sameValue(a, b any) bool {
	fa, oka := a.(float64)
	fb, okb := b.(float64)
	if oka && okb {
		return fa == fb || (math.IsNaN(fa) && math.IsNaN(fb))
	}
	return a == b
}

func checkRows(t *testing.T, got, want [][]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d\ngot:  %v\nwant: %v", len(got), len(want), head(got), head(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("row %d: got %v, want %v", i, got[i], want[i])
		}
		for c := range got[i] {
			if !sameValue(got[i][c], want[i][c]) {
				t.Fatalf("row %d column %d: got %v (%T), want %v (%T)\nrow got %v\nrow want %v",
					i, c, got[i][c], got[i][c], want[i][c], want[i][c], got[i], want[i])
			}
		}
	}
}

func head(rows [][]any) [][]any {
	if len(rows) > 20 {
		return rows[:20]
	}
	return rows
}

func releaseAllBatches(recs []arrow.RecordBatch) {
	for _, r := range recs {
		if r != nil {
			r.Release()
		}
	}
}
