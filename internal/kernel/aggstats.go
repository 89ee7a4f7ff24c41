package kernel

import (
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The statistical aggregates. Each keeps its group's non-null values (as
// float64), so its memory grows with the input; on a cluster an Aggregate
// using them ships its rows to the group's task instead of splitting.
const (
	Var    AggFunc = "var"    // sample variance (n-1), null under two values
	Std    AggFunc = "std"    // sample standard deviation, sqrt(var)
	Median AggFunc = "median" // the middle value; the mean of the two middle ones
	// Quantile is the value at fraction Q of the sorted values,
	// interpolated linearly between the two nearest (DuckDB's
	// quantile_cont): Q 0.5 is the median.
	Quantile AggFunc = "quantile"
)

// valuesState collects each group's values for var, std and median.
type valuesState struct {
	fn   AggFunc
	dt   arrow.DataType
	q    float64
	vals [][]float64
}

func (s *valuesState) grow(n int) { s.vals = growTo(s.vals, n) }

func (s *valuesState) update(arr arrow.Array, gids []uint32) {
	switch s.dt.ID() {
	case arrow.INT8:
		collect(s.vals, rawValues[int8](arr), arr, gids)
	case arrow.INT16:
		collect(s.vals, rawValues[int16](arr), arr, gids)
	case arrow.INT32:
		collect(s.vals, rawValues[int32](arr), arr, gids)
	case arrow.INT64:
		collect(s.vals, rawValues[int64](arr), arr, gids)
	case arrow.UINT8:
		collect(s.vals, rawValues[uint8](arr), arr, gids)
	case arrow.UINT16:
		collect(s.vals, rawValues[uint16](arr), arr, gids)
	case arrow.UINT32:
		collect(s.vals, rawValues[uint32](arr), arr, gids)
	case arrow.UINT64:
		collect(s.vals, rawValues[uint64](arr), arr, gids)
	case arrow.FLOAT32:
		collect(s.vals, rawValues[float32](arr), arr, gids)
	case arrow.FLOAT64:
		collect(s.vals, rawValues[float64](arr), arr, gids)
	}
}

func collect[T number](dst [][]float64, vals []T, arr arrow.Array, gids []uint32) {
	if len(vals) < len(gids) {
		return
	}
	bm, off := validity(arr)
	for i, g := range gids {
		if bm == nil || bitSet(bm, off+i) {
			dst[g] = append(dst[g], float64(vals[i]))
		}
	}
}

func (s *valuesState) merge(o aggState, idmap []uint32) {
	for g, v := range o.(*valuesState).vals {
		s.vals[idmap[g]] = append(s.vals[idmap[g]], v...)
	}
}

func (s *valuesState) result(mem memory.Allocator, n int) (arrow.Array, error) {
	out := make([]float64, n)
	nulls := make([]bool, n)
	for g := range n {
		v := s.vals[g]
		switch s.fn {
		case Quantile:
			if len(v) == 0 {
				nulls[g] = true
				continue
			}
			w := slices.Clone(v)
			slices.Sort(w)
			pos := s.q * float64(len(w)-1)
			lo := int(math.Floor(pos))
			hi := min(lo+1, len(w)-1)
			out[g] = w[lo] + (pos-float64(lo))*(w[hi]-w[lo])
		case Median:
			if len(v) == 0 {
				nulls[g] = true
				continue
			}
			w := slices.Clone(v)
			slices.Sort(w)
			if m := len(w) / 2; len(w)%2 == 1 {
				out[g] = w[m]
			} else {
				out[g] = (w[m-1] + w[m]) / 2
			}
		default:
			if len(v) < 2 {
				nulls[g] = true
				continue
			}
			// Two passes: the mean, then the squared deviations, which
			// stays exact where sum-of-squares minus square-of-sum cancels.
			var sum float64
			for _, x := range v {
				sum += x
			}
			mean := sum / float64(len(v))
			var ss float64
			for _, x := range v {
				ss += (x - mean) * (x - mean)
			}
			out[g] = ss / float64(len(v)-1)
			if s.fn == Std {
				out[g] = math.Sqrt(out[g])
			}
		}
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Float64, out, nulls), nil
}
