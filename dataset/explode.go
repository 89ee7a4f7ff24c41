package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/internal/kernel"
)

// Explode turns each row into one row per element of its list column,
// the other columns repeated, and the column becomes the element type
// (Spark's explode, DuckDB's unnest). A row whose list is NULL or empty
// gives no row. It is a row-local map, so it fuses with its neighbours and
// runs on a cluster's workers like any MapBatches.
func (d *Dataset) Explode(column string) *Dataset {
	if d.err != nil {
		return d
	}
	in := d.node.Schema()
	idx := in.FieldIndices(column)
	if len(idx) == 0 {
		return &Dataset{err: fmt.Errorf("dataset: Explode: %w", unknownColumn(column, in)), cfg: d.cfg}
	}
	c := idx[0]
	lt, ok := in.Field(c).Type.(*arrow.ListType)
	if !ok {
		return &Dataset{err: fmt.Errorf("dataset: Explode: column %q is %s, not a list", column, in.Field(c).Type), cfg: d.cfg}
	}
	fields := in.Fields()
	fields[c] = arrow.Field{Name: column, Type: lt.Elem(), Nullable: true}
	out := arrow.NewSchema(fields, nil)
	fn := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		list, ok := rec.Column(c).(*array.List)
		if !ok {
			return nil, fmt.Errorf("Explode: column %q is %s in the batch, not a list", column, rec.Column(c).DataType())
		}
		var rows, elems []int32
		for i := range list.Len() {
			if list.IsNull(i) {
				continue
			}
			lo, hi := list.ValueOffsets(i)
			for j := lo; j < hi; j++ {
				rows = append(rows, int32(i))
				elems = append(elems, int32(j))
			}
		}
		parent, err := kernel.Take(mem, rec, rows)
		if err != nil {
			return nil, err
		}
		defer parent.Release()
		vals := list.ListValues()
		vrec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: column, Type: vals.DataType(), Nullable: true}}, nil), []arrow.Array{vals}, int64(vals.Len()))
		defer vrec.Release()
		ev, err := kernel.Take(mem, vrec, elems)
		if err != nil {
			return nil, err
		}
		defer ev.Release()
		cols := make([]arrow.Array, len(fields))
		for i := range cols {
			cols[i] = parent.Column(i)
		}
		cols[c] = ev.Column(0)
		return array.NewRecordBatch(out, cols, int64(len(rows))), nil
	}
	return label(d.MapBatches(fn, MapOptions{Name: "Explode(" + column + ")", Schema: out}), "Explode("+column+")")
}
