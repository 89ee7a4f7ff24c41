package plans

import (
	"cmp"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/format"
)

// fullPlan has a step of every kind but infer.
const fullPlan = `name: full
params:
  min: "20"
read:
  parquet: data/sales/
steps:
  - union: [{parquet: data/sales/}]
  - filter: "price > {{ .Params.min }} AND category IN ('c1', 'c2', 'c3')"
  - with_column: {name: revenue, expr: "price * qty"}
  - drop: [note, ts]
  - rename: {user_id: user}
  - join: {read: {csv: data/cats/}, on: [category], how: left}
  - repartition: {n: 3, keys: [category]}
  - random_shuffle: 7
  - group_by:
      keys: [category, label]
      aggs:
        - {fn: count, as: n}
        - {fn: sum, column: revenue, as: revenue}
        - {fn: mean, column: price}
        - {fn: min, column: qty}
        - {fn: max, column: user}
        - {fn: count_distinct, column: user, as: users}
  - sort: [{column: revenue, descending: true}, category]
  - limit: 2
  - select: [category, label, n, revenue, mean_price, min_qty, max_user, users]
write:
  parquet: out/full/
  mode: overwrite
`

// row is a result row, by column name.
type row map[string]any

// readRows reads the Parquet files under dir back, sorted by the key columns.
func readRows(t *testing.T, dir string, keys ...string) []row {
	t.Helper()
	d := dataset.ReadParquet(dir).Configure(testConfig(t))
	var sk []dataset.SortKey
	for _, k := range keys {
		sk = append(sk, dataset.Asc(k))
	}
	if len(sk) > 0 {
		d = d.Sort(sk...)
	}
	rec, err := d.Take(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	out := make([]row, rec.NumRows())
	for i := range out {
		out[i] = row{}
		for j, f := range rec.Schema().Fields() {
			out[i][f.Name] = value(rec.Column(j), i)
		}
	}
	return out
}

func value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	}
	return a.ValueStr(i)
}

func sameRows(t *testing.T, got, want []row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		for k, w := range want[i] {
			g := got[i][k]
			gf, gok := g.(float64)
			wf, wok := w.(float64)
			if gok && wok && math.Abs(gf-wf) <= 1e-9*math.Max(1, math.Abs(wf)) {
				continue
			}
			if g != w {
				t.Errorf("row %d column %s = %v (%T), want %v (%T)", i, k, g, g, w, w)
			}
		}
		if len(got[i]) != len(want[i]) {
			t.Errorf("row %d has columns %v, want %v", i, got[i], want[i])
		}
	}
}

