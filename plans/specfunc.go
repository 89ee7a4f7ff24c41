package plans

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// SpecFunc is the Func of a cluster-task function whose input is a string
// column spec, one JSON object per row, decoded into an S (tune's trials,
// serve's replicas, train's ranks): run gets each row's spec and appends
// one row of out to b. It takes one row per batch, one batch at a time.
// what names S in errors ("a tune.TrialSpec").
func SpecFunc[S any](name, what string, out *arrow.Schema, run func(ctx context.Context, s S, b *array.RecordBuilder) error) Func {
	return Func{
		Out: func(in *arrow.Schema) (*arrow.Schema, error) {
			if f, ok := in.FieldsByName("spec"); !ok || len(f) != 1 || (f[0].Type.ID() != arrow.STRING && f[0].Type.ID() != arrow.LARGE_STRING) {
				return nil, fmt.Errorf("%s wants a string column spec (%s as JSON), got %s", name, what, in)
			}
			return out, nil
		},
		Fn: func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			idx := rec.Schema().FieldIndices("spec")
			if len(idx) != 1 {
				return nil, fmt.Errorf("%s: no spec column", name)
			}
			col, ok := rec.Column(idx[0]).(interface {
				Value(int) string
				IsNull(int) bool
			})
			if !ok {
				return nil, fmt.Errorf("%s: the spec column is %s, not a string", name, rec.Column(idx[0]).DataType())
			}
			b := array.NewRecordBuilder(mem, out)
			defer b.Release()
			for i := range int(rec.NumRows()) {
				if col.IsNull(i) {
					return nil, fmt.Errorf("%s: row %d: spec is null", name, i)
				}
				var s S
				if err := json.Unmarshal([]byte(col.Value(i)), &s); err != nil {
					return nil, fmt.Errorf("%s: row %d: %w", name, i, err)
				}
				if err := run(ctx, s, b); err != nil {
					return nil, err
				}
			}
			return b.NewRecordBatch(), nil
		},
		BatchRows:   1,
		Concurrency: 1,
	}
}
