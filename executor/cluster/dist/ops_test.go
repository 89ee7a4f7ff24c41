package dist_test

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/cluster/dist"
	"github.com/sluicehq/sluice/plans"
)

// TestMoreOperators: the operators built from the core ones (Distinct,
// DropNull, FillNull, Sample, Split, SemiJoin, AntiJoin, Explode), laid out
// for a cluster and run stage by stage, give the local executor's rows (as
// a multiset: none of them defines an order).
func TestMoreOperators(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	right := t.TempDir()
	writeSales(t, right, 2, 40, mem)
	r := dataset.ReadParquet(right).Filter("qty <> 2")
	train, test := dataset.ReadParquet(dir).Split(0.7, 3)
	cases := []struct {
		name   string
		d      *dataset.Dataset
		layout string // in the layout's text
	}{
		{"distinct all", dataset.ReadParquet(dir).Select("category", "qty").Distinct(), "partial Distinct [category, qty] (Aggregate"},
		{"distinct some", dataset.ReadParquet(dir).Distinct("qty", "category"), "hash partition by [qty, category]"},
		{"drop null", dataset.ReadParquet(dir).DropNull("category"), ""},
		{"fill null", dataset.ReadParquet(dir).FillNull(map[string]any{"category": "none", "qty": 0}), ""},
		{"sample", dataset.ReadParquet(dir).Sample(0.3, 7), "Sample(0.3, seed=7)"},
		{"split train", train, "Split(0.7, seed=3)"},
		{"split test", test, "Split(0.7, seed=3) rest"},
		// category has nulls on both sides: they match nothing.
		{"semi on qty", dataset.ReadParquet(dir).SemiJoin(r, dataset.JoinOptions{On: []string{"qty"}}), "SemiJoin on [qty] = [qty] (Join inner"},
		{"semi on category", dataset.ReadParquet(dir).SemiJoin(r, dataset.JoinOptions{On: []string{"category"}}), ""},
		{"anti on category", dataset.ReadParquet(dir).AntiJoin(r.Filter("category <> 'a'"), dataset.JoinOptions{On: []string{"category"}}), "AntiJoin on [category] = [category] (Join left"},
		{"anti on keys", dataset.ReadParquet(dir).Rename(map[string]string{"qty": "q"}).AntiJoin(r,
			dataset.JoinOptions{LeftOn: []string{"q", "category"}, RightOn: []string{"qty", "category"}}), ""},
		// A NULL list (category NULL) and empty strings among the parts.
		{"explode", dataset.ReadParquet(dir).WithColumn("parts", "split(if(category IS NULL, NULL, name), '1')").Select("id", "parts").Explode("parts"), "Explode(parts)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := sink(t, tc.d)
			want := sorted(localRows(t, root, mem))
			if len(want) == 0 {
				t.Fatal("the local executor gives no rows: the case tests nothing")
			}
			for _, parts := range []int{1, 4} {
				got, l, _ := runAll(t, root, dist.Options{Partitions: parts, SplitBytes: 1}, mem)
				same(t, sorted(got), want)
				if !strings.Contains(l.String(), tc.layout) {
					t.Errorf("layout has no %q:\n%s", tc.layout, l)
				}
			}
		})
	}

	// The two sides of a split hold every row once, on the cluster too.
	var both []string
	for _, d := range []*dataset.Dataset{train, test} {
		got, _, _ := runAll(t, sink(t, d), dist.Options{Partitions: 3, SplitBytes: 1}, mem)
		both = append(both, got...)
	}
	all := localRows(t, sink(t, dataset.ReadParquet(dir)), mem)
	same(t, sorted(both), sorted(all))
}

