package dataset

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
)

// The operators in this file are built from the core ones (GroupBy,
// Filter, WithColumn, MapBatches), so they have Explain output and run on
// a cluster wherever those do.

// quoteIdent quotes a column name for an expression.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// distinctCount names the count Distinct computes and drops.
const distinctCount = "__sluice_distinct_n"

// Distinct keeps one row of each distinct combination of the columns
// (all of them when none are given), like SQL's SELECT DISTINCT columns:
// the output holds only those columns, in no particular order. NULLs
// compare equal to each other.
func (d *Dataset) Distinct(columns ...string) *Dataset {
	if d.err != nil {
		return d
	}
	if len(columns) == 0 {
		columns = names(d.node.Schema())
	}
	g := d.GroupBy(columns...).Agg(Count().As(distinctCount))
	if err := g.Err(); err != nil {
		return &Dataset{err: fmt.Errorf("dataset: Distinct: %w", errors.Unwrap(err)), cfg: d.cfg}
	}
	return label(g, "Distinct ["+strings.Join(columns, ", ")+"]").Drop(distinctCount)
}

// label names the operator d's top node (an Aggregate, Join or MapBatches
// just built for it) implements, for Explain.
func label(d *Dataset, name string) *Dataset {
	if d.err != nil {
		return d
	}
	var n plan.Node
	switch x := d.node.(type) {
	case *plan.Aggregate:
		c := *x
		c.Label = name
		n = &c
	case *plan.Join:
		c := *x
		c.Label = name
		n = &c
	case *plan.MapBatches:
		c := *x
		c.Name, c.Builtin = name, true
		n = &c
	default:
		return d
	}
	return &Dataset{node: n, cfg: d.cfg}
}

// DropNull drops the rows with a NULL in any of the columns (in any
// column when none are given).
func (d *Dataset) DropNull(columns ...string) *Dataset {
	if d.err != nil {
		return d
	}
	if len(columns) == 0 {
		columns = names(d.node.Schema())
	}
	if len(columns) == 0 {
		return d
	}
	conds := make([]string, len(columns))
	for i, c := range columns {
		conds[i] = quoteIdent(c) + " IS NOT NULL"
	}
	return d.Filter(strings.Join(conds, " AND "))
}

// FillNull replaces the NULLs of each named column by its value: a
// string, bool, integer, float, time.Time (a timestamp) or nil (no
// change). The column keeps its type where the value fits it (an integer
// fills an int32 column as int32); a value of another kind is an error.
func (d *Dataset) FillNull(values map[string]any) *Dataset {
	if d.err != nil {
		return d
	}
	out := d
	s := d.node.Schema()
	for _, c := range sortedKeys(values) {
		idx := s.FieldIndices(c)
		if len(idx) == 0 {
			return &Dataset{err: fmt.Errorf("dataset: FillNull: %w", unknownColumn(c, s)), cfg: d.cfg}
		}
		dt := s.Field(idx[0]).Type
		if f, ok := values[c].(float64); ok && arrow.IsInteger(dt.ID()) && f != math.Trunc(f) {
			// CAST would round it: the nulls would silently get another value.
			return &Dataset{err: fmt.Errorf("dataset: FillNull: column %q is %s; %v is not an integer", c, dt, f), cfg: d.cfg}
		}
		if v, ok := asInt64(values[c]); ok && !fitsInt(dt, v) {
			return &Dataset{err: fmt.Errorf("dataset: FillNull: column %q is %s; %d does not fit it", c, dt, v), cfg: d.cfg}
		}
		lit, err := literal(values[c])
		if err != nil {
			return &Dataset{err: fmt.Errorf("dataset: FillNull: column %q: %w", c, err), cfg: d.cfg}
		}
		e := "coalesce(" + quoteIdent(c) + ", " + lit + ")"
		if t := castName(dt); t != "" {
			e = "CAST(" + e + " AS " + t + ")"
		}
		if out = out.WithColumn(c, e); out.err != nil {
			return &Dataset{err: fmt.Errorf("dataset: FillNull: column %q is %s; cannot fill it with %s: %w", c, dt, lit, errors.Unwrap(out.err)), cfg: d.cfg}
		}
	}
	return out
}

