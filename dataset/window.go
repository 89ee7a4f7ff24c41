package dataset

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/internal/kernel"
)

// WindowFunc is one window function of Window: its value for a row depends
// on the other rows of the row's partition, in the window's order.
type WindowFunc struct {
	fn     string
	column string
	offset int
	rows   int
	as     string
}

// As names the function's output column.
func (w WindowFunc) As(name string) WindowFunc { w.as = name; return w }

func (w WindowFunc) name() string {
	if w.as != "" {
		return w.as
	}
	if w.column == "" {
		return w.fn
	}
	return w.fn + "_" + w.column
}

func (w WindowFunc) String() string {
	switch {
	case w.column == "":
		return w.fn + "() AS " + w.name()
	case w.fn == "lag" || w.fn == "lead":
		return fmt.Sprintf("%s(%s, %d) AS %s", w.fn, w.column, w.offset, w.name())
	}
	if w.rows > 0 {
		return fmt.Sprintf("%s(%s) rows %d AS %s", w.fn, w.column, w.rows, w.name())
	}
	return w.fn + "(" + w.column + ") AS " + w.name()
}

// RowNumber numbers the rows of each partition 1, 2, 3... in the window's
// order (ties in some order), as int64.
func RowNumber() WindowFunc { return WindowFunc{fn: "row_number"} }

// Rank is 1 plus the number of rows of the partition before the row's
// order key (ties share a rank, and the next rank skips: 1 1 3), as int64.
func Rank() WindowFunc { return WindowFunc{fn: "rank"} }

// DenseRank is Rank without gaps (1 1 2).
func DenseRank() WindowFunc { return WindowFunc{fn: "dense_rank"} }

// Lag is the column's value offset rows before the row in its partition
// (NULL where there is none), in the column's type.
func Lag(column string, offset int) WindowFunc {
	return WindowFunc{fn: "lag", column: column, offset: offset}
}

// Lead is the column's value offset rows after the row in its partition.
func Lead(column string, offset int) WindowFunc {
	return WindowFunc{fn: "lead", column: column, offset: offset}
}

// RunningSum is the sum of a numeric column over the partition's rows up
// to the row and its peers (rows with an equal order key), as SQL's
// SUM(c) OVER (PARTITION BY ... ORDER BY ...) with the default frame (RANGE
// BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW); without order keys, the
// whole partition's sum. NULLs are skipped; NULL until the first value.
// Integers sum as int64, floats as float64.
func RunningSum(column string) WindowFunc { return WindowFunc{fn: "sum", column: column} }

// Rows makes a RunningSum, RunningCount or RunningMean a moving one: over
// the row and the n-1 rows before it in its partition's order (SQL's ROWS
// BETWEEN n-1 PRECEDING AND CURRENT ROW; peers are not added), e.g. a
// 7-row moving average. The other functions refuse it.
func (w WindowFunc) Rows(n int) WindowFunc { w.rows = n; return w }

// RunningCount counts a column's non-null values as RunningSum sums them.
func RunningCount(column string) WindowFunc { return WindowFunc{fn: "count", column: column} }

// RunningMean is RunningSum divided by RunningCount, as float64.
func RunningMean(column string) WindowFunc { return WindowFunc{fn: "mean", column: column} }

// WindowFuncByName builds a window function from its plan name:
// row_number, rank, dense_rank (no column), lag, lead (a column and an
// offset, default 1), sum, count, mean (avg) (a column).
func WindowFuncByName(fn, column string, offset int) (WindowFunc, error) {
	switch fn {
	case "row_number", "rank", "dense_rank":
		if column != "" {
			return WindowFunc{}, fmt.Errorf("window function %s takes no column, got %q", fn, column)
		}
		return WindowFunc{fn: fn}, nil
	case "lag", "lead":
		if offset == 0 {
			offset = 1
		}
	case "avg":
		fn = "mean"
	case "sum", "count", "mean":
	default:
		return WindowFunc{}, fmt.Errorf("unknown window function %q (want row_number, rank, dense_rank, lag, lead, sum, count or mean)", fn)
	}
	if column == "" {
		return WindowFunc{}, fmt.Errorf("window function %s needs a column", fn)
	}
	if offset < 0 {
		return WindowFunc{}, fmt.Errorf("window function %s: offset %d is negative", fn, offset)
	}
	return WindowFunc{fn: fn, column: column, offset: offset}, nil
}

// WindowSpec says which rows a window function sees: those of the row's
// partition (equal PartitionBy values; none: all rows), in OrderBy order.
type WindowSpec struct {
	PartitionBy []string
	OrderBy     []SortKey
}

