package dist_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/cluster/dist"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
)

// store is the blocks of every simulated worker, by id.
type store struct {
	mu     sync.Mutex
	blocks map[string]stored
	fail   func(addr, id string) error // injected fetch failure
}

type stored struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch
}

var errNoBlock = errors.New("no such block")

func newStore() *store { return &store{blocks: map[string]stored{}} }

func (s *store) put(id string, schema *arrow.Schema, recs []arrow.RecordBatch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blocks[id]; ok {
		return fmt.Errorf("block %s put twice", id)
	}
	for _, r := range recs {
		if !r.Schema().Equal(schema) { // as an IPC stream requires
			return fmt.Errorf("block %s: a batch of schema %s, the block's is %s", id, r.Schema(), schema)
		}
	}
	for _, r := range recs {
		r.Retain()
	}
	s.blocks[id] = stored{schema, slices.Clone(recs)}
	return nil
}

func (s *store) fetch(ctx context.Context, addr, id string) (*arrow.Schema, []arrow.RecordBatch, error) {
	if s.fail != nil {
		if err := s.fail(addr, id); err != nil {
			return nil, nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[id]
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", id, errNoBlock)
	}
	for _, r := range b.recs {
		r.Retain()
	}
	return b.schema, slices.Clone(b.recs), nil
}

func (s *store) release() {
	for _, b := range s.blocks {
		releaseAll(b.recs)
	}
	s.blocks = map[string]stored{}
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

func testConfig(mem memory.Allocator) local.Config {
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.Concurrency = 3
	cfg.BatchRows = 97 // many small batches
	cfg.MemoryBudget = 64 << 20
	return cfg
}

// producers lists the tasks of every stage a stage reads, attempt 1, on
// three simulated workers.
func producers(l *dist.Layout, stage int) []dist.StageInput {
	var out []dist.StageInput
	for _, in := range l.Stages[stage].Inputs {
		if slices.ContainsFunc(out, func(si dist.StageInput) bool { return si.Stage == in.Stage }) {
			continue
		}
		si := dist.StageInput{Stage: in.Stage}
		for k := range l.Stages[in.Stage].Tasks {
			si.Producers = append(si.Producers, dist.Producer{Task: k, Attempt: 1, Addr: fmt.Sprintf("w%d:7000", k%3)})
		}
		out = append(out, si)
	}
	return out
}

// runAll runs a layout of root stage by stage in this process, as workers
// would, then commits by reading the staged files in task order, and
// returns their rows. The layout goes through JSON as the coordinator
// stores it.
//
// It also returns the rows of each output partition of each stage, summed
// over the stage's tasks.
func runAll(t *testing.T, root plan.Node, opts dist.Options, mem memory.Allocator) ([]string, *dist.Layout, [][]int64) {
	t.Helper()
	return runOn(t, root, root, opts, mem)
}

// runOn is runAll with the layout made from one plan and the tasks run
// with another (as a worker that compiled the plan again does).
func runOn(t *testing.T, planned, root plan.Node, opts dist.Options, mem memory.Allocator) ([]string, *dist.Layout, [][]int64) {
	t.Helper()
	ctx := context.Background()
	l0, err := dist.Plan(planned, opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(l0)
	if err != nil {
		t.Fatal(err)
	}
	var l dist.Layout
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	st := newStore()
	defer st.release()
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	var files []stagedFile
	var written int64
	partRows := make([][]int64, len(l.Stages))
	for i, spec := range l.Stages {
		partRows[i] = make([]int64, spec.Partitions)
		for k := range spec.Tasks {
			res, err := dist.Run(ctx, root, &l, dist.TaskSpec{Job: "j-1", Stage: i, Task: k, Attempt: 1, Inputs: producers(&l, i)}, env)
			if err != nil {
				t.Fatalf("stage %d (%s) task %d: %v", i, spec.Name, k, err)
			}
			if spec.Sink {
				files = append(files, staged(t, root, "j-1", k, 1)...)
				written += res.Rows
				continue
			}
			if len(res.PartRows) != spec.Partitions {
				t.Fatalf("stage %d task %d: %d partitions, want %d", i, k, len(res.PartRows), spec.Partitions)
			}
			for p := range spec.Partitions {
				partRows[i][p] += res.PartRows[p]
				if _, ok := st.blocks[dist.BlockID("j-1", i, k, 1, p)]; !ok {
					t.Fatalf("stage %d task %d: no block for partition %d", i, k, p)
				}
			}
		}
	}
	rels := map[string]bool{}
	var rows []string
	for _, f := range files {
		if rels[f.Rel] {
			t.Fatalf("two tasks staged %s", f.Rel)
		}
		rels[f.Rel] = true
		got := readRows(t, f.Path, mem)
		if int64(len(got)) != f.Rows {
			t.Fatalf("%s: %d rows, the manifest says %d", f.Path, len(got), f.Rows)
		}
		rows = append(rows, got...)
	}
	if written != int64(len(rows)) {
		t.Fatalf("tasks wrote %d rows, files hold %d", written, len(rows))
	}
	return rows, &l, partRows
}

// stagedFile is a file a sink task wrote, as its manifest lists it.
type stagedFile struct {
	Path string // full path
	// Rel is the path relative to the task's staging dir, with slashes,
	// e.g. "category=a/part-00000-0000-j-1-t00003.parquet".
	Rel  string
	Rows int64
}

// staged lists the files that attempt of sink task task of job wrote under
// its commit.AttemptDir, from the manifest there (what the job's commit
// reads).
func staged(t *testing.T, root plan.Node, job string, task, attempt int) []stagedFile {
	t.Helper()
	w, ok := root.(*plan.Write)
	if !ok {
		t.Fatalf("sink stage of a plan whose root is %T", root)
	}
	dir := commit.AttemptDir(w.Path, job, task, attempt)
	data, err := storage.ReadFile(context.Background(), storage.NewLocal(), filepath.Join(dir, commit.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m commit.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var out []stagedFile
	for _, f := range m.Files {
		rel, err := filepath.Rel(dir, f.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("staged file %s is not under %s", f.Path, dir)
		}
		out = append(out, stagedFile{Path: f.Path, Rel: filepath.ToSlash(rel), Rows: f.Rows})
	}
	return out
}

// readRows reads a Parquet file's rows as text.
func readRows(t *testing.T, path string, mem memory.Allocator) []string {
	t.Helper()
	ctx := context.Background()
	fh, err := storage.NewLocal().Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	splits, err := format.Parquet().Splits(ctx, fh, format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, sp := range splits {
		err := format.Parquet().Read(ctx, fh, sp, format.ReadOptions{}, mem, func(rec arrow.RecordBatch) error {
			rows = append(rows, rowText(rec)...)
			rec.Release()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

func rowText(rec arrow.RecordBatch) []string {
	out := make([]string, rec.NumRows())
	for i := range out {
		var b strings.Builder
		for c, col := range rec.Columns() {
			if c > 0 {
				b.WriteByte('|')
			}
			b.WriteString(col.ValueStr(i))
		}
		out[i] = b.String()
	}
	return out
}

// localRows runs what root writes with the local executor, in order.
func localRows(t *testing.T, root plan.Node, mem memory.Allocator) []string {
	t.Helper()
	var rows []string
	_, err := local.Run(context.Background(), root.(*plan.Write).Input, testConfig(mem), func(rec arrow.RecordBatch) error {
		rows = append(rows, rowText(rec)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// writeSales writes files Parquet files of n rows each under dir:
// id (unique, in file order), category (a..e, some null), price (multiples
// of 0.25, so sums are exact in any order), qty, and name.
func writeSales(t *testing.T, dir string, files, n int, mem memory.Allocator) {
	t.Helper()
	ctx := context.Background()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
	}, nil)
	cats := []string{"a", "b", "c", "d", "e"}
	for f := range files {
		b := array.NewRecordBuilder(mem, schema)
		for i := range n {
			id := int64(f*n + i)
			b.Field(0).(*array.Int64Builder).Append(id)
			if id%17 == 3 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append(cats[(id*7)%5])
			}
			b.Field(2).(*array.Float64Builder).Append(float64((id*37)%400) * 0.25)
			b.Field(3).(*array.Int64Builder).Append((id * 13) % 9)
			b.Field(4).(*array.StringBuilder).Append(fmt.Sprintf("n%03d", (id*31)%211))
		}
		rec := b.NewRecordBatch()
		b.Release()
		path := filepath.Join(dir, fmt.Sprintf("part-%02d.parquet", f))
		u, err := storage.NewLocal().Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := format.NewWriter("parquet", u, schema, format.WriteOptions{RowGroupRows: 100}, mem)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// sink builds the optimized plan that writes d under a fresh directory.
func sink(t *testing.T, d *dataset.Dataset) plan.Node {
	t.Helper()
	w, err := d.WriteNode("parquet", filepath.Join(t.TempDir(), "out"), dataset.WriteOptions{Mode: dataset.Overwrite})
	if err != nil {
		t.Fatal(err)
	}
	root, err := plan.Optimize(w)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func sorted(rows []string) []string {
	s := slices.Clone(rows)
	slices.Sort(s)
	return s
}

// same compares rows, reporting the first difference.
func same(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func salesDir(t *testing.T, mem memory.Allocator) string {
	dir := t.TempDir()
	writeSales(t, dir, 6, 500, mem)
	return dir
}

func TestScanFilterProject(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	root := sink(t, dataset.ReadParquet(dir).Filter("price > 20 and category <> 'b'").
		WithColumn("revenue", "price * qty").Select("id", "category", "revenue"))
	want := sorted(localRows(t, root, mem))
	l, err := dist.Plan(root, dist.Options{Partitions: 1, SplitBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	var biggest int64
	for _, f := range l.Stages[0].Splits[0].Files {
		biggest = max(biggest, f.Size)
	}
	for _, tc := range []struct {
		name  string
		bytes int64
		tasks int
	}{
		{"one task", 1 << 30, 1},
		{"file a task", biggest, 6},
		{"3 files a task", 3 * biggest, 2},
		{"row group a task", 1, 30},                  // 5 row groups a file
		{"files cut by row groups", biggest / 2, -1}, // 2 or 3 row groups a task
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, l, _ := runAll(t, root, dist.Options{Partitions: 3, SplitBytes: tc.bytes}, mem)
			tasks := l.Stages[0].Tasks
			if tc.tasks < 0 && tasks > 6 && tasks < 30 {
				tc.tasks = tasks
			}
			if len(l.Stages) != 1 || !l.Stages[0].Sink || tasks != tc.tasks || len(l.Stages[0].Splits) != tc.tasks {
				t.Fatalf("layout: %+v, want one sink stage of %d scan tasks", l.Stages, tc.tasks)
			}
			// Splits keep file and row-group order; a file read whole has no row-group list.
			var at []string
			for _, sp := range l.Stages[0].Splits {
				for _, f := range sp.Files {
					if f.RowGroups == nil {
						at = append(at, filepath.Base(f.Path)+"/*")
					}
					for _, rg := range f.RowGroups {
						at = append(at, fmt.Sprintf("%s/%d", filepath.Base(f.Path), rg))
					}
				}
			}
			if !slices.IsSorted(at) || len(slices.Compact(slices.Clone(at))) != len(at) {
				t.Fatalf("splits read %v", at)
			}
			same(t, sorted(got), want)
		})
	}
}

// MinTasks cuts a scan into at least that many balanced tasks when the
// split size alone would make fewer, and the output stays the same.
func TestMinTasks(t *testing.T) {
	defer dist.SetMinSplit(1)()
	mem := checked(t)
	dir := salesDir(t, mem)
	root := sink(t, dataset.ReadParquet(dir).Filter("price > 20").Select("id", "category", "price"))
	want := sorted(localRows(t, root, mem))
	for _, minTasks := range []int{0, 4, 12} {
		got, l, _ := runAll(t, root, dist.Options{Partitions: 2, SplitBytes: 1 << 30, MinTasks: minTasks}, mem)
		tasks := l.Stages[0].Tasks
		if minTasks == 0 && tasks != 1 || minTasks > 0 && tasks < minTasks {
			t.Fatalf("MinTasks %d: %d scan tasks", minTasks, tasks)
		}
		same(t, sorted(got), want)
	}
}

func TestGroupBy(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	for _, tc := range []struct {
		name    string
		d       *dataset.Dataset
		partial bool // aggregated on the map side
	}{
		{"aggs", dataset.ReadParquet(dir).Filter("qty > 0").GroupBy("category").Agg(
			dataset.Count().As("n"), dataset.Sum("price").As("revenue"), dataset.Mean("price").As("mean"),
			dataset.Min("price").As("lo"), dataset.Max("name").As("hi")), true},
		{"int keys and values", dataset.ReadParquet(dir).GroupBy("qty", "category").Agg(
			dataset.Count("category").As("n"), dataset.Sum("id").As("ids"), dataset.Mean("id").As("mean"),
			dataset.Min("category").As("lo"), dataset.Max("id").As("hi")), true},
		{"global", dataset.ReadParquet(dir).GroupBy().Agg(dataset.Count().As("n"), dataset.Mean("qty").As("m")), true},
		{"global of nothing", dataset.ReadParquet(dir).Filter("qty > 100").GroupBy().Agg(
			dataset.Count().As("n"), dataset.Sum("qty").As("s"), dataset.Mean("qty").As("m")), true},
		{"count distinct", dataset.ReadParquet(dir).GroupBy("category").Agg(
			dataset.CountDistinct("name").As("names"), dataset.Mean("price").As("mean")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := sink(t, tc.d)
			want := sorted(localRows(t, root, mem))
			for _, parts := range []int{1, 3, 7} {
				got, l, _ := runAll(t, root, dist.Options{Partitions: parts, SplitBytes: 1}, mem)
				if len(l.Stages) != 2 || l.Stages[1].Inputs[0].Mode != dist.ModeAll ||
					l.Stages[1].Tasks != l.Stages[0].Partitions || strings.Contains(l.Stages[0].Name, "partial") != tc.partial {
					t.Fatalf("layout: %+v", l.Stages)
				}
				if strings.HasPrefix(tc.name, "global") && l.Stages[1].Tasks != 1 {
					t.Fatalf("global aggregate in %d tasks", l.Stages[1].Tasks)
				} else if !strings.HasPrefix(tc.name, "global") && l.Stages[1].Tasks != parts {
					t.Fatalf("%d reduce tasks, want %d", l.Stages[1].Tasks, parts)
				}
				same(t, sorted(got), want)
			}
		})
	}
}

func TestSort(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	for _, tc := range []struct {
		name string
		keys []dataset.SortKey
	}{
		{"empty", []dataset.SortKey{dataset.Asc("id")}},
		{"int", []dataset.SortKey{dataset.Asc("qty"), dataset.Asc("id")}},
		{"int desc", []dataset.SortKey{dataset.Desc("price"), dataset.Asc("id")}},
		{"string", []dataset.SortKey{dataset.Asc("name"), dataset.Desc("id")}},
		{"string desc nulls", []dataset.SortKey{dataset.Desc("category"), dataset.Asc("id")}},
		// Ties kept in input order (the sort is stable in both executors).
		{"ties", []dataset.SortKey{dataset.Asc("category")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dataset.ReadParquet(dir)
			if tc.name == "empty" {
				d = d.Filter("qty > 100")
			}
			root := sink(t, d.Sort(tc.keys...))
			want := localRows(t, root, mem)
			for _, parts := range []int{1, 3, 7} {
				got, l, partRows := runAll(t, root, dist.Options{Partitions: parts, SplitBytes: 1}, mem)
				if len(l.Stages) != 3 || l.Stages[1].Tasks != l.Stages[0].Tasks || l.Stages[2].Tasks != parts || !l.Stages[0].Sample {
					t.Fatalf("layout: %+v", l.Stages)
				}
				// Keys of many values spread over every range, none
				// holding more than twice its share.
				if tc.name != "ties" && tc.name != "string desc nulls" && tc.name != "empty" {
					for r, n := range partRows[1] {
						if n == 0 || n > 2*int64(len(want))/int64(parts) {
							t.Fatalf("%d ranges: range %d holds %d of %d rows: %v", parts, r, n, len(want), partRows[1])
						}
					}
				}
				same(t, got, want)
			}
		})
	}
}

func TestTopK(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	root := sink(t, dataset.ReadParquet(dir).Sort(dataset.Desc("price"), dataset.Asc("id")).Limit(17))
	got, l, _ := runAll(t, root, dist.Options{Partitions: 4, SplitBytes: 1}, mem)
	if len(l.Stages) != 2 || l.Stages[1].Tasks != 1 || !strings.Contains(l.Stages[0].Name, "TopK 17") {
		t.Fatalf("layout: %+v", l.Stages)
	}
	same(t, got, localRows(t, root, mem))
}

func TestLimit(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	root := sink(t, dataset.ReadParquet(dir).Filter("qty > 2").Limit(1234))
	got, l, _ := runAll(t, root, dist.Options{Partitions: 4, SplitBytes: 1}, mem)
	if len(l.Stages) != 2 || l.Stages[1].Tasks != 1 {
		t.Fatalf("layout: %+v", l.Stages)
	}
	same(t, got, localRows(t, root, mem))
}

func TestJoin(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	right := t.TempDir()
	writeSales(t, right, 2, 40, mem)
	for _, tc := range []struct{ how, on string }{{"inner", "qty"}, {"left", "qty"}, {"inner", "category"}, {"left", "category"}} {
		how := tc.how
		t.Run(tc.how+" on "+tc.on, func(t *testing.T) {
			// category has nulls on both sides.
			r := dataset.ReadParquet(right).Filter("qty <> 2").Select(tc.on, "name").Rename(map[string]string{"name": "rname"})
			root := sink(t, dataset.ReadParquet(dir).Join(r, dataset.JoinOptions{On: []string{tc.on}, How: how}))
			want := sorted(localRows(t, root, mem))
			for _, parts := range []int{1, 5} {
				got, l, _ := runAll(t, root, dist.Options{Partitions: parts, SplitBytes: 1}, mem)
				if len(l.Stages) != 3 || len(l.Stages[2].Inputs) != 2 || l.Stages[2].Tasks != parts {
					t.Fatalf("layout: %+v", l.Stages)
				}
				same(t, sorted(got), want)
			}
		})
	}
}

// gatherOps are the operators run in one gathering task.
func TestGatherOps(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	for _, tc := range []struct {
		name    string
		d       *dataset.Dataset
		ordered bool
	}{
		{"union", dataset.ReadParquet(dir).Select("id").Union(dataset.Range(300)), true},
		{"repartition", dataset.ReadParquet(dir).Repartition(4).Filter("qty = 1"), false},
		{"repartition keys", dataset.ReadParquet(dir).Repartition(5, "category"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := sink(t, tc.d)
			want := localRows(t, root, mem)
			got, _, _ := runAll(t, root, dist.Options{Partitions: 3, SplitBytes: 1000}, mem)
			if !tc.ordered {
				got, want = sorted(got), sorted(want)
			}
			same(t, got, want)
		})
	}
}

// A shuffle is a map/reduce exchange: every row once, in an order that is
// not the input's and is the same for the same seed (a task run again
// makes the same blocks); a repartition without keys gives N tasks.
func TestShuffleAndRepartitionExchanges(t *testing.T) {
	mem := checked(t)
	root := sink(t, dataset.Range(5000).RandomShuffle(7))
	opts := dist.Options{Partitions: 3, SplitBytes: 8000}
	got, l, _ := runAll(t, root, opts, mem)
	again, _, _ := runAll(t, root, opts, mem)
	if len(l.Stages) != 2 || l.Stages[0].Tasks < 2 || l.Stages[1].Tasks != 3 || !strings.Contains(l.Stages[0].Name, "random partition into 3 seed=7") {
		t.Fatalf("layout:\n%s", l)
	}
	same(t, got, again)
	in := localRows(t, sink(t, dataset.Range(5000)), mem)
	if slices.Equal(got, in) {
		t.Fatal("the shuffle kept the input's order")
	}
	same(t, sorted(got), sorted(in))

	_, l, _ = runAll(t, sink(t, dataset.Range(5000).Repartition(4)), opts, mem)
	if n := len(l.Stages); n != 2 || l.Stages[1].Tasks != 4 || !strings.Contains(l.Stages[0].Name, "slice into 4") {
		t.Fatalf("repartition layout:\n%s", l)
	}
}

// chaosPlan is the chaos test's plan: scan, filter, group-by, sort, write.
const chaosPlan = `
name: chaos
read:
  parquet: %s
steps:
  - filter: "qty > 0"
  - with_column: {name: revenue, expr: "price * qty"}
  - group_by:
      keys: [category, qty]
      aggs:
        - {fn: count, as: sales}
        - {fn: sum, column: revenue, as: revenue}
        - {fn: mean, column: price, as: mean_price}
        - {fn: min, column: price, as: min_price}
        - {fn: max, column: price, as: max_price}
  - sort: [{column: revenue, descending: true}, {column: category}, {column: qty}]
write:
  parquet: %s
  mode: overwrite
`

func TestYAMLPlan(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	text := fmt.Appendf(nil, chaosPlan, dir, filepath.Join(t.TempDir(), "out"))
	compile := func() plan.Node {
		p, lints := plans.Parse("chaos.yaml", text)
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
	// The planning task and the workers compile the plan each on their own.
	planned, root := compile(), compile()
	opts := dist.Options{Partitions: 3, SplitBytes: 3000}
	l1, err := dist.Plan(planned, opts)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := dist.Plan(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := json.Marshal(l1)
	j2, _ := json.Marshal(l2)
	if string(j1) != string(j2) {
		t.Fatalf("two compilations lay out differently:\n%s\n%s", j1, j2)
	}
	got, l, _ := runOn(t, planned, root, opts, mem)
	var names []string
	for _, s := range l.Stages {
		names = append(names, fmt.Sprintf("%d tasks: %s", s.Tasks, s.Name))
	}
	t.Logf("stages:\n%s", strings.Join(names, "\n"))
	if len(l.Stages) != 4 {
		t.Fatalf("%d stages, want scan, aggregate+sample, split, sort+write: %v", len(l.Stages), names)
	}
	same(t, got, localRows(t, root, mem))
}

func TestFetchFails(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	root := sink(t, dataset.ReadParquet(dir).GroupBy("category").Agg(dataset.Count().As("n")))
	l, err := dist.Plan(root, dist.Options{Partitions: 2, SplitBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore()
	defer st.release()
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	ctx := context.Background()
	for k := range l.Stages[0].Tasks {
		if _, err := dist.Run(ctx, root, l, dist.TaskSpec{Job: "j-1", Stage: 0, Task: k, Attempt: 1}, env); err != nil {
			t.Fatal(err)
		}
	}
	errLost := errors.New("worker gone")
	lost := dist.BlockID("j-1", 0, 4, 1, 1)
	st.fail = func(addr, id string) error {
		if id == lost {
			return errLost
		}
		return nil
	}
	_, err = dist.Run(ctx, root, l, dist.TaskSpec{Job: "j-1", Stage: 1, Task: 1, Attempt: 1, Inputs: producers(l, 1)}, env)
	if !errors.Is(err, errLost) || !strings.Contains(err.Error(), lost) || !strings.Contains(err.Error(), "w1:7000") {
		t.Fatalf("err = %v, want errLost naming %s at w1:7000", err, lost)
	}
	// Task 0 does not read the lost block.
	if _, err := dist.Run(ctx, root, l, dist.TaskSpec{Job: "j-1", Stage: 1, Task: 0, Attempt: 1, Inputs: producers(l, 1)}, env); err != nil {
		t.Fatal(err)
	}
}

func TestPlanChanged(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	a := sink(t, dataset.ReadParquet(dir).Filter("qty > 1").GroupBy("category").Agg(dataset.Count().As("n")))
	b := sink(t, dataset.ReadParquet(dir).Filter("qty > 2").GroupBy("category").Agg(dataset.Count().As("n")))
	l, err := dist.Plan(a, dist.Options{Partitions: 2, SplitBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore()
	defer st.release()
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	_, err = dist.Run(context.Background(), b, l, dist.TaskSpec{Job: "j-1", Stage: 0, Task: 0, Attempt: 1}, env)
	if !errors.Is(err, dist.ErrPlanChanged) || !strings.Contains(err.Error(), "plan changed since it was laid out") {
		t.Fatalf("err = %v, want ErrPlanChanged", err)
	}
	// Fewer stages.
	c := sink(t, dataset.ReadParquet(dir).Filter("qty > 1"))
	if _, err = dist.Run(context.Background(), c, l, dist.TaskSpec{Job: "j-1", Stage: 0, Task: 0, Attempt: 1}, env); !errors.Is(err, dist.ErrPlanChanged) {
		t.Fatalf("err = %v, want ErrPlanChanged", err)
	}
	// Other partitions than the layout's.
	other := *l
	other.Stages = slices.Clone(l.Stages)
	other.Stages[0].Partitions = 5
	if _, err = dist.Run(context.Background(), a, &other, dist.TaskSpec{Job: "j-1", Stage: 0, Task: 0, Attempt: 1}, env); !errors.Is(err, dist.ErrPlanChanged) {
		t.Fatalf("err = %v, want ErrPlanChanged", err)
	}
	// A task the layout does not have.
	if _, err = dist.Run(context.Background(), a, l, dist.TaskSpec{Job: "j-1", Stage: 0, Task: l.Stages[0].Tasks, Attempt: 1}, env); !errors.Is(err, dist.ErrTask) {
		t.Fatalf("err = %v, want ErrTask", err)
	}
	if _, err = dist.Run(context.Background(), a, l, dist.TaskSpec{Job: "j-1", Stage: 1, Task: 0, Attempt: 1}, env); !errors.Is(err, dist.ErrTask) {
		t.Fatalf("err = %v, want ErrTask (no producers listed)", err)
	}
}

func TestPartitionedSink(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	root := sink(t, dataset.ReadParquet(dir).Filter("category is not null"))
	w := root.(*plan.Write)
	w.PartitionBy = []string{"category"}
	st := newStore()
	defer st.release()
	l, err := dist.Plan(root, dist.Options{Partitions: 2, SplitBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	rels := map[string]bool{}
	var rows int64
	for k := range l.Stages[0].Tasks {
		res, err := dist.Run(context.Background(), root, l, dist.TaskSpec{Job: "j/1", Stage: 0, Task: k, Attempt: 2}, env)
		if err != nil {
			t.Fatal(err)
		}
		dir := commit.AttemptDir(w.Path, "j/1", k, 2)
		files := staged(t, root, "j/1", k, 2)
		var sum int64
		for _, f := range files {
			sum += f.Rows
		}
		if sum != res.Rows {
			t.Fatalf("task %d: %d rows, its files hold %d", k, res.Rows, sum)
		}
		for _, f := range files {
			if !strings.HasPrefix(f.Rel, "category=") || rels[f.Rel] || f.Path != filepath.Join(dir, filepath.FromSlash(f.Rel)) ||
				!strings.Contains(f.Rel, fmt.Sprintf("j-1-t%05d", k)) {
				t.Fatalf("task %d staged %+v under %s", k, f, dir)
			}
			rels[f.Rel] = true
			rows += f.Rows
		}
	}
	if want := int64(len(localRows(t, root, mem))); rows != want {
		t.Fatalf("%d rows staged, want %d", rows, want)
	}
}

func TestMapBatches(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	double := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		if rec.NumRows() > 100 {
			return nil, fmt.Errorf("batch of %d rows, want at most 100", rec.NumRows())
		}
		rec.Retain()
		return rec, nil
	}
	root := sink(t, dataset.ReadParquet(dir).MapBatches(double, dataset.MapOptions{Name: "check", BatchRows: 100}).
		GroupBy("category").Agg(dataset.Sum("qty").As("q")))
	got, l, _ := runAll(t, root, dist.Options{Partitions: 2, SplitBytes: 1}, mem)
	if len(l.Stages) != 2 || !l.Stages[0].Stateful || l.Stages[1].Stateful || l.Stages[0].GPU != 0 ||
		!strings.Contains(l.Stages[0].Name, "MapBatches check batch_rows=100") {
		t.Fatalf("layout: %+v", l.Stages)
	}
	same(t, sorted(got), sorted(localRows(t, root, mem)))
}

// A plan whose root is not a Write ends in a stage of one output partition per task.
func TestNoSink(t *testing.T) {
	mem := checked(t)
	root, err := plan.Optimize(dataset.Range(1000).Filter("id % 7 = 0").Plan())
	if err != nil {
		t.Fatal(err)
	}
	l, err := dist.Plan(root, dist.Options{Partitions: 2, SplitBytes: 800})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Stages) != 1 || l.Stages[0].Sink || l.Stages[0].Partitions != 1 || l.Stages[0].Tasks != 10 {
		t.Fatalf("layout: %+v", l.Stages)
	}
	st := newStore()
	defer st.release()
	env := dist.Env{Fetch: st.fetch, Put: st.put, Local: testConfig(mem)}
	var ids []string
	for k := range l.Stages[0].Tasks {
		if _, err := dist.Run(context.Background(), root, l, dist.TaskSpec{Job: "j", Task: k, Attempt: 1}, env); err != nil {
			t.Fatal(err)
		}
		_, recs, err := st.fetch(context.Background(), "", dist.BlockID("j", 0, k, 1, 0))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			ids = append(ids, rowText(r)...)
		}
		releaseAll(recs)
	}
	var want []string
	for i := 0; i < 1000; i += 7 {
		want = append(want, fmt.Sprint(i))
	}
	same(t, ids, want)
}

// Hive partition values travel in the splits, and files a partition filter
// rules out are in no split.
func TestHiveScan(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	for _, region := range []string{"x", "y", "z"} {
		writeSales(t, filepath.Join(dir, "region="+region), 2, 300, mem)
	}
	root := sink(t, dataset.ReadParquet(dir).Filter("region <> 'y' and qty > 3"))
	got, l, _ := runAll(t, root, dist.Options{Partitions: 2, SplitBytes: 1}, mem)
	for _, sp := range l.Stages[0].Splits {
		for _, f := range sp.Files {
			if len(f.Partition) != 1 || f.Partition[0].Key != "region" || f.Partition[0].Value == "y" || !strings.Contains(f.Path, "region="+f.Partition[0].Value) {
				t.Fatalf("split file %+v", f)
			}
		}
	}
	if n := l.Stages[0].Tasks; n != 12 { // 4 files of 3 row groups
		t.Fatalf("%d tasks, want 12", n)
	}
	want := localRows(t, root, mem)
	if !slices.ContainsFunc(want, func(r string) bool { return strings.HasSuffix(r, "|z") }) {
		t.Fatalf("no row of region z: %v", want[:3])
	}
	same(t, sorted(got), sorted(want))
}
