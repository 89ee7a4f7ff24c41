package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// outerJoin is Join with How "right" or "full": the inner (right) or left
// (full) join of d and right, then a Union with right's rows that match no
// row of d (an AntiJoin), laid out as the join's output with NULL in d's
// non-key columns and d's key columns taken from right's keys (the keys
// coalesced, as SQL's USING and Polars do). It is built from Join, AntiJoin,
// Union and row-local maps, so Explain shows those and it runs on a cluster
// wherever they do; it reads each side twice.
func (d *Dataset) outerJoin(right *Dataset, opts JoinOptions) *Dataset {
	op := "Join " + opts.How
	fail := func(err error) *Dataset {
		return &Dataset{err: fmt.Errorf("dataset: %s: %w", op, err), cfg: d.cfg}
	}
	if d.err != nil {
		return d
	}
	if right.err != nil {
		return fail(right.err)
	}
	lk, rk := opts.LeftOn, opts.RightOn
	if len(opts.On) > 0 {
		lk, rk = opts.On, opts.On
	}
	base := opts
	base.How = "inner"
	if opts.How == "full" {
		base.How = "left"
	}
	matched := d.Join(right, base)
	if matched.err != nil {
		return matched
	}
	joined := matched.node.Schema()
	ls, rs := d.node.Schema(), right.node.Schema()
	// Every output column may be NULL now: d's for right's unmatched rows.
	fields := joined.Fields()
	for i := range fields {
		fields[i].Nullable = true
	}
	out := arrow.NewSchema(fields, nil)

	// Where each output column of an unmatched right row comes from: a
	// column of right (its key for d's key columns), or -1 for NULL.
	from := make([]int, len(fields))
	for i := range ls.NumFields() {
		from[i] = -1
		for k, c := range lk {
			if ls.Field(i).Name == c {
				from[i] = rs.FieldIndices(rk[k])[0]
			}
		}
	}
	isKey := map[string]bool{}
	for _, c := range rk {
		isKey[c] = true
	}
	o := ls.NumFields()
	for j := range rs.NumFields() {
		if !isKey[rs.Field(j).Name] {
			from[o] = j
			o++
		}
	}
	if o != len(fields) {
		return fail(fmt.Errorf("internal: the join has %d columns, want %d", len(fields), o))
	}

	relabel := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		return array.NewRecordBatch(out, rec.Columns(), rec.NumRows()), nil // retains the columns
	}
	fill := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		n := rec.NumRows()
		cols := make([]arrow.Array, len(fields))
		for i, f := range fields {
			if from[i] < 0 {
				cols[i] = array.MakeArrayOfNull(mem, f.Type, int(n))
				continue
			}
			c := rec.Column(from[i])
			if arrow.TypeEqual(c.DataType(), f.Type) {
				c.Retain()
				cols[i] = c
				continue
			}
			// A key of another width (int32 against int64): the left's type.
			cast, err := compute.CastArray(ctx, c, compute.SafeCastOptions(f.Type))
			if err != nil {
				for _, done := range cols[:i] {
					done.Release()
				}
				return nil, fmt.Errorf("right key %q (%s) as the left key's %s: %w", rec.Schema().Field(from[i]).Name, c.DataType(), f.Type, err)
			}
			cols[i] = cast
		}
		res := array.NewRecordBatch(out, cols, n)
		for _, c := range cols {
			c.Release()
		}
		return res, nil
	}
	unmatched := right.AntiJoin(d, JoinOptions{LeftOn: rk, RightOn: lk})
	res := matched.MapBatches(relabel, MapOptions{Name: "nullable columns", Schema: out}).
		Union(unmatched.MapBatches(fill, MapOptions{Name: "unmatched right rows", Schema: out}))
	if res.err != nil {
		return fail(res.err)
	}
	return res
}
