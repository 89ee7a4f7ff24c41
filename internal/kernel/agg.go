package kernel

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// AggFunc names an aggregate function.
type AggFunc string

// The aggregate functions. Null handling follows SQL: Sum, Mean, Min and
// Max skip nulls and give null for a group with no non-null value; Count
// counts non-null values, CountAll counts rows, CountDistinct counts
// distinct non-null values.
const (
	Count         AggFunc = "count"
	CountAll      AggFunc = "count_all" // count(*)
	Sum           AggFunc = "sum"
	Mean          AggFunc = "mean"
	Min           AggFunc = "min"
	Max           AggFunc = "max"
	CountDistinct AggFunc = "count_distinct"
)

// Agg is one aggregate: Func over Column (empty for CountAll), named As in
// the output ("func(column)" or "count(*)" when As is empty).
type Agg struct {
	Func   AggFunc
	Column string
	As     string
	Q      float64 // quantile's fraction, in [0, 1]
}

// Name is the output column name of a.
func (a Agg) Name() string {
	switch {
	case a.As != "":
		return a.As
	case a.Func == CountAll:
		return "count(*)"
	}
	return fmt.Sprintf("%s(%s)", a.Func, a.Column)
}

// HashAgg groups rows by key columns and computes aggregates per group. Push
// any number of batches, then Finish. Zero keys make one global group, which
// Finish returns even when no row was pushed (count 0, sum null), as SQL
// does. Null keys form a group of their own.
//
// Types: sum of integers is int64 (wrapping on overflow), of floats float64;
// mean is float64; counts are int64; min and max keep the input type and
// work on numbers, strings, binaries, timestamps, dates, times, durations
// and bools. Keys may be any of those or dictionary-encoded strings, which
// come out decoded.
//
// A HashAgg is used from one goroutine; to aggregate in parallel, give each
// goroutine its own HashAgg and Merge them once they are done.
type HashAgg struct {
	mem      memory.Allocator
	schema   *arrow.Schema
	keys     []string
	keyIdx   []int
	aggs     []Agg
	aggIdx   []int // column of each agg, -1 for count_all
	states   []aggState
	out      *arrow.Schema
	groups   groupMap
	views    []colView
	hashes   []uint64
	scratch  []uint64
	gids     []uint32
	dictIDs  []int32
	codeIDs  []int32           // insertDict's cache, for the dictionaries codeSrcs
	codeSrcs []arrow.ArrayData // nil until insertDict runs
	dictOK   []bool            // per column: may arrive dictionary-encoded although the schema says string or binary
	done     bool
}

// NewHashAgg validates keys and aggs against schema.
func NewHashAgg(mem memory.Allocator, schema *arrow.Schema, keys []string, aggs []Agg) (*HashAgg, error) {
	h := &HashAgg{mem: mem, schema: schema, keys: slices.Clone(keys), aggs: slices.Clone(aggs)}
	fields := make([]arrow.Field, 0, len(keys)+len(aggs))
	names := map[string]bool{}
	kinds := make([]keyKind, len(keys))
	for k, name := range keys {
		i, ok := fieldIndex(schema, name)
		if !ok {
			return nil, errorf(ErrColumn, "group key %q: no such column (have %s)", name, columnList(schema))
		}
		f := schema.Field(i)
		if kinds[k] = keyKindOf(f.Type); kinds[k] == kindNone {
			return nil, errorf(ErrType, "group key %q: cannot group by a %s column", name, typeName(f.Type))
		}
		if names[name] {
			return nil, errorf(ErrInvalid, "group key %q: listed twice", name)
		}
		names[name] = true
		h.keyIdx = append(h.keyIdx, i)
		fields = append(fields, arrow.Field{Name: name, Type: decoded(f.Type), Nullable: f.Nullable})
	}
	for _, a := range aggs {
		st, idx, dt, err := newAggState(schema, a)
		if err != nil {
			return nil, err
		}
		name := a.Name()
		if names[name] {
			return nil, errorf(ErrInvalid, "%s: output column %q is already used; set As", aggLabel(a), name)
		}
		names[name] = true
		h.states = append(h.states, st)
		h.aggIdx = append(h.aggIdx, idx)
		nullable := a.Func != Count && a.Func != CountAll && a.Func != CountDistinct
		fields = append(fields, arrow.Field{Name: name, Type: dt, Nullable: nullable})
	}
	h.out = arrow.NewSchema(fields, nil)
	// A string key that no aggregate reads may arrive as a dictionary array
	// (a scan that skipped decoding it): only the key views read it, and
	// they take either.
	h.dictOK = make([]bool, schema.NumFields())
	for _, i := range h.keyIdx {
		id := schema.Field(i).Type.ID()
		h.dictOK[i] = id == arrow.STRING || id == arrow.LARGE_STRING || id == arrow.BINARY || id == arrow.LARGE_BINARY
	}
	for _, i := range h.aggIdx {
		if i >= 0 {
			h.dictOK[i] = false
		}
	}
	h.groups = newGroupMap(kinds)
	h.views = make([]colView, len(keys))
	if len(keys) == 0 {
		h.groups.keys.hashes = append(h.groups.keys.hashes, 0) // the one global group
		h.grow()
	}
	return h, nil
}

