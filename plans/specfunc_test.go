package plans_test

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/plans"
)

// TestSpecFunc: each row's spec is decoded and run, rows appended in
// order; a schema without a string spec column, a null spec and bad JSON
// are errors naming the function (and the row).
func TestSpecFunc(t *testing.T) {
	out := arrow.NewSchema([]arrow.Field{{Name: "name", Type: arrow.BinaryTypes.String}}, nil)
	type spec struct{ Name string }
	f := plans.SpecFunc("fn", "a spec", out, func(ctx context.Context, s spec, b *array.RecordBuilder) error {
		b.Field(0).(*array.StringBuilder).Append(strings.ToUpper(s.Name))
		return nil
	})
	in := arrow.NewSchema([]arrow.Field{{Name: "spec", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	if sc, err := f.Out(in); err != nil || !sc.Equal(out) {
		t.Fatalf("Out: %v, %v", sc, err)
	}
	if _, err := f.Out(arrow.NewSchema([]arrow.Field{{Name: "spec", Type: arrow.PrimitiveTypes.Int64}}, nil)); err == nil || !strings.Contains(err.Error(), "fn wants a string column spec (a spec as JSON)") {
		t.Errorf("an int spec column: %v", err)
	}
	run := func(vals ...*string) (string, error) {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		for _, v := range vals {
			if v == nil {
				b.AppendNull()
			} else {
				b.Append(*v)
			}
		}
		col := b.NewArray()
		defer col.Release()
		rec := array.NewRecordBatch(in, []arrow.Array{col}, int64(len(vals)))
		defer rec.Release()
		res, err := f.Fn(context.Background(), memory.DefaultAllocator, rec)
		if err != nil {
			return "", err
		}
		defer res.Release()
		var got []string
		for i := range int(res.NumRows()) {
			got = append(got, res.Column(0).(*array.String).Value(i))
		}
		return strings.Join(got, ","), nil
	}
	a, c, bad := `{"Name":"a"}`, `{"Name":"c"}`, `{"Name":`
	if got, err := run(&a, &c); err != nil || got != "A,C" {
		t.Errorf("two specs: %q, %v", got, err)
	}
	if _, err := run(&a, nil); err == nil || !strings.Contains(err.Error(), "fn: row 1: spec is null") {
		t.Errorf("a null spec: %v", err)
	}
	if _, err := run(&bad); err == nil || !strings.Contains(err.Error(), "fn: row 0:") {
		t.Errorf("bad JSON: %v", err)
	}
}