// setup writes the sales and a categories CSV under a temporary directory,
// makes it the current directory and returns the sales.
func setup(t *testing.T, n int) []sale {
	dir := t.TempDir()
	rows := writeSales(t, dir, n)
	type cat struct {
		Category string `sluice:"category"`
		Label    string `sluice:"label"`
	}
	_, err := dataset.FromItems([]cat{{"c1", "books"}, {"c2", "games"}, {"c9", "toys"}}).Configure(testConfig(t)).
		WriteCSV(context.Background(), filepath.Join(dir, "data", "cats"), dataset.WriteOptions{Format: format.WriteOptions{CSVHeader: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return rows
}

func compileRun(t *testing.T, src string, vars Vars) *Job {
	t.Helper()
	p, lints := Check("plan.yaml", []byte(src), vars)
	if len(lints) > 0 {
		t.Fatalf("Check:\n%v", lints)
	}
	job, err := Compile(p, vars)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(context.Background(), testConfig(t)); err != nil {
		t.Fatal(err)
	}
	return job
}

func TestRoundTripEveryStep(t *testing.T) {
	sales := setup(t, 600)
	job := compileRun(t, fullPlan, Vars{Params: map[string]string{"min": "30"}})
	if job.Output() != "out/full/" {
		t.Errorf("Output %q", job.Output())
	}

	// The same computation, independently.
	labels := map[string]any{"c1": "books", "c2": "games", "c3": nil}
	type acc struct {
		n, minQty, maxUser int64
		revenue, price     float64
		users              map[int64]bool
	}
	groups := map[string]*acc{}
	for _, s := range sales {
		if !(s.Price > 30 && (s.Category == "c1" || s.Category == "c2" || s.Category == "c3")) {
			continue
		}
		g := groups[s.Category]
		if g == nil {
			g = &acc{minQty: math.MaxInt64, maxUser: math.MinInt64, users: map[int64]bool{}}
			groups[s.Category] = g
		}
		for range 2 { // the union reads the sales twice
			g.n++
			g.revenue += s.Price * float64(s.Qty)
			g.price += s.Price
			g.minQty = min(g.minQty, int64(s.Qty))
			g.maxUser = max(g.maxUser, s.UserID)
			g.users[s.UserID] = true
		}
	}
	var want []row
	for c, g := range groups {
		want = append(want, row{"category": c, "label": labels[c], "n": g.n, "revenue": g.revenue,
			"mean_price": g.price / float64(g.n), "min_qty": g.minQty, "max_user": g.maxUser, "users": int64(len(g.users))})
	}
	slices.SortFunc(want, func(a, b row) int { return cmp.Compare(b["revenue"].(float64), a["revenue"].(float64)) })
	want = want[:2]
	got := readRows(t, "out/full/")
	slices.SortFunc(got, func(a, b row) int { return cmp.Compare(b["revenue"].(float64), a["revenue"].(float64)) })
	sameRows(t, got, want)
}

func TestRoundTripQuickstart(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testRoot(t), "examples", "plans", "quickstart.yaml"))
	sales := setup(t, 1000)
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.ReplaceAll(string(src), "examples/data/sales/", "data/sales/")
	compileRun(t, plan, Vars{})
	var want []row
	for _, s := range sales {
		if s.Price > 50 && (s.Category == "c1" || s.Category == "c7") {
			want = append(want, row{"id": s.ID, "user_id": s.UserID, "category": s.Category, "revenue": s.Price * float64(s.Qty)})
		}
	}
	if len(want) < 20 {
		t.Fatalf("only %d expected rows: weak test data", len(want))
	}
	sameRows(t, readRows(t, "out/quickstart/", "id"), want)

	// mode: error refuses the existing output; mode: append adds to it.
	p, _ := Parse("plan.yaml", []byte(strings.Replace(plan, "mode: overwrite", "mode: error", 1)))
	job, err := Compile(p, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(context.Background(), testConfig(t)); err == nil {
		t.Error("mode error: a second run succeeded")
	}
	compileRun(t, strings.Replace(plan, "mode: overwrite", "mode: append", 1), Vars{})
	if got := readRows(t, "out/quickstart/"); len(got) != 2*len(want) {
		t.Errorf("after append: %d rows, want %d", len(got), 2*len(want))
	}
}

func TestRoundTripPartitionedWrite(t *testing.T) {
	sales := setup(t, 500)
	compileRun(t, `name: part
read: {parquet: data/sales/}
steps:
  - select: [id, category, price]
write:
  parquet: out/part/
  mode: overwrite
  partition_by: [category]
`, Vars{})
	perCat := map[string]int{}
	for _, s := range sales {
		perCat[s.Category]++
	}
	for c, n := range perCat {
		files, _ := filepath.Glob(filepath.Join("out/part", "category="+c, "*.parquet"))
		if len(files) == 0 {
			t.Errorf("no files for category %s", c)
			continue
		}
		got := readRows(t, filepath.Join("out/part", "category="+c))
		if len(got) != n {
			t.Errorf("category %s: %d rows, want %d", c, len(got), n)
		}
		if _, ok := got[0]["category"]; ok {
			t.Errorf("the partition column is in the files")
		}
	}
}

func TestCompileErrors(t *testing.T) {
	setup(t, 100)
	p, lints := Parse("plan.yaml", []byte("name: x\nread: {parquet: data/sales/}\nsteps: [{filter: \"pirce > 1\"}]\nwrite: {parquet: out/}\n"))
	if len(lints) > 0 {
		t.Fatal(lints)
	}
	_, err := Compile(p, Vars{})
	var ls Lints
	if !errors.As(err, &ls) || !errors.Is(err, ErrInvalid) || err.Error() != `plan.yaml:3:19: steps[0].filter: expr: unknown column "pirce" (did you mean "price"?)` {
		t.Errorf("Compile: %v", err)
	}
	if _, err := Compile(p, Vars{Params: map[string]string{"x": "1"}}); !errors.Is(err, ErrUnknownParam) {
		t.Errorf("Compile with an unknown param: %v", err)
	}
	// Parse's lints stop Compile.
	p, _ = Parse("plan.yaml", []byte("name: X\nread: {parquet: data/sales/}\nwrite: {parquet: out/}\n"))
	if _, err := Compile(p, Vars{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Compile of an invalid plan: %v", err)
	}
}

func TestExplain(t *testing.T) {
	setup(t, 100)
	p, _ := Parse("plan.yaml", []byte("name: x\nread: {parquet: data/sales/}\nsteps: [{filter: \"price > 1\"}, {select: [id]}]\nwrite: {parquet: out/}\n"))
	job, err := Compile(p, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	text, err := job.Explain()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== Logical plan ==\nWrite parquet out/ mode=error\n  Project id\n    Filter price > 1\n      Scan parquet data/sales/", "== Stages =="} {
		if !strings.Contains(text, want) {
			t.Errorf("Explain lacks %q:\n%s", want, text)
		}
	}
}

// testRoot is the module root.
func testRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}
