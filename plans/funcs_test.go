package plans

import (
	"context"
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

	"github.com/sluicehq/sluice/dataset/plan"
)

// The test binary registers add_tax at init, as a program would; tests
// that need other registrations use registries of their own, so the
// program's stays the same whatever the order of the tests (the golden
// lints of testdata/broken list it).
func init() { MustRegister("add_tax", addTax) }

// addTax appends tax = price * qty * 0.2.
var addTax = Func{
	Out: func(in *arrow.Schema) (*arrow.Schema, error) {
		for _, c := range []struct {
			name string
			typ  arrow.DataType
		}{{"price", arrow.PrimitiveTypes.Float64}, {"qty", arrow.PrimitiveTypes.Int32}} {
			fs, _ := in.FieldsByName(c.name)
			if len(fs) != 1 || !arrow.TypeEqual(fs[0].Type, c.typ) {
				return nil, fmt.Errorf("wants a %s column %q (have: %s)", c.typ, c.name, columnsText(in))
			}
		}
		return arrow.NewSchema(append(slices.Clone(in.Fields()), arrow.Field{Name: "tax", Type: arrow.PrimitiveTypes.Float64, Nullable: true}), nil), nil
	},
	Fn: func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		s := rec.Schema()
		price := rec.Column(s.FieldIndices("price")[0]).(*array.Float64)
		qty := rec.Column(s.FieldIndices("qty")[0]).(*array.Int32)
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		b.Reserve(int(rec.NumRows()))
		for i := range int(rec.NumRows()) {
			if price.IsNull(i) || qty.IsNull(i) {
				b.AppendNull()
				continue
			}
			b.Append(price.Value(i) * float64(qty.Value(i)) * 0.2)
		}
		tax := b.NewArray()
		defer tax.Release()
		out := arrow.NewSchema(append(slices.Clone(s.Fields()), arrow.Field{Name: "tax", Type: arrow.PrimitiveTypes.Float64, Nullable: true}), nil)
		return array.NewRecordBatch(out, append(slices.Clone(rec.Columns()), tax), rec.NumRows()), nil
	},
	RowLocal: true,
}

const udfPlan = `name: udf
read: {parquet: %s}
steps:
  - filter: "qty > 2"
  - map_batches: {fn: add_tax, batch_rows: 7, concurrency: 2}
  - select: [id, price, qty, tax]
write: {parquet: %s, mode: overwrite}
`

