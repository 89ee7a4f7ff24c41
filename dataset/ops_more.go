package dataset

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

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
	return d.GroupBy(columns...).Agg(Count().As(distinctCount)).Drop(distinctCount)
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
		lit, err := literal(values[c])
		if err != nil {
			return &Dataset{err: fmt.Errorf("dataset: FillNull: column %q: %w", c, err), cfg: d.cfg}
		}
		e := "coalesce(" + quoteIdent(c) + ", " + lit + ")"
		if t := castName(s.Field(idx[0]).Type); t != "" {
			e = "CAST(" + e + " AS " + t + ")"
		}
		out = out.WithColumn(c, e)
	}
	return out
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

func (d *Dataset) sample(op string, fraction float64, seed int64, keep bool) *Dataset {
	if d.err != nil {
		return d
	}
	if !(fraction >= 0 && fraction <= 1) {
		return &Dataset{err: fmt.Errorf("dataset: %s: fraction (%v) must be between 0 and 1", op, fraction), cfg: d.cfg}
	}
	// Rows whose mixed hash is below the threshold are in the sample.
	threshold := uint64(fraction * (1 << 63))
	if fraction == 1 {
		threshold = math.MaxUint64 >> 1
	}
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
			in := mix(h^uint64(seed))>>1 < threshold || fraction == 1
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
	return d.MapBatches(fn, MapOptions{Name: name, Schema: d.node.Schema()})
}

// mix is splitmix64's finalizer, so that nearby seeds give unrelated samples.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
