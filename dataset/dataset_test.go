package dataset_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// sale is the row type most tests use; expectations are computed from
// []sale with plain Go, never through the engine.
type sale struct {
	ID       int64     `sluice:"id"`
	User     int64     `sluice:"user_id"`
	Category string    `sluice:"category"`
	Price    float64   `sluice:"price"`
	Qty      int32     `sluice:"qty"`
	TS       time.Time `sluice:"ts"`
	Note     *string   `sluice:"note"`
}

func sales(n int) []sale {
	out := make([]sale, n)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		s := sale{ID: int64(i), User: int64(i*7919) % 97, Category: fmt.Sprintf("c%d", (i*31)%5),
			Price: float64((i*37)%1000) / 10, Qty: int32(1 + i%4), TS: base.Add(time.Duration(i) * time.Hour)}
		if i%9 != 0 {
			note := fmt.Sprintf("Note %d", i)
			s.Note = &note
		}
		out[i] = s
	}
	return out
}

// testConfig is a small executor config over a checked allocator.
func testConfig(t *testing.T) (local.Config, *memory.CheckedAllocator) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.BatchRows = 100
	cfg.Concurrency = 3
	// Cleanups run last-in first-out: this one runs after every other
	// cleanup of the test has released its records.
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return cfg, mem
}

func ds(t *testing.T, cfg local.Config, rows []sale) *dataset.Dataset {
	t.Helper()
	// Split into several batches so operators see more than one.
	var recs []arrow.RecordBatch
	for i := 0; i < len(rows); i += 70 {
		r, err := dataset.ItemsRecord(cfg.Allocator, rows[i:min(i+70, len(rows))])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Release)
		recs = append(recs, r)
	}
	return dataset.FromRecords(recs...).Configure(cfg)
}

func take(t *testing.T, d *dataset.Dataset) arrow.RecordBatch {
	t.Helper()
	rec, err := d.Take(context.Background(), math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Release)
	return rec
}

func col[T any](t *testing.T, rec arrow.RecordBatch, name string) []T {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		t.Fatalf("no column %q in %s", name, rec.Schema())
	}
	a := rec.Column(idx[0])
	out := make([]T, a.Len())
	for i := range out {
		if a.IsNull(i) {
			continue
		}
		var v any
		switch a := a.(type) {
		case *array.Int64:
			v = a.Value(i)
		case *array.Int32:
			v = a.Value(i)
		case *array.Float64:
			v = a.Value(i)
		case *array.String:
			v = a.Value(i)
		case *array.Boolean:
			v = a.Value(i)
		case *array.Timestamp:
			v = a.Value(i).ToTime(arrow.Microsecond)
		default:
			t.Fatalf("column %q: unhandled %T", name, a)
		}
		out[i] = v.(T)
	}
	return out
}

func TestFilterWithColumnSelect(t *testing.T) {
	cfg, _ := testConfig(t)
	rows := sales(1000)
	got := take(t, ds(t, cfg, rows).
		Filter("price > 50 AND category IN ('c1', 'c3')").
		WithColumn("revenue", "price * qty").
		Select("id", "revenue"))

	var wantID []int64
	var wantRev []float64
	for _, s := range rows {
		if s.Price > 50 && (s.Category == "c1" || s.Category == "c3") {
			wantID = append(wantID, s.ID)
			wantRev = append(wantRev, s.Price*float64(s.Qty))
		}
	}
	if ids := col[int64](t, got, "id"); !slices.Equal(ids, wantID) {
		t.Fatalf("ids: got %d rows %v..., want %d rows %v...", len(ids), ids[:min(5, len(ids))], len(wantID), wantID[:5])
	}
	if rev := col[float64](t, got, "revenue"); !slices.Equal(rev, wantRev) {
		t.Fatalf("revenue differs")
	}
	if got.NumCols() != 2 {
		t.Fatalf("columns: %s", got.Schema())
	}
}

