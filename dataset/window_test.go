package dataset_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

type winRow struct {
	ID int64   `sluice:"id"`
	P  *string `sluice:"p"`
	O  int64   `sluice:"o"`
	V  *int64  `sluice:"v"`
}

func winInput() []winRow {
	s := func(v string) *string { return &v }
	i := func(v int64) *int64 { return &v }
	return []winRow{
		{1, s("a"), 1, i(10)}, {2, s("a"), 2, nil}, {3, s("a"), 2, i(5)}, {4, s("a"), 3, i(1)},
		{5, s("b"), 5, i(7)}, {6, s("b"), 4, nil},
		{7, nil, 1, i(3)},
	}
}

// TestWindow: partitions a (o 1 2 2 3), b (o 5 4, v 7 null) and a NULL
// partition key (its own partition), hand-computed as SQL's window
// functions with the default frame (peers included in running
// aggregates).
func TestWindow(t *testing.T) {
	cfg, _ := testConfig(t)
	in := dataset.FromItems(winInput()).Configure(cfg)
	text := func(d *dataset.Dataset, cols ...string) string {
		t.Helper()
		rec := take(t, d)
		byID := map[int64]string{}
		ids := col[int64](t, rec, "id")
		for r, id := range ids {
			var vals []string
			for _, c := range cols {
				a := rec.Column(rec.Schema().FieldIndices(c)[0])
				if a.IsNull(r) {
					vals = append(vals, "-")
				} else {
					vals = append(vals, a.ValueStr(r))
				}
			}
			byID[id] = strings.Join(vals, " ")
		}
		keys := make([]int64, 0, len(byID))
		for k := range byID {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%d:%s", k, byID[k]))
		}
		return strings.Join(out, "; ")
	}

	// Ties in o: rank, dense_rank and the running aggregates do not depend
	// on the order among peers.
	ranked := in.Window(dataset.WindowSpec{PartitionBy: []string{"p"}, OrderBy: []dataset.SortKey{dataset.Asc("o")}},
		dataset.Rank(), dataset.DenseRank(), dataset.RunningSum("v"), dataset.RunningCount("v"), dataset.RunningMean("v").As("avg"))
	want := "1:1 1 10 1 10; 2:2 2 15 2 7.5; 3:2 2 15 2 7.5; 4:4 3 16 3 5.333333333333333; 5:2 2 7 1 7; 6:1 1 - 0 -; 7:1 1 3 1 3"
	if got := text(ranked, "rank", "dense_rank", "sum_v", "count_v", "avg"); got != want {
		t.Errorf("rank, dense_rank, running sum/count/mean:\n got %s\nwant %s", got, want)
	}
	if s, err := ranked.Schema(); err != nil || s.NumFields() != 9 || s.Field(6).Type.String() != "int64" || s.Field(8).Type.String() != "float64" {
		t.Errorf("schema %v %v", s, err)
	}

	// No ties: order by o descending then id.
	numbered := in.Window(dataset.WindowSpec{PartitionBy: []string{"p"}, OrderBy: []dataset.SortKey{dataset.Desc("o"), dataset.Asc("id")}},
		dataset.RowNumber(), dataset.Lag("v", 1), dataset.Lead("id", 2))
	want = "1:4 5 -; 2:2 1 1; 3:3 - -; 4:1 - 3; 5:1 - -; 6:2 7 -; 7:1 - -"
	if got := text(numbered, "row_number", "lag_v", "lead_id"); got != want {
		t.Errorf("row_number, lag, lead:\n got %s\nwant %s", got, want)
	}

	// The first row of each partition (a filter on a window column stays
	// after the window).
	if got := text(numbered.Filter("row_number = 1"), "o"); got != "4:3; 5:5; 7:1" {
		t.Errorf("row_number = 1: %s", got)
	}

	// No partition keys: one partition of all rows; no order keys: every
	// row a peer, so the running sum is the partition's total.
	all := in.Window(dataset.WindowSpec{OrderBy: []dataset.SortKey{dataset.Asc("id")}}, dataset.RowNumber().As("n")).
		Window(dataset.WindowSpec{PartitionBy: []string{"p"}}, dataset.RunningSum("v").As("total"))
	want = "1:1 16; 2:2 16; 3:3 16; 4:4 16; 5:5 7; 6:6 7; 7:7 3"
	if got := text(all, "n", "total"); got != want {
		t.Errorf("one partition / no order:\n got %s\nwant %s", got, want)
	}
	// Moving frames: the row and the one before it (peers not added).
	moving := in.Window(dataset.WindowSpec{PartitionBy: []string{"p"}, OrderBy: []dataset.SortKey{dataset.Asc("o"), dataset.Asc("id")}},
		dataset.RunningSum("v").Rows(2).As("s2"), dataset.RunningMean("v").Rows(2).As("m2"), dataset.RunningCount("v").Rows(3).As("c3"))
	// a: v 10, null, 5, 1 -> s2 10, 10, 5, 6; m2 10, 10, 5, 3; c3 1, 1, 2, 2.
	// b (o 4, 5): v null, 7 -> s2 -, 7; c3 0, 1.
	want = "1:10 10 1; 2:10 10 1; 3:5 5 2; 4:6 3 2; 5:7 7 1; 6:- - 0; 7:3 3 1"
	if got := text(moving, "s2", "m2", "c3"); got != want {
		t.Errorf("moving frames:\n got %s\nwant %s", got, want)
	}
	if _, err := in.Window(dataset.WindowSpec{}, dataset.RowNumber().Rows(2)).Schema(); err == nil || !strings.Contains(err.Error(), "applies to sum, count and mean") {
		t.Errorf("row_number with rows: %v", err)
	}

	plan, err := numbered.Explain()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "window row_number() AS row_number, lag(v, 1) AS lag_v, lead(id, 2) AS lead_id over (partition by [p] order by [o desc, id])") ||
		!strings.Contains(plan, "collect_all") {
		t.Errorf("Explain:\n%s", plan)
	}

	// Empty input.
	if n, err := in.Filter("id > 100").Window(dataset.WindowSpec{PartitionBy: []string{"p"}}, dataset.RowNumber()).Count(context.Background()); err != nil || n != 0 {
		t.Errorf("empty input: %d rows, %v", n, err)
	}
	for _, bad := range []struct {
		d    *dataset.Dataset
		want string
	}{
		{in.Window(dataset.WindowSpec{PartitionBy: []string{"nope"}}, dataset.RowNumber()), `partition key: unknown column "nope"`},
		{in.Window(dataset.WindowSpec{OrderBy: []dataset.SortKey{dataset.Asc("nope")}}, dataset.RowNumber()), `order key: unknown column "nope"`},
		{in.Window(dataset.WindowSpec{}, dataset.RunningSum("p")), `column "p" is utf8, not a number`},
		{in.Window(dataset.WindowSpec{}, dataset.RowNumber().As("id")), `output column "id" is already a column`},
	} {
		if _, err := bad.d.Schema(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("got %v, want an error with %q", err, bad.want)
		}
	}
}