func aggLabel(a Agg) string {
	if a.Func == CountAll {
		return "count(*)"
	}
	return fmt.Sprintf("%s(%q)", a.Func, a.Column)
}

// newAggState checks a against schema and returns its state, input column
// and output type.
func newAggState(schema *arrow.Schema, a Agg) (aggState, int, arrow.DataType, error) {
	if a.Func == CountAll {
		if a.Column != "" && a.Column != "*" {
			return nil, 0, nil, errorf(ErrInvalid, "count(*): takes no column, got %q", a.Column)
		}
		return &countState{all: true}, -1, arrow.PrimitiveTypes.Int64, nil
	}
	label := aggLabel(a)
	i, ok := fieldIndex(schema, a.Column)
	if !ok {
		switch a.Func {
		case Count, Sum, Mean, Min, Max, CountDistinct, Var, Std, Median, Quantile, First, Last, CollectList, CollectAll:
		default:
			return nil, 0, nil, errorf(ErrInvalid, "%s: unknown aggregate %q (want count, count_all, sum, mean, min, max, count_distinct, var, std, median, quantile, first, last or collect_list)", label, a.Func)
		}
		return nil, 0, nil, errorf(ErrColumn, "%s: no such column (have %s)", label, columnList(schema))
	}
	dt := schema.Field(i).Type
	id := dt.ID()
	switch a.Func {
	case Count:
		return &countState{}, i, arrow.PrimitiveTypes.Int64, nil
	case CountDistinct:
		if keyKindOf(dt) == kindNone {
			return nil, 0, nil, errorf(ErrType, "%s: cannot count distinct values of a %s column", label, typeName(dt))
		}
		return &countDistinct{bytes: map[string]struct{}{}}, i, arrow.PrimitiveTypes.Int64, nil
	case Var, Std, Median, Quantile:
		if !isNumeric(id) {
			return nil, 0, nil, errorf(ErrType, "%s: cannot take the %s of a %s column", label, a.Func, typeName(dt))
		}
		if a.Func == Quantile && !(a.Q >= 0 && a.Q <= 1) {
			return nil, 0, nil, errorf(ErrInvalid, "%s: the fraction (%v) must be between 0 and 1", label, a.Q)
		}
		return &valuesState{fn: a.Func, dt: dt, q: a.Q}, i, arrow.PrimitiveTypes.Float64, nil
	case First, Last:
		return &refState{fn: a.Func, dt: dt}, i, dt, nil
	case CollectList, CollectAll:
		return &refState{fn: a.Func, dt: dt}, i, arrow.ListOf(dt), nil
	case Sum, Mean:
		if !isNumeric(id) {
			return nil, 0, nil, errorf(ErrType, "%s: cannot %s a %s column", label, a.Func, typeName(dt))
		}
		if a.Func == Mean {
			return &sumState[float64]{dt: dt, mean: true}, i, arrow.PrimitiveTypes.Float64, nil
		}
		if isFloat(id) {
			return &sumState[float64]{dt: dt}, i, arrow.PrimitiveTypes.Float64, nil
		}
		return &sumState[int64]{dt: dt}, i, arrow.PrimitiveTypes.Int64, nil
	case Min, Max:
		max := a.Func == Max
		var st aggState
		switch id {
		case arrow.INT8:
			st = newMinMax[int8](dt, max)
		case arrow.INT16:
			st = newMinMax[int16](dt, max)
		case arrow.INT32, arrow.DATE32, arrow.TIME32:
			st = newMinMax[int32](dt, max)
		case arrow.INT64, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME64, arrow.DURATION:
			st = newMinMax[int64](dt, max)
		case arrow.UINT8:
			st = newMinMax[uint8](dt, max)
		case arrow.UINT16:
			st = newMinMax[uint16](dt, max)
		case arrow.UINT32:
			st = newMinMax[uint32](dt, max)
		case arrow.UINT64:
			st = newMinMax[uint64](dt, max)
		case arrow.FLOAT32:
			st = newMinMax[float32](dt, max)
		case arrow.FLOAT64:
			st = newMinMax[float64](dt, max)
		case arrow.BOOL:
			st = &minMaxBool{max: max}
		default:
			if keyKindOf(dt) != kindBytes {
				return nil, 0, nil, errorf(ErrType, "%s: cannot take the %s of a %s column", label, a.Func, typeName(dt))
			}
			st = &minMaxBytes{dt: decoded(dt), max: max}
		}
		return st, i, decoded(dt), nil
	}
	return nil, 0, nil, errorf(ErrInvalid, "%s: unknown aggregate %q (want count, count_all, sum, mean, min, max, count_distinct, var, std or median)", label, a.Func)
}

