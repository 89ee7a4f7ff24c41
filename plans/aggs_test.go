package plans

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// TestStatsAndPickAggregates: a plan's group_by with var, std, median,
// first, last and collect_list (and their aliases), run to Parquet and
// read back; values by hand. The input is two files read in name order:
// group a has x 1, 2 (first file), 4, null and s p, q, r, s; group b x 10,
// null and s t, u. a: mean 7/3, var ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 =
// 7/3, std sqrt(7/3) = 1.52752523165194..., median 2 (var and std compared
// to 12 decimals: float64 arithmetic ends in 65, the exact root in 68); first x 1, last x
// NULL (NULLs count for first and last, as DuckDB's), list [1 2 4]. b:
// var and std NULL (one value), median 10, first 10, last NULL, list [10].
// After a sort on ts descending, first(s) is each group's latest s.
func TestStatsAndPickAggregates(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("in", 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"in/part-0.jsonl": `{"g": "a", "x": 1, "s": "p", "ts": 1}` + "\n" + `{"g": "b", "x": 10, "s": "t", "ts": 2}` + "\n" + `{"g": "a", "x": 2, "s": "q", "ts": 3}` + "\n",
		"in/part-1.jsonl": `{"g": "a", "x": 4, "s": "r", "ts": 6}` + "\n" + `{"g": "b", "x": null, "s": "u", "ts": 4}` + "\n" + `{"g": "a", "x": null, "s": "s", "ts": 5}` + "\n",
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(out, steps string) map[string]string {
		t.Helper()
		src := "name: x\nread: {jsonl: in/}\nsteps: " + steps + "\nwrite: {parquet: " + out + "/}\n"
		p, lints := Check("plan.yaml", []byte(src), Vars{})
		if len(lints) > 0 {
			t.Fatalf("%s: %v", steps, lints)
		}
		job, err := Compile(p, Vars{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.Run(context.Background(), testConfig(t)); err != nil {
			t.Fatal(err)
		}
		rec, err := dataset.ReadParquet(out).Configure(testConfig(t)).Sort(dataset.Asc("g")).Take(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Release()
		got := map[string]string{}
		for c, f := range rec.Schema().Fields() {
			var vals []string
			for r := range int(rec.NumRows()) {
				vals = append(vals, rec.Column(c).ValueStr(r))
			}
			got[f.Name] = strings.Join(vals, " ")
		}
		return got
	}
	check := func(got, want map[string]string) {
		t.Helper()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s = %q, want %q", k, got[k], w)
			}
		}
	}
	check(run("stats", `[{group_by: {keys: [g], aggs: [
		{fn: var, column: x, as: v}, {fn: variance, column: x, as: v2}, {fn: std, column: x, as: sd}, {fn: stddev, column: x, as: sd2},
		{fn: median, column: x, as: med}, {fn: first, column: x}, {fn: last, column: x}, {fn: first, column: s}, {fn: last, column: s},
		{fn: collect_list, column: x, as: xs}, {fn: list, column: s, as: ss}]}},
		{with_column: {name: v, expr: "round(v, 12)"}}, {with_column: {name: v2, expr: "round(v2, 12)"}},
		{with_column: {name: sd, expr: "round(sd, 12)"}}, {with_column: {name: sd2, expr: "round(sd2, 12)"}}]`),
		map[string]string{
			"g": "a b", "v": "2.333333333333 (null)", "v2": "2.333333333333 (null)",
			"sd": "1.527525231652 (null)", "sd2": "1.527525231652 (null)", "med": "2 10",
			"first_x": "1 10", "last_x": "(null) (null)", "first_s": "p t", "last_s": "s u",
			"xs": `[1,2,4] [10]`, "ss": `["p","q","r","s"] ["t","u"]`,
		})
	// After a sort, first and last follow it: the latest and earliest s.
	check(run("sorted", `[{sort: [{column: ts, descending: true}]}, {group_by: {keys: [g], aggs: [
		{fn: first, column: s, as: latest}, {fn: last, column: s, as: earliest}, {fn: collect_list, column: ts, as: tss}]}}]`),
		map[string]string{"g": "a b", "latest": "r u", "earliest": "p t", "tss": "[6,5,3,1] [4,2]"})
}