func TestDropRename(t *testing.T) {
	cfg, _ := testConfig(t)
	got := take(t, ds(t, cfg, sales(10)).Drop("note", "ts").Rename(map[string]string{"price": "unit_price"}))
	var names []string
	for _, f := range got.Schema().Fields() {
		names = append(names, f.Name)
	}
	if want := []string{"id", "user_id", "category", "unit_price", "qty"}; !slices.Equal(names, want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	if p := col[float64](t, got, "unit_price"); p[3] != sales(10)[3].Price {
		t.Fatalf("renamed values differ")
	}
}

func TestSortMultiKey(t *testing.T) {
	cfg, _ := testConfig(t)
	rows := sales(500)
	got := take(t, ds(t, cfg, rows).Sort(dataset.Asc("category"), dataset.Desc("price")))
	want := slices.Clone(rows)
	sort.SliceStable(want, func(i, j int) bool {
		if want[i].Category != want[j].Category {
			return want[i].Category < want[j].Category
		}
		return want[i].Price > want[j].Price
	})
	ids := col[int64](t, got, "id")
	for i := range want {
		if ids[i] != want[i].ID {
			t.Fatalf("row %d: id %d, want %d", i, ids[i], want[i].ID)
		}
	}
}

func TestTopK(t *testing.T) {
	cfg, _ := testConfig(t)
	rows := sales(2000)
	d := ds(t, cfg, rows).WithColumn("revenue", "price * qty").Sort(dataset.Desc("revenue"), dataset.Asc("id")).Limit(25)
	explain, err := d.Explain()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(explain, "TopK 25") {
		t.Fatalf("limit over sort did not become a top-k:\n%s", explain)
	}
	got := col[int64](t, take(t, d), "id")
	want := slices.Clone(rows)
	sort.SliceStable(want, func(i, j int) bool {
		ri, rj := want[i].Price*float64(want[i].Qty), want[j].Price*float64(want[j].Qty)
		if ri != rj {
			return ri > rj
		}
		return want[i].ID < want[j].ID
	})
	for i := range 25 {
		if got[i] != want[i].ID {
			t.Fatalf("row %d: id %d, want %d", i, got[i], want[i].ID)
		}
	}
	if len(got) != 25 {
		t.Fatalf("%d rows", len(got))
	}
}

func TestLimit(t *testing.T) {
	cfg, _ := testConfig(t)
	got := col[int64](t, take(t, ds(t, cfg, sales(1000)).Limit(123)), "id")
	if len(got) != 123 || got[0] != 0 || got[122] != 122 {
		t.Fatalf("got %d rows, first %d last %d", len(got), got[0], got[len(got)-1])
	}
}

func TestGroupBy(t *testing.T) {
	cfg, _ := testConfig(t)
	rows := sales(3000)
	got := take(t, ds(t, cfg, rows).GroupBy("category").Agg(
		dataset.Count(), dataset.Count("note").As("notes"), dataset.Sum("qty"), dataset.Mean("price"),
		dataset.Min("ts"), dataset.Max("price"), dataset.CountDistinct("user_id")))

	type agg struct {
		n, notes, qty int64
		sum           float64
		minTS         time.Time
		maxP          float64
		users         map[int64]bool
	}
	want := map[string]*agg{}
	for _, s := range rows {
		a := want[s.Category]
		if a == nil {
			a = &agg{minTS: s.TS, maxP: s.Price, users: map[int64]bool{}}
			want[s.Category] = a
		}
		a.n++
		if s.Note != nil {
			a.notes++
		}
		a.qty += int64(s.Qty)
		a.sum += s.Price
		if s.TS.Before(a.minTS) {
			a.minTS = s.TS
		}
		a.maxP = max(a.maxP, s.Price)
		a.users[s.User] = true
	}
	cats := col[string](t, got, "category")
	if len(cats) != len(want) {
		t.Fatalf("%d groups, want %d", len(cats), len(want))
	}
	for i, c := range cats {
		w := want[c]
		if n := col[int64](t, got, "count")[i]; n != w.n {
			t.Errorf("%s: count %d, want %d", c, n, w.n)
		}
		if n := col[int64](t, got, "notes")[i]; n != w.notes {
			t.Errorf("%s: count(note) %d, want %d", c, n, w.notes)
		}
		if n := col[int64](t, got, "sum_qty")[i]; n != w.qty {
			t.Errorf("%s: sum(qty) %d, want %d", c, n, w.qty)
		}
		if m := col[float64](t, got, "mean_price")[i]; math.Abs(m-w.sum/float64(w.n)) > 1e-9 {
			t.Errorf("%s: mean %v, want %v", c, m, w.sum/float64(w.n))
		}
		if m := col[time.Time](t, got, "min_ts")[i]; !m.Equal(w.minTS) {
			t.Errorf("%s: min ts %v, want %v", c, m, w.minTS)
		}
		if m := col[float64](t, got, "max_price")[i]; m != w.maxP {
			t.Errorf("%s: max %v, want %v", c, m, w.maxP)
		}
		if n := col[int64](t, got, "count_distinct_user_id")[i]; n != int64(len(w.users)) {
			t.Errorf("%s: distinct users %d, want %d", c, n, len(w.users))
		}
	}
}

func TestJoin(t *testing.T) {
	cfg, _ := testConfig(t)
	type user struct {
		ID   int64  `sluice:"user_id"`
		Name string `sluice:"name"`
	}
	var users []user
	for i := int64(0); i < 97; i += 2 { // odd users have no row: left join keeps them with nulls
		users = append(users, user{ID: i, Name: fmt.Sprintf("u%d", i)})
	}
	users = append(users, user{ID: 4, Name: "dup4"}) // a duplicate key yields two rows
	urec, err := dataset.ItemsRecord(cfg.Allocator, users)
	if err != nil {
		t.Fatal(err)
	}
	defer urec.Release()
	rows := sales(400)
	for _, how := range []string{"inner", "left"} {
		t.Run(how, func(t *testing.T) {
			got := take(t, ds(t, cfg, rows).Select("id", "user_id").
				Join(dataset.FromRecords(urec).Configure(cfg), dataset.JoinOptions{On: []string{"user_id"}, How: how}))
			names := map[int64][]string{}
			for _, u := range users {
				names[u.ID] = append(names[u.ID], u.Name)
			}
			want := map[string]int{}
			for _, s := range rows {
				ns := names[s.User]
				if len(ns) == 0 && how == "left" {
					want[fmt.Sprintf("%d/<null>", s.ID)]++
				}
				for _, n := range ns {
					want[fmt.Sprintf("%d/%s", s.ID, n)]++
				}
			}
			gotSet := map[string]int{}
			ids := col[int64](t, got, "id")
			nameCol := got.Column(got.Schema().FieldIndices("name")[0])
			for i, id := range ids {
				n := "<null>"
				if nameCol.IsValid(i) {
					n = nameCol.(*array.String).Value(i)
				}
				gotSet[fmt.Sprintf("%d/%s", id, n)]++
			}
			if !maps.Equal(gotSet, want) {
				t.Fatalf("join rows differ: got %d distinct, want %d", len(gotSet), len(want))
			}
		})
	}
}

func TestUnionRepartitionShuffle(t *testing.T) {
	cfg, _ := testConfig(t)
	a, b := ds(t, cfg, sales(300)), ds(t, cfg, sales(200))
	u := a.Union(b)
	ids := col[int64](t, take(t, u), "id")
	if len(ids) != 500 || ids[299] != 299 || ids[300] != 0 {
		t.Fatalf("union: %d rows", len(ids))
	}

	var sizes []int64
	for rec, err := range u.Repartition(7).Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, rec.NumRows())
	}
	if want := []int64{72, 72, 72, 71, 71, 71, 71}; !slices.Equal(sizes, want) {
		t.Fatalf("repartition sizes %v, want %v", sizes, want)
	}

	s1 := col[int64](t, take(t, u.RandomShuffle(42)), "id")
	s2 := col[int64](t, take(t, u.RandomShuffle(42)), "id")
	if !slices.Equal(s1, s2) {
		t.Fatal("the same seed gave different orders")
	}
	if slices.Equal(s1, ids) {
		t.Fatal("shuffle kept the order")
	}
	slices.Sort(s1)
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if !slices.Equal(s1, sorted) {
		t.Fatal("shuffle changed the rows")
	}
}