// OutputSchema is the schema of Finish's batch: the keys, then the aggregates.
func (h *HashAgg) OutputSchema() *arrow.Schema { return h.out }

func (h *HashAgg) grow() {
	n := h.groups.len()
	for _, st := range h.states {
		st.grow(n)
	}
}

// Push folds rec's rows in; rec stays owned by the caller and is not retained.
func (h *HashAgg) Push(rec arrow.RecordBatch) error {
	if h.done {
		return errorf(ErrState, "HashAgg.Push after Release")
	}
	if err := checkBatchDict("HashAgg.Push", h.schema, rec, h.dictOK); err != nil {
		return err
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	h.gids = grow(h.gids, n)
	if len(h.keys) == 0 {
		clear(h.gids)
	} else {
		for k, i := range h.keyIdx {
			h.views[k].load(rec.Column(i), forHash)
		}
		if sharedCodes(h.views) {
			keep := len(h.codeSrcs) == len(h.views)
			for k := range h.views {
				keep = keep && h.codeSrcs[k] == h.views[k].dictData
			}
			h.codeIDs = h.groups.insertDict(h.views, h.gids[:n], h.codeIDs, keep)
			h.codeSrcs = h.codeSrcs[:0]
			for k := range h.views {
				h.codeSrcs = append(h.codeSrcs, h.views[k].dictData)
			}
		} else {
			h.hashes, h.scratch = hashRows(h.views, n, h.hashes, h.scratch)
			h.dictIDs = h.groups.insertAll(h.views, h.hashes, h.gids, h.dictIDs)
		}
		h.grow()
	}
	for a, st := range h.states {
		var arr arrow.Array
		if h.aggIdx[a] >= 0 {
			arr = rec.Column(h.aggIdx[a])
		}
		st.update(arr, h.gids)
	}
	return nil
}

// Merge folds the groups of other, a HashAgg built with the same schema,
// keys and aggregates, into h. other is left as it was; release it as usual.
// Groups new to h come after h's own, in other's order.
func (h *HashAgg) Merge(other *HashAgg) error {
	if h.done || other.done {
		return errorf(ErrState, "HashAgg.Merge after Release")
	}
	if other == h {
		return errorf(ErrInvalid, "HashAgg.Merge: cannot merge an aggregation into itself")
	}
	if !slices.Equal(h.keys, other.keys) || !slices.Equal(h.aggs, other.aggs) || !h.schema.Equal(other.schema) {
		return errorf(ErrInvalid, "HashAgg.Merge: other aggregates %v by %v, this one %v by %v", other.aggs, other.keys, h.aggs, h.keys)
	}
	idmap := make([]uint32, other.groups.len())
	if len(h.keys) > 0 {
		for g := range idmap {
			idmap[g] = h.groups.insertFrom(&other.groups.keys, g)
		}
		h.grow()
	}
	for a, st := range h.states {
		st.merge(other.states[a], idmap)
	}
	return nil
}

// Finish returns one row per group, in first-seen order, as a batch owned
// by the caller. The HashAgg stays usable.
func (h *HashAgg) Finish() (arrow.RecordBatch, error) {
	if h.done {
		return nil, errorf(ErrState, "HashAgg.Finish after Release")
	}
	n := h.groups.len()
	cols := make([]arrow.Array, 0, h.out.NumFields())
	fail := func(err error) (arrow.RecordBatch, error) {
		releaseAll(cols)
		return nil, err
	}
	for k := range h.keys {
		sc := &h.groups.keys.cols[k]
		dt := h.out.Field(k).Type
		if sc.kind == kindFixed {
			cols = append(cols, fixedFromNorm(h.mem, dt, sc.u, sc.nulls))
			continue
		}
		vals := make([][]byte, n)
		for g := range vals {
			vals[g] = sc.bytes(g)
		}
		col, err := bytesArray(h.mem, dt, vals, sc.nulls)
		if err != nil {
			return fail(err)
		}
		cols = append(cols, col)
	}
	for _, st := range h.states {
		col, err := st.result(h.mem, n)
		if err != nil {
			return fail(err)
		}
		cols = append(cols, col)
	}
	rec := array.NewRecordBatch(h.out, cols, int64(n))
	releaseAll(cols)
	return rec, nil
}

// Release drops the aggregation state; h cannot be used afterwards.
func (h *HashAgg) Release() {
	h.done = true
	h.states = nil
	h.groups = groupMap{}
	h.views, h.hashes, h.scratch, h.gids = nil, nil, nil, nil
}
