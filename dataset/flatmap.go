package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Row is one row as Go values by column name: int64 for signed integers,
// uint64 for unsigned, float64 for floats, string, []byte, bool,
// time.Time for timestamps and dates, nil for null.
type Row map[string]any

// FlatMap calls fn for every row; fn returns zero or more output rows of the
// given schema (a missing column is null). It is the row-at-a-time escape
// hatch: MapBatches is much faster.
func (d *Dataset) FlatMap(fn func(Row) ([]Row, error), out *arrow.Schema, opts MapOptions) *Dataset {
	if opts.Name == "" {
		opts.Name = "flat_map"
	}
	opts.Schema = out
	return d.MapBatches(func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		b := array.NewRecordBuilder(mem, out)
		defer b.Release()
		row := Row{}
		for r := range int(rec.NumRows()) {
			clear(row)
			for c, f := range rec.Schema().Fields() {
				row[f.Name] = value(rec.Column(c), r)
			}
			outs, err := fn(row)
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", r, err)
			}
			for _, o := range outs {
				for i, f := range out.Fields() {
					if err := appendAny(b.Field(i), o[f.Name]); err != nil {
						return nil, fmt.Errorf("row %d: column %q: %w", r, f.Name, err)
					}
				}
			}
		}
		return b.NewRecordBatch(), nil
	}, opts)
}

// value is a cell of a as a Row value.
func value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return a.Value(i).ToTime(a.DataType().(*arrow.TimestampType).Unit)
	case *array.Date32:
		return a.Value(i).ToTime()
	}
	return a.ValueStr(i)
}

// appendAny appends a Row value to a builder of a matching type.
func appendAny(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	bad := func() error { return fmt.Errorf("cannot store %T in a %s column", v, b.Type()) }
	switch b := b.(type) {
	case *array.Int64Builder:
		switch v := v.(type) {
		case int64:
			b.Append(v)
		case int:
			b.Append(int64(v))
		case int32:
			b.Append(int64(v))
		default:
			return bad()
		}
	case *array.Int32Builder:
		switch v := v.(type) {
		case int64:
			b.Append(int32(v))
		case int:
			b.Append(int32(v))
		case int32:
			b.Append(v)
		default:
			return bad()
		}
	case *array.Float64Builder:
		switch v := v.(type) {
		case float64:
			b.Append(v)
		case int64:
			b.Append(float64(v))
		case int:
			b.Append(float64(v))
		default:
			return bad()
		}
	case *array.StringBuilder:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		b.Append(s)
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		b.Append(x)
	case *array.BinaryBuilder:
		x, ok := v.([]byte)
		if !ok {
			return bad()
		}
		b.Append(x)
	default:
		r := reflectValue(v)
		if !r.IsValid() {
			return bad()
		}
		appendValue(b, r)
	}
	return nil
}