func asInt64(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

// fitsInt reports whether v is in the range of a sized integer type (any
// other type: true, its CAST decides).
func fitsInt(dt arrow.DataType, v int64) bool {
	switch dt.ID() {
	case arrow.INT8:
		return v >= math.MinInt8 && v <= math.MaxInt8
	case arrow.INT16:
		return v >= math.MinInt16 && v <= math.MaxInt16
	case arrow.INT32:
		return v >= math.MinInt32 && v <= math.MaxInt32
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// castName is the CAST name that keeps a column's type, or "".
func castName(t arrow.DataType) string {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.DATE32:
		return map[arrow.Type]string{arrow.INT8: "int8", arrow.INT16: "int16", arrow.INT32: "int32", arrow.INT64: "int64",
			arrow.FLOAT32: "float32", arrow.FLOAT64: "float64", arrow.BOOL: "bool", arrow.DATE32: "date"}[t.ID()]
	}
	return ""
}

// literal writes v as an expression literal.
func literal(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "NULL", nil
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'", nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("cannot fill with %v", v)
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s, nil
	case time.Time:
		return "TIMESTAMP '" + v.UTC().Format("2006-01-02 15:04:05.999999") + "'", nil
	}
	return "", fmt.Errorf("cannot fill with a %T (want a string, bool, int, int64, float64 or time.Time)", v)
}

// Sample keeps each row with probability fraction, decided by a hash of
// the row's values and seed: the same seed keeps the same rows however
// the data is split into batches, tasks or workers. Rows that are equal
// in every hashable column are kept or dropped together.
func (d *Dataset) Sample(fraction float64, seed int64) *Dataset {
	return d.sample("Sample", fraction, seed, true)
}

// Split divides the rows into two datasets, the first with about fraction
// of them (a seeded train/test split): every row is in exactly one, by
// the same rule as Sample.
func (d *Dataset) Split(fraction float64, seed int64) (*Dataset, *Dataset) {
	return d.sample("Split", fraction, seed, true), d.sample("Split", fraction, seed, false)
}

// sampleThreshold is the bound below which a row's sampleKey is in a
// sample of fraction (every key is below that of fraction 1).
func sampleThreshold(fraction float64) uint64 {
	if fraction >= 1 {
		return math.MaxUint64>>1 + 1
	}
	return uint64(fraction * (1 << 63))
}

// sampleKey is the 63-bit number a row's hash and the seed give it: a row
// is in a sample of fraction f when its key is below sampleThreshold(f).
func sampleKey(h uint64, seed int64) uint64 { return mix(h^uint64(seed)) >> 1 }

func (d *Dataset) sample(op string, fraction float64, seed int64, keep bool) *Dataset {
	if d.err != nil {
		return d
	}
	if !(fraction >= 0 && fraction <= 1) {
		return &Dataset{err: fmt.Errorf("dataset: %s: fraction (%v) must be between 0 and 1", op, fraction), cfg: d.cfg}
	}
	threshold := sampleThreshold(fraction)
	name := fmt.Sprintf("%s(%v, seed=%d)", op, fraction, seed)
	if !keep {
		name = fmt.Sprintf("%s(%v, seed=%d) rest", op, fraction, seed)
	}
	fn := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		hs, err := kernel.RowHashes(rec)
		if err != nil {
			return nil, err
		}
		var idx []int32
		for i, h := range hs {
			in := sampleKey(h, seed) < threshold
			if in == keep {
				idx = append(idx, int32(i))
			}
		}
		if len(idx) == len(hs) {
			rec.Retain()
			return rec, nil
		}
		return kernel.Take(mem, rec, idx)
	}
	return label(d.MapBatches(fn, MapOptions{Name: name, Schema: d.node.Schema()}), name)
}

// WithSplit adds column, a string naming each row's part of a seeded
// random split: names[i] for about fractions[i] of the rows (Spark's
// randomSplit, Ray Data's split_proportionately, in one pass). The
// fractions are positive and add up to 1; the names are distinct. A row's
// part is decided by a hash of its values and seed, as Sample does: the
// first part is the rows Sample(fractions[0], seed) keeps (and Split's
// first dataset), and rows equal in every hashable column share a part.
// Written with WriteOptions.DirBy set to column, each part goes to its own
// directory (DEST/train/, DEST/test/).
func (d *Dataset) WithSplit(column string, fractions []float64, names []string, seed int64) *Dataset {
	if d.err != nil {
		return d
	}
	fail := func(format string, args ...any) *Dataset {
		return &Dataset{err: fmt.Errorf("dataset: WithSplit: %w", fmt.Errorf(format, args...)), cfg: d.cfg}
	}
	if len(fractions) < 2 || len(names) != len(fractions) {
		return fail("%d fractions and %d names: want the same number, at least 2", len(fractions), len(names))
	}
	in := d.node.Schema()
	if len(in.FieldIndices(column)) > 0 {
		return fail("column %q exists", column)
	}
	var sum float64
	bounds := make([]uint64, len(fractions))
	for i, f := range fractions {
		if !(f > 0 && f <= 1) {
			return fail("fractions[%d] (%v) must be above 0 and at most 1", i, f)
		}
		if n := names[i]; n == "" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) || slices.Contains(names[:i], n) {
			return fail("names[%d] (%q) must be distinct directory names (not empty, . or .., no slash)", i, n)
		}
		sum += f
		bounds[i] = sampleThreshold(sum)
	}
	if math.Abs(sum-1) > 1e-9 {
		return fail("fractions %v add up to %v, not 1", fractions, sum)
	}
	bounds[len(bounds)-1] = math.MaxUint64 // the last part takes what rounding leaves
	out := arrow.NewSchema(append(in.Fields(), arrow.Field{Name: column, Type: arrow.BinaryTypes.String}), nil)
	fn := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		hs, err := kernel.RowHashes(rec)
		if err != nil {
			return nil, err
		}
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.Reserve(len(hs))
		for _, h := range hs {
			k := sampleKey(h, seed)
			p := 0
			for k >= bounds[p] {
				p++
			}
			b.Append(names[p])
		}
		col := b.NewArray()
		defer col.Release()
		cols := append(slices.Clip(rec.Columns()), col) // a copy: rec's own slice stays as it is
		return array.NewRecordBatch(out, cols, rec.NumRows()), nil
	}
	name := fmt.Sprintf("Split(%v, seed=%d) into %s: %s", fractions, seed, column, strings.Join(names, ", "))
	return label(d.MapBatches(fn, MapOptions{Name: name, Schema: out}), name)
}

// mix is splitmix64's finalizer, so that nearby seeds give unrelated samples.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
