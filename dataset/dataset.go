package dataset

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/internal/kernel"
)

// Dataset is an immutable, lazy node of a logical plan. Transforms return
// new Datasets; nothing runs until a consumer (Count, Take, Iter, Write*) is
// called. A transform that cannot apply (an unknown column, a type error)
// returns a Dataset that carries the error: every consumer returns it, and
// Err reports it at once.
type Dataset struct {
	node plan.Node
	err  error
	cfg  *local.Config
}

// Err is the error that building this Dataset met, if any.
func (d *Dataset) Err() error { return d.err }

// Plan is the Dataset's logical plan node.
func (d *Dataset) Plan() plan.Node { return d.node }

// FromPlan wraps a logical plan node.
func FromPlan(n plan.Node) *Dataset { return &Dataset{node: n} }

// Configure returns the Dataset with executor settings for its consumers.
func (d *Dataset) Configure(cfg local.Config) *Dataset {
	c := *d
	c.cfg = &cfg
	return &c
}

func (d *Dataset) config() local.Config {
	if d.cfg != nil {
		return *d.cfg
	}
	return local.DefaultConfig()
}

// then builds a new Dataset from d's node, naming the operator in errors.
func (d *Dataset) then(op string, f func(n plan.Node) (plan.Node, error)) *Dataset {
	if d.err != nil {
		return d
	}
	n, err := f(d.node)
	if err != nil {
		return &Dataset{err: fmt.Errorf("dataset: %s: %w", op, err), cfg: d.cfg}
	}
	return &Dataset{node: n, cfg: d.cfg}
}

// Filter keeps the rows for which the expression (see package expr) is true.
func (d *Dataset) Filter(predicate string) *Dataset {
	return d.then("Filter", func(n plan.Node) (plan.Node, error) {
		b, err := expr.Compile(predicate, n.Schema())
		if err != nil {
			return nil, err
		}
		if err := b.RequireBool(); err != nil {
			return nil, err
		}
		return &plan.Filter{Input: n, Pred: b}, nil
	})
}

// colRef binds a reference to one input column.
func colRef(name string, s *arrow.Schema) (*expr.Bound, error) {
	return expr.Compile(`"`+strings.ReplaceAll(name, `"`, `""`)+`"`, s)
}

func passThrough(n plan.Node, names []string) ([]plan.Column, error) {
	cols := make([]plan.Column, len(names))
	for i, c := range names {
		b, err := colRef(c, n.Schema())
		if err != nil {
			return nil, err
		}
		cols[i] = plan.Column{Name: c, Expr: b}
	}
	return cols, nil
}

// Select keeps the named columns, in the given order.
func (d *Dataset) Select(columns ...string) *Dataset {
	return d.then("Select", func(n plan.Node) (plan.Node, error) {
		if err := noDuplicates(columns); err != nil {
			return nil, err
		}
		cols, err := passThrough(n, columns)
		if err != nil {
			return nil, err
		}
		return plan.NewProject(n, cols), nil
	})
}

func noDuplicates(cols []string) error {
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c] {
			return fmt.Errorf("column %q named twice", c)
		}
		seen[c] = true
	}
	return nil
}

