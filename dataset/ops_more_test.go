package dataset_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

type dupRow struct {
	A int32   `sluice:"a"`
	B *string `sluice:"b"`
	C *int32  `sluice:"c"`
}

func dupRows() []dupRow {
	x, y := "x", "y"
	one, two := int32(1), int32(2)
	return []dupRow{{1, &x, &one}, {1, &x, &one}, {2, nil, &two}, {2, nil, nil}, {1, &y, nil}, {2, nil, &two}}
}

// TestDistinctDropFill: expectations worked out by hand from dupRows.
func TestDistinctDropFill(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	d := dataset.FromItems(dupRows()).Configure(cfg)

	// Distinct over all columns: (1,x,1) (2,∅,2) (2,∅,∅) (1,y,∅).
	if n, err := d.Distinct().Count(ctx); err != nil || n != 4 {
		t.Fatalf("Distinct: %d, %v; want 4", n, err)
	}
	rec := take(t, d.Distinct("a").Sort(dataset.Asc("a")))
	if got := fmt.Sprint(col[int32](t, rec, "a")); got != "[1 2]" || rec.NumCols() != 1 {
		t.Fatalf("Distinct(a): %s, %d columns", got, rec.NumCols())
	}
	// DropNull: any column, then only c.
	if n, err := d.DropNull().Count(ctx); err != nil || n != 2 {
		t.Fatalf("DropNull(): %d, %v; want 2", n, err)
	}
	if n, err := d.DropNull("c").Count(ctx); err != nil || n != 4 {
		t.Fatalf("DropNull(c): %d, %v; want 4", n, err)
	}
	// FillNull keeps the column types.
	f := d.FillNull(map[string]any{"b": "none", "c": 0})
	sc, err := f.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.String(); !strings.Contains(got, "b: type=utf8") || !strings.Contains(got, "c: type=int32") {
		t.Fatalf("FillNull schema %s", got)
	}
	rec = take(t, f)
	if got := fmt.Sprint(col[string](t, rec, "b"), col[int32](t, rec, "c")); got != "[x x none none y none] [1 1 2 0 0 2]" {
		t.Fatalf("FillNull: %s", got)
	}
	if err := d.FillNull(map[string]any{"c": []int{1}}).Err(); err == nil || !strings.Contains(err.Error(), `column "c": cannot fill with a []int`) {
		t.Fatalf("FillNull bad value: %v", err)
	}
	if err := d.FillNull(map[string]any{"z": 1}).Err(); err == nil || !strings.Contains(err.Error(), `unknown column "z"`) {
		t.Fatalf("FillNull unknown column: %v", err)
	}
}

// TestSampleSplit: a seeded sample is the same however the rows are
// batched, about fraction of the rows, and Split's two parts partition the
// rows.
func TestSampleSplit(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	ids := func(d *dataset.Dataset) []int64 {
		v := col[int64](t, take(t, d), "id")
		slices.Sort(v)
		return v
	}
	a := ids(dataset.Range(10000).Configure(cfg).Sample(0.3, 7))
	cfg2 := cfg
	cfg2.BatchRows = 333
	b := ids(dataset.Range(10000).Configure(cfg2).Sample(0.3, 7))
	if !slices.Equal(a, b) {
		t.Fatalf("the sample depends on the batching: %d vs %d rows", len(a), len(b))
	}
	if len(a) < 2800 || len(a) > 3200 {
		t.Fatalf("Sample(0.3) kept %d of 10000", len(a))
	}
	if c := ids(dataset.Range(10000).Configure(cfg).Sample(0.3, 8)); slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same sample")
	}
	train, test := dataset.Range(1000).Configure(cfg).Split(0.8, 1)
	tr, te := ids(train), ids(test)
	all := append(slices.Clone(tr), te...)
	slices.Sort(all)
	if len(all) != 1000 || slices.Compact(all)[999] != 999 || len(tr) < 750 || len(tr) > 850 {
		t.Fatalf("Split: %d + %d rows", len(tr), len(te))
	}
	if n, err := dataset.Range(100).Configure(cfg).Sample(1, 3).Count(ctx); err != nil || n != 100 {
		t.Fatalf("Sample(1): %d, %v", n, err)
	}
	if n, err := dataset.Range(100).Configure(cfg).Sample(0, 3).Count(ctx); err != nil || n != 0 {
		t.Fatalf("Sample(0): %d, %v", n, err)
	}
	if err := dataset.Range(1).Sample(1.5, 0).Err(); err == nil || !strings.Contains(err.Error(), "fraction (1.5) must be between 0 and 1") {
		t.Fatalf("Sample(1.5): %v", err)
	}
}

// TestDistinctErrors: a Distinct that cannot group says Distinct, not the
// GroupBy it is built from.
func TestDistinctErrors(t *testing.T) {
	d := dataset.Range(10).WithColumn("l", "split('a,b', ',')")
	for _, tc := range []struct {
		d    *dataset.Dataset
		want string
	}{
		{d.Distinct(), `dataset: Distinct: kernel: group key "l": cannot group by a list<item: utf8, nullable> column`},
		{d.Distinct("zz"), `dataset: Distinct: kernel: group key "zz": no such column (have id, l)`},
	} {
		if err := tc.d.Err(); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}

// TestFillNullMismatch: a fill value that does not fit the column is an
// error naming FillNull and the column; a fractional value for an integer
// column was silently rounded (1.5 filled as 2) before, and a value out of
// an int32 column's range failed only when the plan ran.
func TestFillNullMismatch(t *testing.T) {
	d := dataset.Range(4).WithColumn("q", "if(id % 2 = 0, NULL, id)").WithColumn("s", "if(id % 2 = 0, NULL, 'x')").
		WithColumn("q32", "CAST(q AS int32)")
	for _, tc := range []struct {
		fill map[string]any
		want string
	}{
		{map[string]any{"q": 1.5}, `dataset: FillNull: column "q" is int64; 1.5 is not an integer`},
		{map[string]any{"q32": int64(1) << 40}, `dataset: FillNull: column "q32" is int32; 1099511627776 does not fit it`},
		{map[string]any{"q": "x"}, `dataset: FillNull: column "q" is int64; cannot fill it with 'x': expr: 1:20: function coalesce has arguments of incompatible types: int64 "q" and string literal 'x'`},
		{map[string]any{"s": 3}, `dataset: FillNull: column "s" is utf8; cannot fill it with 3: expr: 1:15: function coalesce has arguments of incompatible types: string "s" and int64 literal 3`},
	} {
		if err := d.FillNull(tc.fill).Err(); err == nil || err.Error() != tc.want {
			t.Errorf("FillNull(%v): %v\nwant %s", tc.fill, err, tc.want)
		}
	}
	// An integral float fills an integer column.
	n, err := d.FillNull(map[string]any{"q": 9.0}).Filter("q = 9").Count(context.Background())
	if err != nil || n != 2 {
		t.Errorf("q 9.0: %d rows, %v; want 2", n, err)
	}
}
