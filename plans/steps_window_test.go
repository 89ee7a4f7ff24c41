package plans

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestWindowExplodeQuantileSteps: the explode, window, group_by quantile
// and join right/full steps compile to the dataset operators; values by
// hand from the rows below.
func TestWindowExplodeQuantileSteps(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	rows := `{"id": 1, "g": "a", "v": 10, "tags": "x,y"}
{"id": 2, "g": "a", "v": 20, "tags": null}
{"id": 3, "g": "a", "v": 40, "tags": null}
{"id": 4, "g": "b", "v": 5, "tags": "z"}
`
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dims.jsonl"), []byte(`{"g": "a", "label": "A"}`+"\n"+`{"g": "c", "label": "C"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(steps string) arrow.RecordBatch {
		t.Helper()
		src := "name: x\nread: {jsonl: in.jsonl}\nsteps: " + steps + "\nwrite: {parquet: out/}\n"
		p, lints := Check("plan.yaml", []byte(src), Vars{})
		if len(lints) > 0 {
			t.Fatalf("%s: %v", steps, lints)
		}
		job, err := Compile(p, Vars{})
		if err != nil {
			t.Fatalf("%s: %v", steps, err)
		}
		rec, err := job.Dataset.Configure(testConfig(t)).Take(context.Background(), 100)
		if err != nil {
			t.Fatalf("%s: %v", steps, err)
		}
		t.Cleanup(rec.Release)
		return rec
	}
	// text prints the named columns of every row, rows sorted.
	text := func(rec arrow.RecordBatch, cols ...string) string {
		var out []string
		for r := range int(rec.NumRows()) {
			var vals []string
			for _, c := range cols {
				a := rec.Column(rec.Schema().FieldIndices(c)[0])
				if a.IsNull(r) {
					vals = append(vals, "-")
				} else {
					vals = append(vals, a.ValueStr(r))
				}
			}
			out = append(out, strings.Join(vals, " "))
		}
		slicesSort(out)
		return strings.Join(out, "; ")
	}
	for _, tc := range []struct{ steps, cols, want string }{
		{"[{with_column: {name: tags, expr: \"split(tags, ',')\"}}, {explode: tags}]", "id tags", "1 x; 1 y; 4 z"},
		{"[{window: {partition_by: [g], order_by: [{column: v, descending: true}], fns: [{fn: row_number, as: rn}, {fn: lag, column: v}, {fn: lead, column: id, offset: 2, as: nxt}, {fn: sum, column: v, as: run}]}}]",
			"id rn lag_v nxt run", "1 3 20 - 70; 2 2 40 - 60; 3 1 - 1 40; 4 1 - - 5"},
		// a by v: 10 20 40, a moving mean of 2 rows: 10, 15, 30.
		{"[{window: {partition_by: [g], order_by: [v], fns: [{fn: mean, column: v, rows: 2, as: m}]}}]", "id m", "1 10; 2 15; 3 30; 4 5"},
		// a: 10 20 40, q 0.75 at position 1.5: 20 + 0.5*20 = 30; b: 5.
		{"[{group_by: {keys: [g], aggs: [{fn: quantile, column: v, q: 0.75, as: p75}]}}]", "g p75", "a 30; b 5"},
		{"[{join: {read: {jsonl: dims.jsonl}, on: [g], how: right}}]", "id g label", "- c C; 1 a A; 2 a A; 3 a A"},
		{"[{join: {read: {jsonl: dims.jsonl}, on: [g], how: full}}]", "id g label", "- c C; 1 a A; 2 a A; 3 a A; 4 b -"},
	} {
		if got := text(run(tc.steps), strings.Fields(tc.cols)...); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.steps, got, tc.want)
		}
	}
	for _, tc := range []struct{ steps, want string }{
		{"[{group_by: {keys: [g], aggs: [{fn: quantile, column: v}]}}]", "quantile needs q"},
		{"[{group_by: {keys: [g], aggs: [{fn: quantile, column: v, q: 1.5}]}}]", "not between 0 and 1"},
		{"[{group_by: {keys: [g], aggs: [{fn: sum, column: v, q: 0.5}]}}]", "q is quantile's fraction"},
		{"[{explode: g}]", "not a list"},
		{"[{explode: nope}]", `unknown column "nope"`},
		{"[{window: {partition_by: [nope], fns: [{fn: rank}]}}]", `unknown column "nope"`},
		{"[{window: {fns: [{fn: lag}]}}]", "lag needs a column"},
		{"[{window: {fns: [{fn: ntile}]}}]", "ntile"},
		{"[{window: {fns: [{fn: rank, rows: 2}]}}]", "applies to sum, count and mean"},
	} {
		src := "name: x\nread: {jsonl: in.jsonl}\nsteps: " + tc.steps + "\nwrite: {parquet: out/}\n"
		_, lints := Check("plan.yaml", []byte(src), Vars{})
		if got := lints.Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.steps, got, tc.want)
		}
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestPartitionTypesKey: read's partition_types types hive partition
// columns (year > 2023 compares numbers: 10000 passes, as a string it
// would not); an unknown type is a lint at its key.
func TestPartitionTypesKey(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, y := range []string{"2023", "2024", "10000"} {
		if err := os.MkdirAll(filepath.Join(dir, "in", "year="+y), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "in", "year="+y, "a.jsonl"), []byte(`{"id": `+y+`}`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "name: x\nread: {jsonl: in/, partition_types: {year: int}}\nsteps: [{filter: \"year > 2023\"}]\nwrite: {parquet: out/}\n"
	p, lints := Check("plan.yaml", []byte(src), Vars{})
	if len(lints) > 0 {
		t.Fatal(lints)
	}
	job, err := Compile(p, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := job.Dataset.Configure(testConfig(t)).Count(context.Background())
	if err != nil || n != 2 {
		t.Errorf("year > 2023: %d rows, %v; want 2", n, err)
	}
	_, lints = Check("plan.yaml", []byte(strings.Replace(src, "year: int", "year: nope", 1)), Vars{})
	if got := lints.Error(); !strings.Contains(got, "plan.yaml:2:44: read.partition_types.year: unknown type \"nope\"") {
		t.Errorf("unknown type: %s", got)
	}
}