// TestMoreAggregates: var, std, median, quantile, first, last and
// collect_list on a cluster, against the local executor. The statistical
// ones ship their rows to the group's task (they do not split into
// partial aggregates); var and std are rounded to 9 digits, as their sums
// add in another order. first, last and collect_list follow the order the
// rows reach the aggregate, which both executors define the same way: the
// scan's file and row order, or the order of the sort before it, through
// row-local operators, limits and unions. After another exchange (a join,
// group_by, window, repartition or shuffle) the order is that exchange's
// and differs between the two: sort first.
func TestMoreAggregates(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	cases := []struct {
		name    string
		d       *dataset.Dataset
		ordered bool // the output rows too (the aggregate's rows are in no order)
	}{
		{"stats", dataset.ReadParquet(dir).GroupBy("category").Agg(
			dataset.Var("price").As("v"), dataset.Std("qty").As("s"), dataset.Median("price").As("med"),
			dataset.Quantile("qty", 0.25).As("q1"), dataset.Quantile("price", 0.9).As("p90"), dataset.Count().As("n")).
			WithColumn("v", "round(v, 9)").WithColumn("s", "round(s, 9)"), false},
		{"global stats", dataset.ReadParquet(dir).GroupBy().Agg(
			dataset.Median("qty").As("med"), dataset.Quantile("price", 0.5).As("q"), dataset.Var("qty").As("v")).
			WithColumn("v", "round(v, 9)"), false},
		{"order picks in file order", dataset.ReadParquet(dir).GroupBy("category").Agg(
			dataset.First("id").As("first"), dataset.Last("name").As("last"), dataset.CollectList("qty").As("qtys"),
			dataset.First("category").As("fc")), false},
		{"order picks after a sort", dataset.ReadParquet(dir).Sort(dataset.Desc("price"), dataset.Asc("id")).GroupBy("qty").Agg(
			dataset.First("id").As("top"), dataset.Last("id").As("bottom"), dataset.CollectList("id").As("ids")), false},
		// Hand-checked: ids grow in file order, so first and last are
		// the group's smallest and largest ids (no row may differ).
		{"first is the smallest id", dataset.ReadParquet(dir).GroupBy("category").Agg(
			dataset.First("id").As("f"), dataset.Min("id").As("lo"), dataset.Last("id").As("l"), dataset.Max("id").As("hi")).
			Filter("f <> lo OR l <> hi OR lo IS NULL"), false},
		// A join's output is in hash-partition order on a cluster and in
		// the left side's order locally: a sort after it defines the order
		// again (without it, this case differs).
		{"after a join and a sort", dataset.ReadParquet(dir).Join(dataset.Range(9).Rename(map[string]string{"id": "rid"}),
			dataset.JoinOptions{LeftOn: []string{"qty"}, RightOn: []string{"rid"}}).Sort(dataset.Asc("id")).GroupBy("category").Agg(
			dataset.First("id").As("first"), dataset.CollectList("id").As("ids")), false},
		{"global order picks", dataset.ReadParquet(dir).Filter("qty = 3").GroupBy().Agg(
			dataset.First("id").As("first"), dataset.Last("id").As("last"), dataset.CollectList("name").As("names")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := sink(t, tc.d)
			want := localRows(t, root, mem)
			if !tc.ordered {
				want = sorted(want)
			}
			for _, parts := range []int{1, 3} {
				got, l, _ := runAll(t, root, dist.Options{Partitions: parts, SplitBytes: 1}, mem)
				if slices.ContainsFunc(l.Stages, func(s dist.StageSpec) bool { return strings.Contains(s.Name, "partial") }) {
					t.Errorf("split into partial aggregates:\n%s", l)
				}
				if !tc.ordered {
					got = sorted(got)
				}
				same(t, got, want)
			}
		})
	}
}

