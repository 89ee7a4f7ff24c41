package dataset_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
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
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/executor/local"
)

// listFiles returns the visible files under dir, relative, sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func TestRoundTripFormats(t *testing.T) {
	for _, format := range []string{"parquet", "csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			cfg, _ := testConfig(t)
			dir := filepath.Join(t.TempDir(), "out")
			rows := sales(500)
			st, err := ds(t, cfg, rows).Write(context.Background(), format, dir, dataset.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Rows != 500 {
				t.Fatalf("stats say %d rows written", st.Rows)
			}
			var m commit.Manifest
			data, err := os.ReadFile(filepath.Join(dir, "_SUCCESS"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &m); err != nil || m.Rows != 500 || len(m.Files) == 0 {
				t.Fatalf("manifest %s: %v", data, err)
			}
			back := take(t, dataset.Read(format, dir).Configure(cfg).Sort(dataset.Asc("id")))
			ids := col[int64](t, back, "id")
			prices := col[float64](t, back, "price")
			cats := col[string](t, back, "category")
			for i, s := range rows {
				if ids[i] != s.ID || prices[i] != s.Price || cats[i] != s.Category {
					t.Fatalf("row %d: got (%d, %v, %s), want %+v", i, ids[i], prices[i], cats[i], s)
				}
			}
		})
	}
}