func TestMapBatchesBatchRows(t *testing.T) {
	cfg, _ := testConfig(t)
	var seen []int64
	d := dataset.Range(1000).Configure(cfg).MapBatches(func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		if rec.NumRows() > 0 {
			seen = append(seen, rec.NumRows())
		}
		b := array.NewInt64Builder(mem)
		defer b.Release()
		for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
			b.Append(v * 2)
		}
		col := b.NewArray()
		defer col.Release()
		s := arrow.NewSchema([]arrow.Field{{Name: "double", Type: arrow.PrimitiveTypes.Int64}}, nil)
		return array.NewRecordBatch(s, []arrow.Array{col}, rec.NumRows()), nil
	}, dataset.MapOptions{Name: "double", BatchRows: 64, Concurrency: 1})
	got := col[int64](t, take(t, d), "double")
	if len(got) != 1000 || got[999] != 1998 {
		t.Fatalf("got %d rows", len(got))
	}
	for i, n := range seen {
		if n != 64 && i != len(seen)-1 {
			t.Fatalf("batch %d has %d rows, want 64", i, n)
		}
	}
}

func TestCountAndRange(t *testing.T) {
	cfg, _ := testConfig(t)
	n, err := dataset.Range(12345).Configure(cfg).Filter("id % 3 = 0").Count(context.Background())
	if err != nil || n != 4115 {
		t.Fatalf("count %d, %v; want 4115", n, err)
	}
}

