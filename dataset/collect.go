package dataset

import (
	"context"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Collect runs d and returns its rows as Go structs, matched to columns by
// the same `sluice:"name"` tags and field names FromItems uses. A field
// whose column is missing, of a type the field cannot hold (an int32
// field takes any integer column whose values fit; a float64 field takes
// floats and integers; time.Time takes timestamps and dates), or NULL
// in a row while the field is not a pointer, is an error naming the column
// and the row. Columns without a field are ignored.
func Collect[T any](ctx context.Context, d *Dataset) ([]T, error) {
	fields, err := itemFields(reflect.TypeFor[T]())
	if err != nil {
		return nil, fmt.Errorf("dataset: Collect: %w", err)
	}
	var out []T
	row := 0
	for rec, err := range d.Iter(ctx) {
		if err != nil {
			return nil, err
		}
		cols := make([]arrow.Array, len(fields))
		for k, f := range fields {
			idx := rec.Schema().FieldIndices(f.field.Name)
			if len(idx) == 0 {
				return nil, fmt.Errorf("dataset: Collect: field for column %q: %w", f.field.Name, unknownColumn(f.field.Name, rec.Schema()))
			}
			cols[k] = rec.Column(idx[0])
		}
		for i := range int(rec.NumRows()) {
			var item T
			v := reflect.ValueOf(&item).Elem()
			for k, f := range fields {
				if err := setField(v.FieldByIndex(f.index), cols[k], i); err != nil {
					return nil, fmt.Errorf("dataset: Collect: row %d, column %q: %w", row, f.field.Name, err)
				}
			}
			out = append(out, item)
			row++
		}
	}
	return out, nil
}

// setField stores row i of a into the field dst.
func setField(dst reflect.Value, a arrow.Array, i int) error {
	if a.IsNull(i) {
		if dst.Kind() != reflect.Pointer {
			return fmt.Errorf("NULL, but field of type %s is not a pointer", dst.Type())
		}
		dst.SetZero()
		return nil
	}
	if dst.Kind() == reflect.Pointer {
		p := reflect.New(dst.Type().Elem())
		if err := setField(p.Elem(), a, i); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	}
	if d, ok := a.(*array.Dictionary); ok {
		return setField(dst, d.Dictionary(), d.GetValueIndex(i))
	}
	bad := func() error {
		return fmt.Errorf("a %s column cannot fill a field of type %s", a.DataType(), dst.Type())
	}
	if dst.Type() == timeType {
		switch c := a.(type) {
		case *array.Timestamp:
			unit := c.DataType().(*arrow.TimestampType).Unit
			dst.Set(reflect.ValueOf(c.Value(i).ToTime(unit).UTC()))
		case *array.Date32:
			dst.Set(reflect.ValueOf(c.Value(i).ToTime().UTC()))
		default:
			return bad()
		}
		return nil
	}
	switch dst.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, ok := intOf(a, i)
		if !ok {
			return bad()
		}
		if dst.OverflowInt(v) {
			return fmt.Errorf("%d overflows a field of type %s", v, dst.Type())
		}
		dst.SetInt(v)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if u, ok := a.(*array.Uint64); ok {
			if dst.OverflowUint(u.Value(i)) {
				return fmt.Errorf("%d overflows a field of type %s", u.Value(i), dst.Type())
			}
			dst.SetUint(u.Value(i))
			return nil
		}
		v, ok := intOf(a, i)
		if !ok {
			return bad()
		}
		if v < 0 || dst.OverflowUint(uint64(v)) {
			return fmt.Errorf("%d overflows a field of type %s", v, dst.Type())
		}
		dst.SetUint(uint64(v))
	case reflect.Float32, reflect.Float64:
		switch c := a.(type) {
		case *array.Float64:
			dst.SetFloat(c.Value(i))
		case *array.Float32:
			dst.SetFloat(float64(c.Value(i)))
		default:
			v, ok := intOf(a, i)
			if !ok {
				return bad()
			}
			dst.SetFloat(float64(v))
		}
	case reflect.Bool:
		c, ok := a.(*array.Boolean)
		if !ok {
			return bad()
		}
		dst.SetBool(c.Value(i))
	case reflect.String:
		switch c := a.(type) {
		case *array.String:
			dst.SetString(c.Value(i))
		case *array.LargeString:
			dst.SetString(c.Value(i))
		default:
			return bad()
		}
	case reflect.Slice:
		c, ok := a.(*array.Binary)
		if !ok || dst.Type().Elem().Kind() != reflect.Uint8 {
			return bad()
		}
		dst.SetBytes(append([]byte(nil), c.Value(i)...))
	default:
		return bad()
	}
	return nil
}

func intOf(a arrow.Array, i int) (int64, bool) {
	switch c := a.(type) {
	case *array.Int8:
		return int64(c.Value(i)), true
	case *array.Int16:
		return int64(c.Value(i)), true
	case *array.Int32:
		return int64(c.Value(i)), true
	case *array.Int64:
		return c.Value(i), true
	case *array.Uint8:
		return int64(c.Value(i)), true
	case *array.Uint16:
		return int64(c.Value(i)), true
	case *array.Uint32:
		return int64(c.Value(i)), true
	case *array.Uint64:
		return int64(c.Value(i)), c.Value(i) <= math.MaxInt64
	}
	return 0, false
}

// Show runs d and writes its first n rows to w as a table: a header of
// column names and types, then one line per row, NULL as "null" and
// values longer than 40 characters cut with "…".
func (d *Dataset) Show(ctx context.Context, w io.Writer, n int64) error {
	rec, err := d.Take(ctx, n)
	if err != nil {
		return err
	}
	defer rec.Release()
	sc := rec.Schema()
	cells := make([][]string, 0, rec.NumRows()+2)
	head, types := make([]string, sc.NumFields()), make([]string, sc.NumFields())
	for j, f := range sc.Fields() {
		head[j], types[j] = f.Name, f.Type.String()
	}
	cells = append(cells, head, types)
	for i := range int(rec.NumRows()) {
		line := make([]string, sc.NumFields())
		for j := range line {
			c := rec.Column(j)
			s := "null"
			if !c.IsNull(i) {
				s = c.ValueStr(i)
			}
			if r := []rune(s); len(r) > 40 {
				s = string(r[:39]) + "…"
			}
			line[j] = strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
		}
		cells = append(cells, line)
	}
	width := make([]int, sc.NumFields())
	for _, line := range cells {
		for j, s := range line {
			width[j] = max(width[j], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	for k, line := range cells {
		for j, s := range line {
			if j > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(s)
			if j < len(line)-1 {
				b.WriteString(strings.Repeat(" ", width[j]-utf8.RuneCountInString(s)))
			}
		}
		b.WriteString("\n")
		if k == 1 {
			for j := range width {
				if j > 0 {
					b.WriteString("-+-")
				}
				b.WriteString(strings.Repeat("-", width[j]))
			}
			b.WriteString("\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}
