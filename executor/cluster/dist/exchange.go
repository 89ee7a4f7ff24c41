package dist

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/internal/kernel"
)

// SampleRows is the most rows a task's sample block holds.
const SampleRows = 1000

// Column names the exchange adds to the key columns it sorts.
const (
	weightColumn = "__sluice_weight" // sample blocks: the rows a sample row stands for
	rowColumn    = "__sluice_row"    // range split: the row's index, -1 for a boundary
)

// partition cuts a task's rows into n output partitions as s says. It
// consumes rows; the caller releases the returned batches.
func partition(ctx context.Context, mem memory.Allocator, s *stage, t TaskSpec, n int, schema *arrow.Schema, rows, samples []arrow.RecordBatch) ([][]arrow.RecordBatch, error) {
	parts := make([][]arrow.RecordBatch, n)
	switch s.out {
	case outRandom:
		// Seeded by the stage and task, not the attempt: a task run again
		// (its blocks lost) makes the same blocks.
		defer releaseAll(rows)
		rng := rand.New(rand.NewPCG(uint64(s.seed), uint64(t.Stage)<<32|uint64(t.Task)))
		idx := make([][]int32, n)
		for _, r := range rows {
			for p := range idx {
				idx[p] = idx[p][:0]
			}
			for i := range int32(r.NumRows()) {
				p := rng.IntN(n)
				idx[p] = append(idx[p], i)
			}
			for p, ix := range idx {
				if len(ix) == 0 {
					continue
				}
				rec, err := kernel.Take(mem, r, ix)
				if err != nil {
					releaseParts(parts)
					return nil, err
				}
				parts[p] = append(parts[p], rec)
			}
		}
		return parts, nil
	case outSlices:
		defer releaseAll(rows)
		var total int64
		for _, r := range rows {
			total += r.NumRows()
		}
		// Part p holds the task's rows [p·total/n, (p+1)·total/n).
		var at int64
		for _, r := range rows {
			for off := int64(0); off < r.NumRows(); {
				p := int((at + off) * int64(n) / total)
				end := min(r.NumRows(), (int64(p+1)*total+int64(n)-1)/int64(n)-at)
				if end <= off {
					end = off + 1
				}
				parts[p] = append(parts[p], r.NewSlice(off, end))
				off = end
			}
			at += r.NumRows()
		}
		return parts, nil
	case outSingle, outSample:
		if n != 1 {
			releaseAll(rows)
			return nil, fmt.Errorf("%w: stage of one output partition laid out with %d", ErrTask, n)
		}
		parts[0] = rows
		return parts, nil
	case outHash:
		defer releaseAll(rows)
		for _, r := range rows {
			ps, err := kernel.HashPartition(mem, r, s.keys, n)
			if err != nil {
				releaseParts(parts)
				return nil, err
			}
			for p, rec := range ps {
				if rec != nil {
					parts[p] = append(parts[p], rec)
				}
			}
		}
		return parts, nil
	case outRange:
		defer releaseAll(rows)
		bounds, err := boundaries(ctx, mem, schema, s.sortKeys, n, samples)
		if err != nil {
			return nil, err
		}
		if bounds == nil {
			for _, r := range rows {
				r.Retain()
			}
			parts[0] = rows
			return parts, nil
		}
		defer bounds.Release()
		return splitRanges(ctx, mem, schema, s.sortKeys, n, rows, bounds)
	}
	releaseAll(rows)
	return nil, fmt.Errorf("%w: stage has no output blocks", ErrTask)
}

func releaseParts(parts [][]arrow.RecordBatch) {
	for _, p := range parts {
		releaseAll(p)
	}
}

// keyFields are the fields of the sort keys' columns, in key order. A
// column named twice is taken once.
func keyFields(schema *arrow.Schema, keys []kernel.SortKey) ([]arrow.Field, []int) {
	var fields []arrow.Field
	var idx []int
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.Column] {
			continue
		}
		seen[k.Column] = true
		if i := schema.FieldIndices(k.Column); len(i) > 0 {
			fields = append(fields, schema.Field(i[0]))
			idx = append(idx, i[0])
		}
	}
	return fields, idx
}

// sampleSchema is the schema of a sample block: the sort keys' columns and
// the weight of each sample row.
func sampleSchema(schema *arrow.Schema, keys []kernel.SortKey) *arrow.Schema {
	fields, _ := keyFields(schema, keys)
	return arrow.NewSchema(append(fields, arrow.Field{Name: weightColumn, Type: arrow.PrimitiveTypes.Float64}), nil)
}

// withColumn returns rec's columns at idx followed by extra (if not nil),
// as a batch of schema.
func withColumn(schema *arrow.Schema, rec arrow.RecordBatch, idx []int, extra arrow.Array) arrow.RecordBatch {
	cols := make([]arrow.Array, 0, len(idx)+1)
	for _, i := range idx {
		cols = append(cols, rec.Column(i))
	}
	if extra != nil {
		cols = append(cols, extra)
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows())
}