// windowGroup names the group id column Window sorts by.
const windowGroup = "__sluice_window_group"

// Window adds one column per function, computed over each row's partition
// in the spec's order, like SQL's f() OVER (PARTITION BY ... ORDER BY ...).
// The output has the input's columns then the functions'; rows come out
// partition by partition (in no particular order), each in OrderBy order.
//
// It is a GroupBy on the partition keys that collects every row of a
// partition (NULLs included), then a map that sorts each partition and
// computes the functions, so a partition must fit in one task's memory.
// On a cluster the rows hash-exchange by partition keys and each reduce
// task sorts and computes its partitions; with no partition keys one task
// takes all rows.
func (d *Dataset) Window(spec WindowSpec, fns ...WindowFunc) *Dataset {
	if d.err != nil {
		return d
	}
	fail := func(err error) *Dataset { return &Dataset{err: fmt.Errorf("dataset: Window: %w", err), cfg: d.cfg} }
	in := d.node.Schema()
	if len(fns) == 0 {
		return fail(fmt.Errorf("no window functions"))
	}
	for _, c := range spec.PartitionBy {
		if len(in.FieldIndices(c)) == 0 {
			return fail(fmt.Errorf("partition key: %w", unknownColumn(c, in)))
		}
	}
	for _, k := range spec.OrderBy {
		if len(in.FieldIndices(k.Column)) == 0 {
			return fail(fmt.Errorf("order key: %w", unknownColumn(k.Column, in)))
		}
	}
	fields := in.Fields()
	taken := map[string]bool{}
	for _, f := range fields {
		taken[f.Name] = true
	}
	colIdx := make([]int, len(fns))
	for i, w := range fns {
		if taken[w.name()] {
			return fail(fmt.Errorf("output column %q is already a column (use As)", w.name()))
		}
		taken[w.name()] = true
		if w.rows < 0 || (w.rows > 0 && w.fn != "sum" && w.fn != "count" && w.fn != "mean") {
			return fail(fmt.Errorf("%s: a frame of %d rows applies to sum, count and mean, with at least one row", w, w.rows))
		}
		colIdx[i] = -1
		var t arrow.DataType = arrow.PrimitiveTypes.Int64
		nullable := false
		if w.column != "" {
			idx := in.FieldIndices(w.column)
			if len(idx) == 0 {
				return fail(fmt.Errorf("%s: %w", w, unknownColumn(w.column, in)))
			}
			colIdx[i] = idx[0]
			ct := in.Field(idx[0]).Type
			switch w.fn {
			case "lag", "lead":
				t, nullable = ct, true
			case "sum", "mean":
				if !numericType(ct) {
					return fail(fmt.Errorf("%s: column %q is %s, not a number", w, w.column, ct))
				}
				nullable = true
				if w.fn == "mean" || ct.ID() == arrow.FLOAT32 || ct.ID() == arrow.FLOAT64 {
					t = arrow.PrimitiveTypes.Float64
				}
			}
		}
		fields = append(fields, arrow.Field{Name: w.name(), Type: t, Nullable: nullable})
	}
	out := arrow.NewSchema(fields, nil)

	// One row per partition: its keys, then each input column as a list.
	aggs := make([]Agg, in.NumFields())
	for i, f := range in.Fields() {
		aggs[i] = Agg{fn: kernel.CollectAll, column: f.Name, as: fmt.Sprintf("__sluice_window_%d", i)}
	}
	grouped := d.GroupBy(spec.PartitionBy...).Agg(aggs...)
	nk := len(spec.PartitionBy)

	flatFields := append(in.Fields(), arrow.Field{Name: windowGroup, Type: arrow.PrimitiveTypes.Int32})
	flatSchema := arrow.NewSchema(flatFields, nil)
	sortKeys := append([]SortKey{{Column: windowGroup}}, spec.OrderBy...)
	orderIdx := make([]int, len(spec.OrderBy))
	for i, k := range spec.OrderBy {
		orderIdx[i] = in.FieldIndices(k.Column)[0]
	}
	fn := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		// Flatten the partitions' lists into rows with their group id.
		n := int(rec.NumRows())
		if n == 0 {
			return emptyBatch(mem, out), nil
		}
		cols := make([]arrow.Array, 0, len(flatFields))
		defer func() {
			for _, c := range cols {
				c.Release()
			}
		}()
		var gids []int32
		for j := range in.NumFields() {
			list, ok := rec.Column(nk + j).(*array.List)
			if !ok {
				return nil, fmt.Errorf("column %d is %s, not a list", nk+j, rec.Column(nk+j).DataType())
			}
			lo, _ := list.ValueOffsets(0)
			_, hi := list.ValueOffsets(n - 1)
			if j == 0 {
				for i := range n {
					a, b := list.ValueOffsets(i)
					for range b - a {
						gids = append(gids, int32(i))
					}
				}
			}
			if hi-lo != int64(len(gids)) {
				return nil, fmt.Errorf("internal: column %q collected %d values, want %d", in.Field(j).Name, hi-lo, len(gids))
			}
			cols = append(cols, array.NewSlice(list.ListValues(), lo, hi))
		}
		gb := array.NewInt32Builder(mem)
		gb.AppendValues(gids, nil)
		cols = append(cols, gb.NewArray())
		gb.Release()
		flat := array.NewRecordBatch(flatSchema, cols, int64(len(gids)))
		defer flat.Release()
		sorted, err := kernel.Sort(ctx, mem, flatSchema, []arrow.RecordBatch{flat}, sortKeys, 0)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, s := range sorted {
				s.Release()
			}
		}()
		if len(sorted) == 0 {
			return emptyBatch(mem, out), nil
		}
		s := sorted[0]
		return windowEval(mem, s, out, in.NumFields(), orderIdx, fns, colIdx)
	}
	if n := in.NumFields(); n == 0 {
		return fail(fmt.Errorf("the input has no columns"))
	}
	var desc []string
	for _, w := range fns {
		desc = append(desc, w.String())
	}
	var order []string
	for _, k := range spec.OrderBy {
		o := k.Column
		if k.Descending {
			o += " desc"
		}
		order = append(order, o)
	}
	name := fmt.Sprintf("window %s over (partition by [%s] order by [%s])", strings.Join(desc, ", "),
		strings.Join(spec.PartitionBy, ", "), strings.Join(order, ", "))
	res := grouped.MapBatches(fn, MapOptions{Name: name, Schema: out})
	if res.err != nil {
		return fail(res.err)
	}
	return res
}

