package dataset

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FromItems is a Dataset of Go structs, one row each. Exported fields become
// columns named by the `sluice:"name"` tag or the field name (`sluice:"-"`
// skips a field). Supported field types: bool, signed and unsigned
// integers, float32, float64, string, []byte, time.Time (timestamp[us,
// UTC]), and pointers to these (nil is null).
func FromItems[T any](items []T) *Dataset {
	rec, err := ItemsRecord(memory.NewGoAllocator(), items)
	if err != nil {
		return &Dataset{err: fmt.Errorf("dataset: FromItems: %w", err)}
	}
	return FromRecords(rec)
}

type itemField struct {
	index []int
	field arrow.Field
}

func itemFields(t reflect.Type) ([]itemField, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", t)
	}
	var out []itemField
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("sluice"); ok {
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if tag != "" {
				name = tag
			}
		}
		ft := f.Type
		nullable := false
		if ft.Kind() == reflect.Pointer {
			ft, nullable = ft.Elem(), true
		}
		dt, err := arrowType(ft)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		out = append(out, itemField{index: f.Index, field: arrow.Field{Name: name, Type: dt, Nullable: nullable}})
	}
	return out, nil
}

var timeType = reflect.TypeFor[time.Time]()

func arrowType(t reflect.Type) (arrow.DataType, error) {
	if t == timeType {
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return arrow.FixedWidthTypes.Boolean, nil
	case reflect.Int8:
		return arrow.PrimitiveTypes.Int8, nil
	case reflect.Int16:
		return arrow.PrimitiveTypes.Int16, nil
	case reflect.Int32:
		return arrow.PrimitiveTypes.Int32, nil
	case reflect.Int, reflect.Int64:
		return arrow.PrimitiveTypes.Int64, nil
	case reflect.Uint8:
		return arrow.PrimitiveTypes.Uint8, nil
	case reflect.Uint16:
		return arrow.PrimitiveTypes.Uint16, nil
	case reflect.Uint32:
		return arrow.PrimitiveTypes.Uint32, nil
	case reflect.Uint, reflect.Uint64:
		return arrow.PrimitiveTypes.Uint64, nil
	case reflect.Float32:
		return arrow.PrimitiveTypes.Float32, nil
	case reflect.Float64:
		return arrow.PrimitiveTypes.Float64, nil
	case reflect.String:
		return arrow.BinaryTypes.String, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return arrow.BinaryTypes.Binary, nil
		}
	}
	return nil, fmt.Errorf("type %s has no column type", t)
}

// ItemsRecord converts structs to one batch; see FromItems.
func ItemsRecord[T any](mem memory.Allocator, items []T) (arrow.RecordBatch, error) {
	fields, err := itemFields(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	afs := make([]arrow.Field, len(fields))
	for i, f := range fields {
		afs[i] = f.field
	}
	schema := arrow.NewSchema(afs, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for _, it := range items {
		v := reflect.ValueOf(it)
		for i, f := range fields {
			appendValue(b.Field(i), v.FieldByIndex(f.index))
		}
	}
	return b.NewRecordBatch(), nil
}

func appendValue(b array.Builder, v reflect.Value) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			b.AppendNull()
			return
		}
		v = v.Elem()
	}
	switch b := b.(type) {
	case *array.BooleanBuilder:
		b.Append(v.Bool())
	case *array.Int8Builder:
		b.Append(int8(v.Int()))
	case *array.Int16Builder:
		b.Append(int16(v.Int()))
	case *array.Int32Builder:
		b.Append(int32(v.Int()))
	case *array.Int64Builder:
		b.Append(v.Int())
	case *array.Uint8Builder:
		b.Append(uint8(v.Uint()))
	case *array.Uint16Builder:
		b.Append(uint16(v.Uint()))
	case *array.Uint32Builder:
		b.Append(uint32(v.Uint()))
	case *array.Uint64Builder:
		b.Append(v.Uint())
	case *array.Float32Builder:
		b.Append(float32(v.Float()))
	case *array.Float64Builder:
		b.Append(v.Float())
	case *array.StringBuilder:
		b.Append(v.String())
	case *array.BinaryBuilder:
		b.Append(v.Bytes())
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.Interface().(time.Time).UnixMicro()))
	}
}

func reflectValue(v any) reflect.Value {
	r := reflect.ValueOf(v)
	if t, err := arrowType(r.Type()); err != nil || t == nil {
		return reflect.Value{}
	}
	return r
}
