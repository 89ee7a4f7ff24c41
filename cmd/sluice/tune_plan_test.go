package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/tune"
)

// tunePlan is a plan over the sample sales: the count and revenue of the
// sales over min_price, one row, written under out.
const tunePlan = `name: sales-over
params:
  min_price: "50"
  out: out/sales-over
read:
  parquet: ROOT/examples/data/sales/
steps:
  - filter: "price > {{ .Params.min_price }}"
  - with_column: {name: revenue, expr: "price * qty"}
  GROUP
write:
  parquet: "{{ .Params.out }}/"
  mode: overwrite
`

const tunePlanGroup = `- group_by: {keys: [], aggs: [{fn: count, as: n}, {fn: sum, column: revenue, as: revenue}]}`

const tunePlanExperiment = `name: price-search
tune:
  metric: revenue
  mode: max
  searcher: grid
  max_concurrent: 2
  space:
    min_price: {grid: [20, 60, 95]}
plan:
  file: PLAN
`

// planExperiment writes the plan (GROUP replaced by group) and the
// experiment (with edit applied) into a directory; it returns the
// experiment's file and the directory.
func planExperiment(t *testing.T, group string, edit func(string) string) (string, string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	writeFile(t, plan, strings.NewReplacer("ROOT", root, "GROUP", group).Replace(tunePlan))
	file := filepath.Join(dir, "exp.yaml")
	writeFile(t, file, edit(strings.ReplaceAll(tunePlanExperiment, "PLAN", plan)))
	return file, dir
}

// salesOver counts the sample sales over min and sums their revenue,
// with the dataset API.
func salesOver(t *testing.T, min int) (int, float64) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg := dataset.DefaultConfig()
	cfg.Allocator = mem
	rec, err := dataset.ReadParquet("../../examples/data/sales/").Configure(cfg).Filter(fmt.Sprintf("price > %d", min)).
		Select("price", "qty").Take(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	price, qty := rec.Column(0).(*array.Float64), rec.Column(1).(*array.Int32)
	sum := 0.0
	for i := range int(rec.NumRows()) {
		sum += price.Value(i) * float64(qty.Value(i))
	}
	return int(rec.NumRows()), sum
}

// A plan: trial kind: each trial runs the plan with --param min_price=V
// and out under its own directory, two at once; its report holds the
// one-row output's columns (n, revenue, equal to what the dataset API
// computes) and run_rows / run_seconds; the best trial is the lowest
// threshold.
func TestTunePlan(t *testing.T) {
	file, dir := planExperiment(t, tunePlanGroup, func(s string) string { return s })
	exp := filepath.Join(dir, "exp")
	code, stdout, stderr := sluice(t, "tune", file, "--dir", exp)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	e, err := tune.Load(context.Background(), exp)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Trials) != 3 {
		t.Fatalf("%d trials", len(e.Trials))
	}
	for _, tr := range e.Trials {
		min := int(tr.Config["min_price"].(float64))
		n, revenue := salesOver(t, min)
		if tr.Status != tune.Done || len(tr.Reports) != 1 {
			t.Errorf("%s: %s, %d reports: %s", tr.ID, tr.Status, len(tr.Reports), tr.Error)
			continue
		}
		r := tr.Reports[0]
		if int(r["n"]) != n || math.Abs(r["revenue"]-revenue) > 1e-9*revenue || r["run_rows"] != 1 || r["run_seconds"] <= 0 {
			t.Errorf("%s (min_price %d): report %v, want n %d, revenue %g, run_rows 1", tr.ID, min, r, n, revenue)
		}
		if files, _ := filepath.Glob(filepath.Join(exp, "trials", tr.ID, "out", "*.parquet")); len(files) != 1 {
			t.Errorf("%s: output files %v", tr.ID, files)
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum tune.Summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Best == nil || sum.Best.Config["min_price"] != 20.0 {
		t.Errorf("summary %s: %v", lines[len(lines)-1], err)
	}
	if _, err := os.Stat("out/sales-over"); err == nil {
		t.Errorf("a trial wrote the plan's default out")
	}
}

// Bad plan: trials fail before any trial runs, or with the report's keys,
// naming the file position.
func TestTunePlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name, group string
		edit        func(string) string
		want        string
	}{
		{"undeclared param", tunePlanGroup, func(s string) string { return strings.Replace(s, "min_price:", "min_prize:", 1) },
			`exp.yaml:8:16: tune.space.min_prize: PLAN declares no param "min_prize" (its params: min_price, out)`},
		{"undeclared fixed param", tunePlanGroup, func(s string) string { return s + "  params: {region: eu}\n" },
			`exp.yaml:11:20: plan.params.region: PLAN declares no param "region" (its params: min_price, out)`},
		{"fixed out at once", tunePlanGroup, func(s string) string { return s + "  params: {out: x}\n" },
			`exp.yaml:6:19: tune.max_concurrent: trials running at once would write the same output: declare a param out in PLAN`},
		{"metric of many rows", "", func(s string) string { return s },
			`exp.yaml:3:11: tune.metric: tune: metric never reported: metric "revenue" is not in the report of iteration 1 (its keys: run_rows, run_seconds)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, dir := planExperiment(t, tc.group, tc.edit)
			args := []string{"tune", file, "--dir", filepath.Join(dir, "exp")}
			code, _, stderr := sluice(t, args...)
			want := "sluice tune: " + strings.NewReplacer("exp.yaml", file, "PLAN", filepath.Join(dir, "plan.yaml")).Replace(tc.want)
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d:\n%s\nwant %s", code, stderr, want)
			}
		})
	}
}