func numericType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}

// windowEval computes the functions over s, sorted by group then order
// keys; its first nIn columns are the input's, then the group id.
func windowEval(mem memory.Allocator, s arrow.RecordBatch, out *arrow.Schema, nIn int, orderIdx []int, fns []WindowFunc, colIdx []int) (arrow.RecordBatch, error) {
	n := int(s.NumRows())
	gid := s.Column(nIn).(*array.Int32).Int32Values()
	eqs := make([]func(i, j int) bool, len(orderIdx))
	for k, c := range orderIdx {
		eqs[k] = equalFn(s.Column(c))
	}
	// start[i]: the first row of i's partition; peerStart[i], peerEnd[i]:
	// the first and one past the last row with i's order key there.
	start := make([]int, n)
	peerStart := make([]int, n)
	peerEnd := make([]int, n)
	peer := func(i, j int) bool {
		for _, eq := range eqs {
			if !eq(i, j) {
				return false
			}
		}
		return true
	}
	for k := range n {
		if k > 0 && gid[k] == gid[k-1] {
			start[k] = start[k-1]
		} else {
			start[k] = k
		}
	}
	for i := 0; i < n; {
		j := i
		for j < n && gid[j] == gid[i] && peer(i, j) {
			j++
		}
		for k := i; k < j; k++ {
			peerStart[k], peerEnd[k] = i, j
		}
		i = j
	}

	cols := make([]arrow.Array, 0, out.NumFields())
	release := func() {
		for _, c := range cols {
			c.Release()
		}
	}
	for c := range nIn {
		a := s.Column(c)
		a.Retain()
		cols = append(cols, a)
	}
	for f, w := range fns {
		var a arrow.Array
		switch w.fn {
		case "row_number", "rank", "dense_rank":
			b := array.NewInt64Builder(mem)
			b.Reserve(n)
			dense := int64(0)
			for i := range n {
				switch {
				case w.fn == "row_number":
					b.UnsafeAppend(int64(i - start[i] + 1))
				case w.fn == "rank":
					b.UnsafeAppend(int64(peerStart[i] - start[i] + 1))
				default:
					if i == start[i] {
						dense = 1
					} else if peerStart[i] == i {
						dense++
					}
					b.UnsafeAppend(dense)
				}
			}
			a = b.NewArray()
			b.Release()
		case "lag", "lead":
			src := s.Column(colIdx[f])
			null := array.MakeArrayOfNull(mem, src.DataType(), 1)
			both, err := array.Concatenate([]arrow.Array{src, null}, mem)
			null.Release()
			if err != nil {
				release()
				return nil, err
			}
			idx := make([]int32, n)
			for i := range n {
				j := i - w.offset
				if w.fn == "lead" {
					j = i + w.offset
				}
				if j < start[i] || j >= n || gid[j] != gid[i] {
					j = n
				}
				idx[i] = int32(j)
			}
			one := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "v", Type: src.DataType(), Nullable: true}}, nil), []arrow.Array{both}, int64(n+1))
			both.Release()
			taken, err := kernel.Take(mem, one, idx)
			one.Release()
			if err != nil {
				release()
				return nil, err
			}
			a = taken.Column(0)
			a.Retain()
			taken.Release()
		default:
			a = runningAgg(mem, w.fn, w.rows, s.Column(colIdx[f]), out.Field(nIn+f).Type, start, peerEnd)
		}
		cols = append(cols, a)
	}
	res := array.NewRecordBatch(out, cols, int64(n))
	release()
	return res, nil
}