func names(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// WithColumn adds (or replaces) a column computed by an expression.
func (d *Dataset) WithColumn(name, expression string) *Dataset {
	return d.then("WithColumn "+name, func(n plan.Node) (plan.Node, error) {
		b, err := expr.Compile(expression, n.Schema())
		if err != nil {
			return nil, err
		}
		cols, err := passThrough(n, names(n.Schema()))
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(cols, func(c plan.Column) bool { return c.Name == name }); i >= 0 {
			cols[i].Expr = b
		} else {
			cols = append(cols, plan.Column{Name: name, Expr: b})
		}
		return plan.NewProject(n, cols), nil
	})
}

// Drop removes the named columns; each must exist.
func (d *Dataset) Drop(columns ...string) *Dataset {
	return d.then("Drop", func(n plan.Node) (plan.Node, error) {
		for _, c := range columns {
			if len(n.Schema().FieldIndices(c)) == 0 {
				return nil, unknownColumn(c, n.Schema())
			}
		}
		keep := slices.DeleteFunc(names(n.Schema()), func(c string) bool { return slices.Contains(columns, c) })
		cols, err := passThrough(n, keep)
		if err != nil {
			return nil, err
		}
		return plan.NewProject(n, cols), nil
	})
}

// Rename renames columns (old name to new name); others keep their names.
func (d *Dataset) Rename(renames map[string]string) *Dataset {
	return d.then("Rename", func(n plan.Node) (plan.Node, error) {
		for _, old := range slices.Sorted(maps.Keys(renames)) {
			if len(n.Schema().FieldIndices(old)) == 0 {
				return nil, unknownColumn(old, n.Schema())
			}
		}
		cols, err := passThrough(n, names(n.Schema()))
		if err != nil {
			return nil, err
		}
		var out []string
		for i := range cols {
			if nn, ok := renames[cols[i].Name]; ok {
				cols[i].Name = nn
			}
			out = append(out, cols[i].Name)
		}
		if err := noDuplicates(out); err != nil {
			return nil, err
		}
		return plan.NewProject(n, cols), nil
	})
}

func unknownColumn(c string, s *arrow.Schema) error {
	return fmt.Errorf("unknown column %q (have: %s)", c, strings.Join(names(s), ", "))
}

// BatchFunc is a user function over one batch; see MapBatches.
type BatchFunc = plan.BatchFunc

// MapOptions tune MapBatches.
type MapOptions struct {
	// Name labels the operator in Explain, stats and errors.
	Name string
	// BatchRows, when set, gives the function batches of exactly that many
	// rows (the last may be shorter).
	BatchRows int
	// Concurrency is how many goroutines call the function at once (default: the executor's).
	Concurrency int
	// Schema is the function's output schema. When nil, the function is
	// called once at build time on an empty batch to learn it.
	Schema *arrow.Schema
	// GPU says the function runs best on a GPU: on a cluster with GPU
	// workers its tasks are placed on them (one GPU each).
	GPU bool
}

// MapBatches applies a Go function to each batch. The function must not
// retain its input and returns a new batch (which may have other columns
// and any number of rows).
func (d *Dataset) MapBatches(fn BatchFunc, opts MapOptions) *Dataset {
	name := opts.Name
	if name == "" {
		name = "fn"
	}
	return d.then("MapBatches "+name, func(n plan.Node) (plan.Node, error) {
		out := opts.Schema
		if out == nil {
			var err error
			if out, err = probeSchema(fn, n.Schema()); err != nil {
				return nil, err
			}
		}
		return &plan.MapBatches{Input: n, Name: name, Fn: fn, Out: out, BatchRows: opts.BatchRows, Concurrency: opts.Concurrency, GPU: opts.GPU}, nil
	})
}

// probeSchema learns a function's output schema by calling it on an empty batch.
func probeSchema(fn BatchFunc, in *arrow.Schema) (*arrow.Schema, error) {
	mem := memory.NewGoAllocator()
	empty := array.NewRecordBatch(in, emptyColumns(mem, in), 0)
	defer empty.Release()
	out, err := fn(context.Background(), mem, empty)
	if err != nil {
		return nil, fmt.Errorf("learning the output schema from an empty batch (set MapOptions.Schema to skip this): %w", err)
	}
	if out == nil {
		return nil, fmt.Errorf("the function returned no batch for an empty input (set MapOptions.Schema)")
	}
	defer out.Release()
	return out.Schema(), nil
}

func emptyColumns(mem memory.Allocator, s *arrow.Schema) []arrow.Array {
	cols := make([]arrow.Array, s.NumFields())
	for i, f := range s.Fields() {
		cols[i] = array.MakeArrayOfNull(mem, f.Type, 0)
	}
	return cols
}

// Limit keeps the first n rows.
func (d *Dataset) Limit(n int64) *Dataset {
	return d.then("Limit", func(in plan.Node) (plan.Node, error) {
		if n < 0 {
			return nil, fmt.Errorf("n (%d) must not be negative", n)
		}
		return &plan.Limit{Input: in, N: n}, nil
	})
}

// Repartition redistributes the rows into n blocks of nearly equal size, or,
// with keys, by hash of the keys so equal keys share a block.
func (d *Dataset) Repartition(n int, keys ...string) *Dataset {
	return d.then("Repartition", func(in plan.Node) (plan.Node, error) {
		if n < 1 {
			return nil, fmt.Errorf("n (%d) must be at least 1", n)
		}
		for _, k := range keys {
			if len(in.Schema().FieldIndices(k)) == 0 {
				return nil, unknownColumn(k, in.Schema())
			}
		}
		return &plan.Repartition{Input: in, N: n, Keys: keys}, nil
	})
}

// RandomShuffle permutes all rows; the same seed gives the same order.
func (d *Dataset) RandomShuffle(seed int64) *Dataset {
	return d.then("RandomShuffle", func(in plan.Node) (plan.Node, error) {
		return &plan.Shuffle{Input: in, Seed: seed}, nil
	})
}

// SortKey is one key of a sort.
type SortKey = kernel.SortKey

// Asc sorts by a column ascending, nulls last.
func Asc(column string) SortKey { return SortKey{Column: column} }

// Desc sorts by a column descending, nulls last.
func Desc(column string) SortKey { return SortKey{Column: column, Descending: true} }

// Sort orders all rows by the keys; ties keep their input order.
func (d *Dataset) Sort(keys ...SortKey) *Dataset {
	return d.then("Sort", func(in plan.Node) (plan.Node, error) {
		if len(keys) == 0 {
			return nil, fmt.Errorf("no sort keys")
		}
		for _, k := range keys {
			if len(in.Schema().FieldIndices(k.Column)) == 0 {
				return nil, unknownColumn(k.Column, in.Schema())
			}
		}
		return &plan.Sort{Input: in, Keys: keys, Limit: -1}, nil
	})
}

// Union appends the rows of others, which must have the same schema.
func (d *Dataset) Union(others ...*Dataset) *Dataset {
	return d.then("Union", func(in plan.Node) (plan.Node, error) {
		inputs := []plan.Node{in}
		for i, o := range others {
			if o.err != nil {
				return nil, o.err
			}
			if !o.node.Schema().Equal(in.Schema()) {
				return nil, fmt.Errorf("input %d has schema %s, want %s", i+1, o.node.Schema(), in.Schema())
			}
			inputs = append(inputs, o.node)
		}
		return &plan.Union{Inputs: inputs}, nil
	})
}

// JoinOptions say how Join matches rows.
type JoinOptions struct {
	// On names key columns present on both sides; or set LeftOn and RightOn.
	On              []string
	LeftOn, RightOn []string
	// How is "inner" (default), "left", "right" or "full" ("outer"):
	// right and full also keep the right rows that match no left row, with
	// NULL in the left's non-key columns and the left's key columns holding
	// the right's keys.
	How string
}

// Join is a hash join of d (left) with right on equal keys. The output has
// every left column then the right's non-key columns (a name already on the
// left gets the suffix "_right").
func (d *Dataset) Join(right *Dataset, opts JoinOptions) *Dataset {
	switch opts.How {
	case "outer", "full_outer":
		opts.How = "full"
		fallthrough
	case "right", "full":
		return d.outerJoin(right, opts)
	}
	return d.then("Join", func(in plan.Node) (plan.Node, error) {
		if right.err != nil {
			return nil, right.err
		}
		lk, rk := opts.LeftOn, opts.RightOn
		if len(opts.On) > 0 {
			lk, rk = opts.On, opts.On
		}
		if len(lk) == 0 || len(lk) != len(rk) {
			return nil, fmt.Errorf("keys: left has %d, right has %d; need the same number, at least one", len(lk), len(rk))
		}
		var kind kernel.JoinKind
		switch opts.How {
		case "", "inner":
			kind = kernel.Inner
		case "left":
			kind = kernel.Left
		default:
			return nil, fmt.Errorf("How %q: want inner, left, right or full", opts.How)
		}
		return plan.NewJoin(in, right.node, lk, rk, kind)
	})
}
