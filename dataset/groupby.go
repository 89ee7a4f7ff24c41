package dataset

import (
	"fmt"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
)

// Agg is one aggregate of a GroupBy.
type Agg struct {
	fn     kernel.AggFunc
	column string
	as     string
}

// As names the aggregate's output column.
func (a Agg) As(name string) Agg { a.as = name; return a }

func (a Agg) name() string {
	if a.as != "" {
		return a.as
	}
	if a.column == "" {
		return string(a.fn)
	}
	return string(a.fn) + "_" + a.column
}

// Count counts rows (no column) or the non-null values of one column.
func Count(column ...string) Agg {
	if len(column) == 0 {
		return Agg{fn: "count_all", as: "count"}
	}
	return Agg{fn: "count", column: column[0]}
}

// Sum adds a numeric column; nulls are skipped.
func Sum(column string) Agg { return Agg{fn: "sum", column: column} }

// Mean averages a numeric column as float64; nulls are skipped.
func Mean(column string) Agg { return Agg{fn: "mean", column: column} }

// Min is the smallest non-null value of a column.
func Min(column string) Agg { return Agg{fn: "min", column: column} }

// Max is the largest non-null value of a column.
func Max(column string) Agg { return Agg{fn: "max", column: column} }

// CountDistinct counts the distinct non-null values of a column.
func CountDistinct(column string) Agg { return Agg{fn: "count_distinct", column: column} }

// Var is the sample variance (n-1) of a numeric column, null for a group
// of fewer than two values.
func Var(column string) Agg { return Agg{fn: "var", column: column} }

// Std is the sample standard deviation of a numeric column.
func Std(column string) Agg { return Agg{fn: "std", column: column} }

// Median is the middle value of a numeric column (the mean of the two
// middle values for an even count), as float64.
func Median(column string) Agg { return Agg{fn: "median", column: column} }

// AggByName builds an aggregate from its name (count, sum, mean, avg, min,
// max, count_distinct, var, std, median), as plans spell them.
func AggByName(fn, column string) (Agg, error) {
	switch fn {
	case "count":
		if column == "" {
			return Count(), nil
		}
		return Count(column), nil
	case "sum", "mean", "min", "max", "count_distinct", "var", "std", "median":
	case "avg":
		fn = "mean"
	case "variance", "var_samp":
		fn = "var"
	case "stddev", "stddev_samp":
		fn = "std"
	default:
		return Agg{}, fmt.Errorf("unknown aggregate %q (want count, sum, mean, min, max, count_distinct, var, std or median)", fn)
	}
	if column == "" {
		return Agg{}, fmt.Errorf("aggregate %s needs a column", fn)
	}
	return Agg{fn: kernel.AggFunc(fn), column: column}, nil
}

// Grouped is a Dataset grouped by keys, waiting for its aggregates.
type Grouped struct {
	d    *Dataset
	keys []string
}

// GroupBy groups rows by the key columns (none: one group of all rows).
func (d *Dataset) GroupBy(keys ...string) *Grouped { return &Grouped{d: d, keys: keys} }

// Agg computes the aggregates per group: the keys then one column per aggregate.
func (g *Grouped) Agg(aggs ...Agg) *Dataset {
	return g.d.then("GroupBy", func(in plan.Node) (plan.Node, error) {
		if len(aggs) == 0 {
			return nil, fmt.Errorf("no aggregates")
		}
		ks := make([]kernel.Agg, len(aggs))
		seen := map[string]bool{}
		for _, k := range g.keys {
			seen[k] = true
		}
		for i, a := range aggs {
			if seen[a.name()] {
				return nil, fmt.Errorf("output column %q named twice (use As)", a.name())
			}
			seen[a.name()] = true
			ks[i] = kernel.Agg{Func: a.fn, Column: a.column, As: a.name()}
		}
		return plan.NewAggregate(in, g.keys, ks)
	})
}