// makeSample picks up to SampleRows evenly spaced rows of rows' sort keys,
// each weighted by the rows it stands for, so that a task with more rows
// counts for more in the boundaries.
func makeSample(mem memory.Allocator, schema *arrow.Schema, rows []arrow.RecordBatch, keys []kernel.SortKey) ([]arrow.RecordBatch, error) {
	var total int64
	for _, r := range rows {
		total += r.NumRows()
	}
	m := min(total, SampleRows)
	if m == 0 {
		return nil, nil
	}
	weight := float64(total) / float64(m)
	out := sampleSchema(schema, keys)
	fields, idx := keyFields(schema, keys)
	keySchema := arrow.NewSchema(fields, nil)
	var res []arrow.RecordBatch
	var off int64
	j := int64(0)
	for _, r := range rows {
		var take []int32
		for ; j < m; j++ {
			at := (2*j + 1) * total / (2 * m)
			if at >= off+r.NumRows() {
				break
			}
			take = append(take, int32(at-off))
		}
		off += r.NumRows()
		if len(take) == 0 {
			continue
		}
		w := array.NewFloat64Builder(mem)
		for range take {
			w.Append(weight)
		}
		wcol := w.NewArray()
		w.Release()
		keyed := withColumn(keySchema, r, idx, nil)
		picked, err := kernel.Take(mem, keyed, take)
		keyed.Release()
		if err != nil {
			wcol.Release()
			releaseAll(res)
			return nil, err
		}
		cols := append([]arrow.Array(nil), picked.Columns()...)
		res = append(res, array.NewRecordBatch(out, append(cols, wcol), int64(len(take))))
		picked.Release()
		wcol.Release()
	}
	return res, nil
}

// boundaries returns the n-1 sort-key rows that cut the sampled rows into n
// ranges of about equal weight, or nil for one range or no samples. Every
// split task computes it from the same samples in the same order, so all
// get the same boundaries.
func boundaries(ctx context.Context, mem memory.Allocator, schema *arrow.Schema, keys []kernel.SortKey, n int, samples []arrow.RecordBatch) (arrow.RecordBatch, error) {
	if n <= 1 {
		return nil, nil
	}
	ss := sampleSchema(schema, keys)
	sorted, err := kernel.Sort(ctx, mem, ss, samples, keys, 0)
	if err != nil {
		return nil, err
	}
	defer releaseAll(sorted)
	if len(sorted) == 0 || sorted[0].NumRows() == 0 {
		return nil, nil
	}
	all := sorted[0]
	w := all.Column(ss.NumFields() - 1).(*array.Float64).Float64Values()
	var total float64
	for _, x := range w {
		total += x
	}
	picks := make([]int32, 0, n-1)
	var cum float64
	i := 0
	for j := 1; j < n; j++ {
		target := total * float64(j) / float64(n)
		for i < len(w)-1 && cum+w[i] < target {
			cum += w[i]
			i++
		}
		picks = append(picks, int32(i))
	}
	b, err := kernel.Take(mem, all, picks)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// splitRanges cuts rows into n ranges at bounds (n-1 rows of the sample
// schema): a row goes to range r when exactly r boundaries sort at or
// before it, so a row equal to a boundary goes above it. The rows are
// sorted together with the boundaries by the kernel's own (stable) sort,
// boundaries first, so range membership agrees with the order the reduce
// tasks sort by. Within a range rows keep their input order.
func splitRanges(ctx context.Context, mem memory.Allocator, schema *arrow.Schema, keys []kernel.SortKey, n int, rows []arrow.RecordBatch, bounds arrow.RecordBatch) ([][]arrow.RecordBatch, error) {
	fields, idx := keyFields(schema, keys)
	ks := arrow.NewSchema(append(fields, arrow.Field{Name: rowColumn, Type: arrow.PrimitiveTypes.Int64}), nil)
	var total int64
	for _, r := range rows {
		total += r.NumRows()
	}
	seq := func(from, count int64) arrow.Array {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.Reserve(int(count))
		for i := range count {
			if from < 0 {
				b.UnsafeAppend(-1)
			} else {
				b.UnsafeAppend(from + i)
			}
		}
		return b.NewArray()
	}
	boundIdx := make([]int, len(fields))
	for i := range boundIdx {
		boundIdx[i] = i
	}
	var keyed []arrow.RecordBatch
	defer func() { releaseAll(keyed) }()
	marks := seq(-1, bounds.NumRows())
	keyed = append(keyed, withColumn(ks, bounds, boundIdx, marks))
	marks.Release()
	var off int64
	for _, r := range rows {
		ids := seq(off, r.NumRows())
		keyed = append(keyed, withColumn(ks, r, idx, ids))
		ids.Release()
		off += r.NumRows()
	}
	sorted, err := kernel.Sort(ctx, mem, ks, keyed, keys, 0)
	if err != nil {
		return nil, err
	}
	part := make([]int32, total)
	passed := int32(0)
	for _, b := range sorted {
		for _, x := range b.Column(len(fields)).(*array.Int64).Int64Values() {
			if x < 0 {
				passed++
			} else {
				part[x] = passed
			}
		}
	}
	releaseAll(sorted)

	parts := make([][]arrow.RecordBatch, n)
	off = 0
	for _, r := range rows {
		take := make([][]int32, n)
		for i := range r.NumRows() {
			p := part[off+i]
			take[p] = append(take[p], int32(i))
		}
		off += r.NumRows()
		for p, t := range take {
			if len(t) == 0 {
				continue
			}
			if len(t) == int(r.NumRows()) {
				r.Retain()
				parts[p] = append(parts[p], r)
				continue
			}
			rec, err := kernel.Take(mem, r, t)
			if err != nil {
				releaseParts(parts)
				return nil, err
			}
			parts[p] = append(parts[p], rec)
		}
	}
	return parts, nil
}