// TestSplitDirs: a WithSplit written with DirBy (a plan's split step) on a
// cluster: each sink task stages its part's files under train/ or test/
// (then category=.../), and the rows of each part are the local executor's.
func TestSplitDirs(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	d := dataset.ReadParquet(dir).WithSplit("part", []float64{0.75, 0.25}, []string{"train", "test"}, 5)
	w, err := d.WriteNode("parquet", filepath.Join(t.TempDir(), "out"), dataset.WriteOptions{Mode: dataset.Overwrite, DirBy: "part", PartitionBy: []string{"category"}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := plan.Optimize(w)
	if err != nil {
		t.Fatal(err)
	}
	// The local rows of each part, without the part and category columns
	// (the files leave them out), keyed by the part.
	want := map[string][]string{}
	for _, part := range []string{"train", "test"} {
		want[part] = sorted(localRows(t, sink(t, d.Filter("part = '"+part+"'").Drop("part", "category")), mem))
	}
	l, err := dist.Plan(root, dist.Options{Partitions: 3, SplitBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore()
	defer st.release()
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	got := map[string][]string{}
	for i := range l.Stages {
		for k := range l.Stages[i].Tasks {
			if _, err := dist.Run(context.Background(), root, l, dist.TaskSpec{Job: "j-1", Stage: i, Task: k, Attempt: 1, Inputs: producers(l, i)}, env); err != nil {
				t.Fatal(err)
			}
			if !l.Stages[i].Sink {
				continue
			}
			for _, f := range staged(t, root, "j-1", k, 1) {
				part, rest, _ := strings.Cut(f.Rel, "/")
				if !strings.HasPrefix(rest, "category=") {
					t.Fatalf("staged %s: want train/ or test/, then category=", f.Rel)
				}
				got[part] = append(got[part], readRows(t, f.Path, mem)...)
			}
		}
	}
	if len(got) != 2 {
		t.Fatalf("parts %v, want train and test", slices.Collect(maps.Keys(got)))
	}
	for part, rows := range want {
		same(t, sorted(got[part]), rows)
	}
}

// TestYAMLSteps: plans with the new steps, compiled once for the layout
// and again for the tasks (as the planning task and the workers do), give
// the local executor's rows on a cluster; the split step's parts land in
// their directories with the local executor's rows of each part.
func TestYAMLSteps(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	right := t.TempDir()
	writeSales(t, right, 2, 40, mem)
	out := filepath.Join(t.TempDir(), "out")
	compile := func(steps string) plan.Node {
		t.Helper()
		text := "name: x\nread: {parquet: " + dir + "}\nsteps:\n" + steps + "write: {parquet: " + out + ", mode: overwrite}\n"
		p, lints := plans.Parse("x.yaml", []byte(text))
		if err := lints.Err(); err != nil {
			t.Fatal(err)
		}
		job, err := plans.Compile(p, plans.Vars{})
		if err != nil {
			t.Fatal(err)
		}
		root, err := plan.Optimize(job.Sink)
		if err != nil {
			t.Fatal(err)
		}
		return root
	}
	steps := `  - fill_null: {category: none}
  - join: {read: {parquet: ` + right + `}, on: [qty], how: semi}
  - with_column: {name: parts, expr: "split(name, '1')"}
  - explode: parts
  - sample: {fraction: 0.6, seed: 11}
  - distinct: [category, qty, parts]
`
	planned, root := compile(steps), compile(steps)
	want := sorted(localRows(t, root, mem))
	if len(want) < 10 {
		t.Fatalf("%d rows locally: the case tests little", len(want))
	}
	got, _, _ := runOn(t, planned, root, dist.Options{Partitions: 3, SplitBytes: 1}, mem)
	same(t, sorted(got), want)

	steps = `  - drop_null: [category]
  - group_by: {keys: [category, qty], aggs: [{fn: std, column: price, as: sd}, {fn: median, column: id, as: med}, {fn: first, column: id, as: f}, {fn: collect_list, column: name, as: names}]}
  - with_column: {name: sd, expr: "round(sd, 9)"}
  - split: {fractions: [0.5, 0.3, 0.2], seed: 2}
`
	planned, root = compile(steps), compile(steps)
	local := localRows(t, root, mem) // the last column is the part
	wantParts := map[string][]string{}
	for _, r := range local {
		i := strings.LastIndexByte(r, '|')
		wantParts[r[i+1:]] = append(wantParts[r[i+1:]], r[:i])
	}
	l, err := dist.Plan(planned, dist.Options{Partitions: 3, SplitBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore()
	defer st.release()
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	gotParts := map[string][]string{}
	for i, s := range l.Stages {
		for k := range s.Tasks {
			if _, err := dist.Run(context.Background(), root, l, dist.TaskSpec{Job: "j-1", Stage: i, Task: k, Attempt: 1, Inputs: producers(l, i)}, env); err != nil {
				t.Fatal(err)
			}
			if !s.Sink {
				continue
			}
			for _, f := range staged(t, root, "j-1", k, 1) {
				part, _, _ := strings.Cut(f.Rel, "/")
				gotParts[part] = append(gotParts[part], readRows(t, f.Path, mem)...)
			}
		}
	}
	if len(wantParts) != 3 || len(gotParts) != 3 {
		t.Fatalf("parts: local %d, cluster %v", len(wantParts), slices.Collect(maps.Keys(gotParts)))
	}
	for part, rows := range wantParts {
		if !slices.Contains([]string{"train", "validation", "test"}, part) {
			t.Errorf("part %q", part)
		}
		same(t, sorted(gotParts[part]), sorted(rows))
	}
}