func TestBuildErrors(t *testing.T) {
	d := dataset.Range(10)
	for _, tc := range []struct {
		d    *dataset.Dataset
		want string
	}{
		{d.Filter("idd > 3"), `dataset: Filter: expr: 1:1: unknown column "idd" (did you mean "id"?)`},
		{d.Select("nope"), `dataset: Select: expr: 1:1: unknown column "nope"`},
		{d.Drop("nope"), `dataset: Drop: unknown column "nope" (have: id)`},
		{d.Sort(dataset.Asc("x")), `dataset: Sort: unknown column "x" (have: id)`},
		{d.Limit(-1), `dataset: Limit: n (-1) must not be negative`},
	} {
		if err := tc.d.Err(); err == nil || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}

func TestCancel(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n int64
	for rec, err := range dataset.Range(1 << 40).Configure(cfg).Iter(ctx) {
		if err != nil {
			if ctx.Err() == nil {
				t.Fatal(err)
			}
			break
		}
		n += rec.NumRows()
		if n > 10_000 {
			cancel()
		}
	}
	if ctx.Err() == nil {
		t.Fatal("the run ended before it was cancelled")
	}
}

func TestFlatMap(t *testing.T) {
	cfg, _ := testConfig(t)
	out := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "copy", Type: arrow.PrimitiveTypes.Int64}}, nil)
	d := dataset.Range(50).Configure(cfg).FlatMap(func(r dataset.Row) ([]dataset.Row, error) {
		id := r["id"].(int64)
		var rows []dataset.Row
		for c := range id % 3 { // 0, 1 or 2 copies
			rows = append(rows, dataset.Row{"id": id, "copy": c})
		}
		return rows, nil
	}, out, dataset.MapOptions{})
	got := take(t, d)
	var want []int64
	for id := int64(0); id < 50; id++ {
		for range id % 3 {
			want = append(want, id)
		}
	}
	if ids := col[int64](t, got, "id"); !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
}

// Breaking out of Iter stops the run: over an endless source this returns.
func TestIterBreakStops(t *testing.T) {
	cfg, _ := testConfig(t)
	n := 0
	for rec, err := range dataset.Range(1<<40).Configure(cfg).WithColumn("x", "id * 2").Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n += int(rec.NumRows())
		break
	}
	if n == 0 {
		t.Fatal("no rows")
	}
}
