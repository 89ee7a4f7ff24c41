package dist

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
)

// partialAgg splits an Aggregate into a map side, which aggregates each
// task's rows so that only one row per group and task crosses the
// exchange, and a reduce side that merges the partial rows: counts and
// sums add up, minima and maxima fold, a mean is a sum and a count divided
// at the end. count_distinct does not split (ok is false): such an
// Aggregate ships its rows.
type partialAgg struct {
	node    *plan.Aggregate
	partial []kernel.Agg // over the Aggregate's input
	final   []kernel.Agg // over the partial rows
	outCols [][]int      // per original agg, its columns among final's
}

func splitAgg(n *plan.Aggregate) (*partialAgg, bool) {
	p := &partialAgg{node: n}
	add := func(i int, f kernel.AggFunc, col string, merge kernel.AggFunc) int {
		name := fmt.Sprintf("__sluice_p%d_%d", i, len(p.partial))
		p.partial = append(p.partial, kernel.Agg{Func: f, Column: col, As: name})
		p.final = append(p.final, kernel.Agg{Func: merge, Column: name, As: name})
		return len(n.Keys) + len(p.final) - 1
	}
	for i, a := range n.Aggs {
		switch a.Func {
		case kernel.Count, kernel.CountAll:
			p.outCols = append(p.outCols, []int{add(i, a.Func, a.Column, kernel.Sum)})
		case kernel.Sum, kernel.Min, kernel.Max:
			p.outCols = append(p.outCols, []int{add(i, a.Func, a.Column, a.Func)})
		case kernel.Mean:
			s := add(i, kernel.Sum, a.Column, kernel.Sum)
			c := add(i, kernel.Count, a.Column, kernel.Sum)
			p.outCols = append(p.outCols, []int{s, c})
		default:
			return nil, false
		}
	}
	return p, true
}

// mapSide is the partial Aggregate over input.
func (p *partialAgg) mapSide(input plan.Node) (*plan.Aggregate, error) {
	a, err := plan.NewAggregate(input, p.node.Keys, p.partial)
	if err != nil {
		return nil, err
	}
	a.Label = p.node.Label // "partial Distinct [k] (...)"
	return a, nil
}

// reduceSide merges the partial rows of leaf and computes the original
// Aggregate's columns, with its schema.
func (p *partialAgg) reduceSide(leaf plan.Node) (plan.Node, error) {
	merged, err := plan.NewAggregate(leaf, p.node.Keys, p.final)
	if err != nil {
		return nil, err
	}
	merged.Label = p.node.Label
	out := p.node.Schema()
	keys := len(p.node.Keys)
	finish := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		cols := make([]arrow.Array, 0, out.NumFields())
		var owned []arrow.Array
		defer func() {
			for _, a := range owned {
				a.Release()
			}
		}()
		for k := range keys {
			cols = append(cols, rec.Column(k))
		}
		for _, oc := range p.outCols {
			if len(oc) == 1 {
				cols = append(cols, rec.Column(oc[0]))
				continue
			}
			m, err := mean(mem, rec.Column(oc[0]), rec.Column(oc[1]).(*array.Int64))
			if err != nil {
				return nil, err
			}
			owned = append(owned, m)
			cols = append(cols, m)
		}
		return array.NewRecordBatch(out, cols, rec.NumRows()), nil
	}
	return &plan.MapBatches{Input: merged, Name: "finish aggregates", Fn: finish, Out: out, RowLocal: true}, nil
}

// mean divides sums (int64 or float64) by counts; null where no value was counted.
func mean(mem memory.Allocator, sum arrow.Array, count *array.Int64) (arrow.Array, error) {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.Reserve(sum.Len())
	for i := range sum.Len() {
		n := count.Value(i)
		if sum.IsNull(i) || count.IsNull(i) || n == 0 {
			b.AppendNull()
			continue
		}
		switch s := sum.(type) {
		case *array.Float64:
			b.Append(s.Value(i) / float64(n))
		case *array.Int64:
			b.Append(float64(s.Value(i)) / float64(n))
		default:
			return nil, fmt.Errorf("dist: partial mean: sum column is %s", sum.DataType())
		}
	}
	return b.NewArray(), nil
}