func TestMapBatchesStepRuns(t *testing.T) {
	dir := t.TempDir()
	sales := writeSales(t, dir, 200)
	out := filepath.Join(dir, "out")
	p, lints := Parse("udf.yaml", fmt.Appendf(nil, udfPlan, filepath.Join(dir, "data", "sales"), out))
	if len(lints) > 0 {
		t.Fatal(lints)
	}
	if ls := Validate(p, Vars{}); len(ls) > 0 {
		t.Fatalf("Validate: %v", ls)
	}
	job, err := Compile(p, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	// The step's options override the registration's and reach the node.
	mb := findMapBatches(job.Sink)
	if mb == nil || mb.Name != "add_tax" || mb.BatchRows != 7 || mb.Concurrency != 2 || !mb.RowLocal {
		t.Fatalf("MapBatches node: %+v", mb)
	}
	if _, err := job.Run(context.Background(), testConfig(t)); err != nil {
		t.Fatal(err)
	}
	var want []row
	for _, s := range sales {
		if s.Qty > 2 {
			want = append(want, row{"id": s.ID, "price": s.Price, "qty": int64(s.Qty), "tax": s.Price * float64(s.Qty) * 0.2})
		}
	}
	sameRows(t, readRows(t, out, "id"), want)
}

// TestMapBatchesStepOptions: without options the registration's hold.
func TestMapBatchesStepOptions(t *testing.T) {
	dir := t.TempDir()
	writeSales(t, dir, 10)
	reg := &registry{}
	f := addTax
	f.BatchRows, f.Concurrency, f.RowLocal = 3, 4, false
	if err := reg.register("add_tax", f); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("name: o\nread: {parquet: %s}\nsteps:\n  - map_batches: {fn: add_tax}\nwrite: {parquet: %s}\n",
		filepath.Join(dir, "data", "sales"), filepath.Join(dir, "out"))
	p, lints := Parse("o.yaml", []byte(src))
	if len(lints) > 0 {
		t.Fatal(lints)
	}
	job, err := compile(p, Vars{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	text, err := job.Explain()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "MapBatches add_tax batch_rows=3 concurrency=4") {
		t.Fatalf("Explain:\n%s", text)
	}
	if mb := findMapBatches(job.Sink); mb == nil || mb.RowLocal {
		t.Fatalf("MapBatches node (RowLocal must be false): %+v", mb)
	}
}

func TestMapBatchesStepUnknown(t *testing.T) {
	dir := t.TempDir()
	writeSales(t, dir, 10)
	src := fmt.Sprintf("name: u\nread: {parquet: %s}\nsteps:\n  - map_batches: {fn: add_tx}\n  - select: [id, tax]\nwrite: {parquet: %s}\n",
		filepath.Join(dir, "data", "sales"), filepath.Join(dir, "out"))
	p, lints := Parse("u.yaml", []byte(src))
	if len(lints) > 0 {
		t.Fatal(lints) // Parse knows nothing of the registry
	}
	for _, tc := range []struct {
		name  string
		reg   *registry
		want  string
		fails bool // Validate reports an error, not a note
	}{
		{"program's", &funcs, `u.yaml:4:23: steps[0].map_batches.fn: function "add_tx" is not registered (did you mean "add_tax"?); registered: add_tax`, true},
		{"empty", &registry{}, `u.yaml:4:23: steps[0].map_batches.fn: function "add_tx" is not registered: this program registers no functions; ` +
			`register it with plans.Register in the program that runs the workers`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compile(p, Vars{}, tc.reg)
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile: %v\nwant: %s", err, tc.want)
			}
			ls := validate(p, Vars{}, tc.reg)
			if tc.reg == &funcs {
				if ls.Error() != tc.want {
					t.Fatalf("Validate: %v\nwant: %s", ls, tc.want)
				}
				return
			}
			// The sluice command registers nothing: it cannot check the
			// step, and says so without failing the plan.
			want := `u.yaml:4:23: steps[0].map_batches.fn: note: function "add_tx" is not registered in this program, ` +
				`so the columns it makes and the later steps were not checked; the program that runs the workers must register it with plans.Register`
			if ls.Error() != want || ls.HasErrors() {
				t.Fatalf("Validate: %v\nwant: %s", ls, want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	err := Register("add_tax", addTax)
	if !errors.Is(err, ErrFuncRegistered) || err.Error() != `plans: function already registered: "add_tax"` {
		t.Fatalf("second Register: %v", err)
	}
	reg := &registry{}
	for _, tc := range []struct {
		name string
		fn   Func
		want string
	}{
		{"", addTax, `plans: Register "": a function name is letters, digits, _, . and -, starting with a letter or _`},
		{"9lives", addTax, `plans: Register "9lives": a function name is letters, digits, _, . and -, starting with a letter or _`},
		{"nil_fn", Func{}, `plans: Register "nil_fn": Fn is nil`},
		{"neg", Func{Fn: addTax.Fn, BatchRows: -1}, `plans: Register "neg": BatchRows (-1) and Concurrency (0) must not be negative`},
	} {
		if err := reg.register(tc.name, tc.fn); err == nil || err.Error() != tc.want {
			t.Errorf("register %q: %v\nwant: %s", tc.name, err, tc.want)
		}
	}
	// Concurrent registrations: each name once, whoever wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("f%d", i%4)
			if err := reg.register(name, addTax); err == nil {
				mu.Lock()
				wins[name]++
				mu.Unlock()
			} else if !errors.Is(err, ErrFuncRegistered) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := strings.Join(reg.names(), " "); got != "f0 f1 f2 f3" || len(wins) != 4 || wins["f0"] != 1 {
		t.Fatalf("names %q, wins %v", got, wins)
	}
	if got := Registered(); !slices.Equal(got, []string{"add_tax"}) {
		t.Fatalf("Registered() = %v", got)
	}
}

func findMapBatches(n plan.Node) *plan.MapBatches {
	if m, ok := n.(*plan.MapBatches); ok {
		return m
	}
	for _, c := range n.Children() {
		if m := findMapBatches(c); m != nil {
			return m
		}
	}
	return nil
}