func TestPartitionedWriteAndPrunedRead(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := t.TempDir()
	rows := sales(1000)
	if _, err := ds(t, cfg, rows).WriteParquet(context.Background(), dir, dataset.WriteOptions{Mode: dataset.Overwrite, PartitionBy: []string{"category"}}); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, f := range listFiles(t, dir) {
		if d := filepath.Dir(f); d != "." && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	if want := []string{"category=c0", "category=c1", "category=c2", "category=c3", "category=c4"}; !slices.Equal(dirs, want) {
		t.Fatalf("partition dirs %v, want %v", dirs, want)
	}
	d := dataset.ReadParquet(dir).Configure(cfg).Filter("category = 'c2' AND price < 30")
	got := take(t, d)
	var want []int64
	for _, s := range rows {
		if s.Category == "c2" && s.Price < 30 {
			want = append(want, s.ID)
		}
	}
	ids := col[int64](t, got, "id")
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Fatalf("got %d rows, want %d", len(ids), len(want))
	}
	// Only one partition's files were opened.
	var st *local.Stats
	st, err := d.Configure(cfg).Write(context.Background(), "jsonl", filepath.Join(t.TempDir(), "o"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scan := st.Ops[len(st.Ops)-1]
	for _, o := range st.Ops {
		if strings.HasPrefix(o.Name, "Scan") {
			scan = o
		}
	}
	var partBytes int64
	for _, f := range listFiles(t, filepath.Join(dir, "category=c2")) {
		fi, _ := os.Stat(filepath.Join(dir, "category=c2", f))
		partBytes += fi.Size()
	}
	// Footers are read twice (planning, then reading), so allow 3x the
	// partition's size, far below the 5 partitions' total.
	if read := scan.BytesIn.Load(); read == 0 || read > 3*partBytes {
		t.Fatalf("the scan read %d bytes; the c2 partition has %d", read, partBytes)
	}
}

func TestRowGroupPruning(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := t.TempDir()
	// Ten row groups of sorted ids; a filter on the last decile reads one.
	opts := dataset.WriteOptions{}
	opts.Format.RowGroupRows = 20_000
	one := cfg
	one.Concurrency = 1 // one writer: one file of sorted ids
	if _, err := dataset.Range(200_000).Configure(one).WithColumn("v", "id * 7919 % 1000003").WriteParquet(context.Background(), dir, opts); err != nil {
		t.Fatal(err)
	}
	all, err := dataset.ReadParquet(dir).Configure(cfg).Write(context.Background(), "jsonl", filepath.Join(t.TempDir(), "a"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := dataset.ReadParquet(dir).Configure(cfg).Filter("id >= 190000").Write(context.Background(), "jsonl", filepath.Join(t.TempDir(), "b"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pruned.Rows != 10_000 {
		t.Fatalf("%d rows", pruned.Rows)
	}
	a, b := all.Ops[len(all.Ops)-2].BytesIn.Load(), pruned.Ops[len(pruned.Ops)-2].BytesIn.Load()
	if b*3 > a {
		t.Fatalf("pruned scan read %d bytes, full scan %d", b, a)
	}
}

func TestExplain(t *testing.T) {
	dir := t.TempDir()
	if _, err := dataset.FromItems(sales(10)).WriteParquet(context.Background(), dir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	d := dataset.ReadParquet(dir).
		Filter("price > 5").
		WithColumn("revenue", "price * qty").
		Select("id", "revenue").
		Sort(dataset.Desc("revenue")).
		Limit(3)
	got, err := d.Explain()
	if err != nil {
		t.Fatal(err)
	}
	got = strings.ReplaceAll(got, dir, "DIR")
	checkGolden(t, "explain", got)
}

func TestWriteModes(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := t.TempDir()
	ctx := context.Background()
	d := ds(t, cfg, sales(100))
	if _, err := d.WriteParquet(ctx, dir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, dir)
	_, err := d.WriteParquet(ctx, dir, dataset.WriteOptions{Mode: dataset.ErrorIfExists})
	if err == nil || !strings.Contains(err.Error(), "mode is error") {
		t.Fatalf("mode error over existing files: %v", err)
	}
	if after := listFiles(t, dir); !slices.Equal(after, before) {
		t.Fatalf("a refused write changed the destination: %v", after)
	}
	if _, err := d.WriteParquet(ctx, dir, dataset.WriteOptions{Mode: dataset.Append}); err != nil {
		t.Fatal(err)
	}
	if n, err := dataset.ReadParquet(dir).Configure(cfg).Count(ctx); err != nil || n != 200 {
		t.Fatalf("after append: %d rows, %v", n, err)
	}
	if _, err := d.Limit(10).WriteParquet(ctx, dir, dataset.WriteOptions{Mode: dataset.Overwrite}); err != nil {
		t.Fatal(err)
	}
	if n, err := dataset.ReadParquet(dir).Configure(cfg).Count(ctx); err != nil || n != 10 {
		t.Fatalf("after overwrite: %d rows, %v", n, err)
	}
}

// A job that fails half way leaves nothing at its destination.
func TestFailedWriteLeavesNothing(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := filepath.Join(t.TempDir(), "out")
	boom := errors.New("boom at row 5000")
	d := dataset.Range(10_000).Configure(cfg).MapBatches(func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		if rec.NumRows() > 0 && rec.Column(0).(*array.Int64).Value(0) >= 5000 {
			return nil, boom
		}
		rec.Retain()
		return rec, nil
	}, dataset.MapOptions{Name: "fail-late"})
	_, err := d.WriteParquet(context.Background(), dir, dataset.WriteOptions{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "MapBatches fail-late") {
		t.Fatalf("error %v should name the operator and wrap the cause", err)
	}
	if files := listFiles(t, dir); len(files) != 0 {
		t.Fatalf("a failed job left %v", files)
	}
}

func TestBadInputs(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if _, err := dataset.FromItems(sales(100)).WriteParquet(ctx, good, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(good, "*.parquet"))
	data, _ := os.ReadFile(files[0])

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("trunc/a.parquet", data[:len(data)/2])
	corrupt := write("corrupt/a.parquet", append([]byte("PAR1"), make([]byte, 200)...))
	mixed := filepath.Join(dir, "mixed")
	write("mixed/a.parquet", data)
	if _, err := dataset.Range(5).WriteParquet(ctx, filepath.Join(dir, "mixed2"), dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	other, _ := filepath.Glob(filepath.Join(dir, "mixed2", "*.parquet"))
	b, _ := os.ReadFile(other[0])
	write("mixed/b.parquet", b)
	badCSV := write("bad.csv", []byte("id,qty\n1,2\n2,3\n3,x\n"))

	for _, tc := range []struct {
		name string
		run  func() error
		want []string
	}{
		{"truncated", func() error { _, err := dataset.ReadParquet(truncated).Configure(cfg).Count(ctx); return err }, []string{truncated}},
		{"corrupt", func() error { _, err := dataset.ReadParquet(corrupt).Configure(cfg).Count(ctx); return err }, []string{corrupt}},
		{"incompatible schemas", func() error {
			_, err := dataset.ReadParquet(mixed).Configure(cfg).Take(ctx, 1000)
			return err
		}, []string{"b.parquet", "id"}},
		{"missing path", func() error { return dataset.ReadParquet(filepath.Join(dir, "nope")).Err() }, []string{filepath.Join(dir, "nope")}},
		{"missing column", func() error { return dataset.ReadParquet(good).Filter("prize > 1").Err() }, []string{`unknown column "prize"`, `"price"`}},
		{"type error", func() error { return dataset.ReadParquet(good).Filter("category > 1").Err() }, []string{"category"}},
		{"bad csv value", func() error {
			schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "qty", Type: arrow.PrimitiveTypes.Int64}}, nil)
			_, err := dataset.ReadCSV(badCSV, dataset.WithReadOptions(format.ReadOptions{Schema: schema})).Configure(cfg).Take(ctx, 10)
			return err
		}, []string{"bad.csv:4", "qty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// A scan-filter-write of an input ten times the memory budget streams: the
// bytes in flight never exceed the budget plus one block.
func TestLargerThanBudgetStreams(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.MemoryBudget = 1 << 20
	cfg.BatchRows = 8192
	peak := &peakAllocator{Allocator: cfg.Allocator}
	cfg.Allocator = peak
	// 2M rows of 2 int64 columns: 32 MiB through a 1 MiB budget.
	d := dataset.Range(2_000_000).Configure(cfg).WithColumn("x", "id * 3").Filter("x % 2 = 0")
	n, err := d.Count(context.Background())
	if err != nil || n != 1_000_000 {
		t.Fatalf("count %d, %v", n, err)
	}
	if p := peak.peak; p > 8<<20 || p == 0 {
		t.Fatalf("peak live Arrow memory %d bytes for a 1 MiB budget", p)
	}
}

// peakAllocator records the most bytes live at once.
type peakAllocator struct {
	memory.Allocator
	mu         sync.Mutex
	live, peak int64
}

func (p *peakAllocator) note(d int64) {
	p.mu.Lock()
	p.live += d
	p.peak = max(p.peak, p.live)
	p.mu.Unlock()
}

func (p *peakAllocator) Allocate(n int) []byte {
	b := p.Allocator.Allocate(n)
	p.note(int64(cap(b)))
	return b
}

func (p *peakAllocator) Reallocate(n int, b []byte) []byte {
	old := cap(b)
	nb := p.Allocator.Reallocate(n, b)
	p.note(int64(cap(nb) - old))
	return nb
}

func (p *peakAllocator) Free(b []byte) {
	p.note(-int64(cap(b)))
	p.Allocator.Free(b)
}

// A destination that fills up fails the job with the path and leaves nothing.
func TestFullDestination(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	opts := dataset.WriteOptions{Format: format.WriteOptions{Compression: "none"}}
	_, err := dataset.Range(1_000_000).Configure(cfg).WithColumn("s", "concat('row ', cast(id AS string))").WriteParquet(context.Background(), dir, opts)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("error %v should name the destination and say it is full", err)
	}
	if files := listFiles(t, dir); len(files) != 0 {
		t.Fatalf("a failed job left %v", files)
	}
}

// A cancelled write publishes nothing.
func TestCancelledWriteLeavesNothing(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := dataset.Range(1<<40).Configure(cfg).MapBatches(func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		if rec.NumRows() > 0 && rec.Column(0).(*array.Int64).Value(0) >= 10_000 {
			cancel()
		}
		rec.Retain()
		return rec, nil
	}, dataset.MapOptions{Name: "cancel-after-10k"})
	if _, err := d.WriteParquet(ctx, dir, dataset.WriteOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if files := listFiles(t, dir); len(files) != 0 {
		t.Fatalf("a cancelled job left %v", files)
	}
}

// TestOptimizerRules pins the optimizer's rewrites, one golden file each.
func TestOptimizerRules(t *testing.T) {
	dir := t.TempDir()
	if _, err := dataset.FromItems(sales(10)).WriteParquet(context.Background(), dir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	src := dataset.ReadParquet(dir)
	users := dataset.FromItems([]struct {
		ID   int64  `sluice:"user_id"`
		Name string `sluice:"name"`
	}{{1, "a"}})
	for name, d := range map[string]*dataset.Dataset{
		// A filter over left columns runs before the join, in the scan.
		"filter-through-join": src.Join(users, dataset.JoinOptions{On: []string{"user_id"}}).Filter("price > 5 AND name = 'a'"),
		// A filter and a limit reach each side of a union.
		"union": src.Union(src).Filter("qty = 2").Limit(4),
		// A filter on group keys runs before the aggregate.
		"filter-through-groupby": src.GroupBy("category").Agg(dataset.Sum("price")).Filter("category = 'c1'"),
		// Select and Rename fold into the projection below; Count prunes every column.
		"fuse-projects": src.WithColumn("revenue", "price * qty").Rename(map[string]string{"revenue": "r"}).Select("id", "r"),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := d.Explain()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "optimizer-"+name, strings.ReplaceAll(got, dir, "DIR"))
		})
	}
}

// Counting Parquet rows reads footers only.
func TestCountFromFooters(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := t.TempDir()
	if _, err := dataset.Range(1_000_000).Configure(cfg).WithColumn("x", "id * 7919 % 1000003").WriteParquet(context.Background(), dir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, f := range listFiles(t, dir) {
		fi, _ := os.Stat(filepath.Join(dir, f))
		size += fi.Size()
	}
	d := dataset.ReadParquet(dir).Configure(cfg)
	n, err := d.Count(context.Background())
	if err != nil || n != 1_000_000 {
		t.Fatalf("count %d, %v", n, err)
	}
	// The same plan Count runs, with its stats: far fewer bytes than the files.
	st, err := dataset.Run(context.Background(), plan.NewProject(d.Plan(), nil), cfg, func(arrow.RecordBatch) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if read := st.Ops[0].BytesIn.Load(); read*4 > size {
		t.Fatalf("counting read %d bytes of %d", read, size)
	}
}