// runningAgg is sum, count or mean over each row's frame: the partition's
// rows up to the row's last peer, or with rows > 0 the row and the rows-1
// before it in its partition. Both frames only move forward within a
// partition, so the sums slide: values enter at the frame's end and leave
// at its start.
func runningAgg(mem memory.Allocator, fn string, rows int, col arrow.Array, t arrow.DataType, start, peerEnd []int) arrow.Array {
	n := len(start)
	val := func(i int) (float64, int64) {
		switch c := col.(type) {
		case *array.Int8:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Int16:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Int32:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Int64:
			return float64(c.Value(i)), c.Value(i)
		case *array.Uint8:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Uint16:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Uint32:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Uint64:
			return float64(c.Value(i)), int64(c.Value(i))
		case *array.Float32:
			return float64(c.Value(i)), 0
		case *array.Float64:
			return c.Value(i), 0
		}
		return 0, 0
	}
	fb := array.NewFloat64Builder(mem)
	ib := array.NewInt64Builder(mem)
	defer fb.Release()
	defer ib.Release()
	var fsum float64
	var isum, cnt int64
	lo, hi := 0, 0 // the frame summed now: [lo, hi)
	step := func(k, sign int) {
		if col.IsValid(k) {
			f, x := val(k)
			fsum += float64(sign) * f
			isum += int64(sign) * x
			cnt += int64(sign)
		}
	}
	for i := range n {
		if i == start[i] {
			fsum, isum, cnt = 0, 0, 0
			lo, hi = i, i
		}
		wantLo, wantHi := start[i], peerEnd[i]
		if rows > 0 {
			wantLo, wantHi = max(start[i], i-rows+1), i+1
		}
		for ; hi < wantHi; hi++ {
			step(hi, 1)
		}
		for ; lo < wantLo; lo++ {
			step(lo, -1)
		}
		switch {
		case fn == "count":
			ib.Append(cnt)
		case cnt == 0:
			if t.ID() == arrow.INT64 {
				ib.AppendNull()
			} else {
				fb.AppendNull()
			}
		case fn == "mean" && t.ID() == arrow.FLOAT64 && isInt(col):
			fb.Append(float64(isum) / float64(cnt)) // exact sums of integers
		case fn == "mean":
			fb.Append(fsum / float64(cnt))
		case t.ID() == arrow.INT64:
			ib.Append(isum)
		default:
			fb.Append(fsum)
		}
	}
	if t.ID() == arrow.INT64 {
		return ib.NewArray()
	}
	return fb.NewArray()
}

func isInt(a arrow.Array) bool {
	switch a.DataType().ID() {
	case arrow.FLOAT32, arrow.FLOAT64:
		return false
	}
	return true
}

// equalFn compares two rows of a for equality, NULL equal to NULL.
func equalFn(a arrow.Array) func(i, j int) bool {
	nulls := func(i, j int) (bool, bool) {
		ni, nj := a.IsNull(i), a.IsNull(j)
		return ni || nj, ni && nj
	}
	var eq func(i, j int) bool
	switch c := a.(type) {
	case *array.Int64:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	case *array.Int32:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	case *array.Float64:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	case *array.String:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	case *array.LargeString:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	case *array.Timestamp:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	case *array.Date32:
		eq = func(i, j int) bool { return c.Value(i) == c.Value(j) }
	default:
		eq = func(i, j int) bool { return a.ValueStr(i) == a.ValueStr(j) }
	}
	return func(i, j int) bool {
		if some, both := nulls(i, j); some {
			return both
		}
		return eq(i, j)
	}
}

// emptyBatch is a batch of no rows.
func emptyBatch(mem memory.Allocator, s *arrow.Schema) arrow.RecordBatch {
	cols := emptyColumns(mem, s)
	rec := array.NewRecordBatch(s, cols, 0)
	for _, c := range cols {
		c.Release()
	}
	return rec
}
