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
	q      float64
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

// Quantile is the value at fraction q (0 to 1) of a numeric column's
// sorted non-null values, interpolated linearly between the nearest two
// (DuckDB's quantile_cont), as float64: Quantile(c, 0.5) is Median(c).
func Quantile(column string, q float64) Agg { return Agg{fn: "quantile", column: column, q: q} }

// First is a group's first value in input order, NULL included (DuckDB's
// first), in the column's type. Input order is the order rows reach the
// aggregate: the scan's files in order and their rows in order, or the
// order of a Sort before it (Sort(ts).GroupBy(k).Agg(First(x)) is each
// group's earliest x). It holds with Config.PreserveOrder (the default),
// where an aggregate with first, last or collect_list reads its input on
// one goroutine, and on a cluster, whose reduce task reads each
// producer's rows in task order; without PreserveOrder it is some row of
// the group. Row-local operators, Limit and Union keep the order; after
// another exchange (a Join, GroupBy, Window, Repartition or RandomShuffle)
// it is that exchange's, which differs between the local executor (a
// join keeps its left side's order) and a cluster (rows in hash-partition
// order): Sort before the GroupBy where the pick matters.
func First(column string) Agg { return Agg{fn: "first", column: column} }

// Last is a group's last value in input order, NULL included.
func Last(column string) Agg { return Agg{fn: "last", column: column} }

// CollectList is a group's non-null values as a list (an empty list when
// it has none), in input order as First means it, like Spark's
// collect_list and DuckDB's list.
func CollectList(column string) Agg { return Agg{fn: "collect_list", column: column} }

// AggByName builds an aggregate from its name (count, sum, mean, avg, min,
// max, count_distinct, var, std, median, first, last, collect_list), as
// plans spell them.
func AggByName(fn, column string) (Agg, error) {
	switch fn {
	case "count":
		if column == "" {
			return Count(), nil
		}
		return Count(column), nil
	case "sum", "mean", "min", "max", "count_distinct", "var", "std", "median", "first", "last", "collect_list":
	case "list", "array_agg":
		fn = "collect_list"
	case "avg":
		fn = "mean"
	case "variance", "var_samp":
		fn = "var"
	case "stddev", "stddev_samp":
		fn = "std"
	default:
		return Agg{}, fmt.Errorf("unknown aggregate %q (want count, sum, mean, min, max, count_distinct, var, std, median, first, last or collect_list; quantile is dataset.Quantile)", fn)
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
			ks[i] = kernel.Agg{Func: a.fn, Column: a.column, As: a.name(), Q: a.q}
		}
		return plan.NewAggregate(in, g.keys, ks)
	})
}
