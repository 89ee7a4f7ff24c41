package local

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
	"github.com/sluicehq/sluice/storage"
)

// slotBatches is how many batches a task ahead of the ordered collector may
// queue (within the memory budget). Four keep both workers reading; 16 cost
// etl/sales Q3 and Q4 150-250 MiB more peak RSS on the dev VM for no CPU.
const slotBatches = 4

type scanOp struct {
	node *plan.Scan
	st   *OpStats
	dict []string  // string columns the consumer takes dictionary-encoded (see keepDict)
	topk *scanTopK // the bound of a top-k above, for late materialization (see topKBound)
}

// scanTopK is the first sort key of a top-k over a scan: its expression
// over file columns and the bound the top-k keeps.
type scanTopK struct {
	key   string   // the expression, in the expression language
	cols  []string // the file columns it reads
	bound *kernel.TopKBound
}

// task is one split of one file.
type task struct {
	file  plan.File
	split format.Split
}

func (s *scanOp) run(ctx context.Context, x *exec, out chan<- block) error {
	s.st.begin()
	defer s.st.end()
	r, err := newScanReader(s.node)
	if err != nil {
		return wrapOp(s.st.Name, err)
	}
	r.opts.Dict = s.dict
	if err := r.setLate(s.topk); err != nil {
		return wrapOp(s.st.Name, err)
	}
	tasks, err := s.plan(ctx, x, r)
	if err != nil {
		return wrapOp(s.st.Name, err)
	}
	s.st.setTotals(tasks)
	var rows atomic.Int64
	limited := func() bool { return s.node.Limit >= 0 && rows.Load() >= s.node.Limit }
	read := func(ctx context.Context, t task, emit func(arrow.RecordBatch) error) error {
		if limited() {
			return nil
		}
		return r.read(ctx, x, t, s.st, func(rec arrow.RecordBatch) error {
			rows.Add(rec.NumRows())
			s.st.out(rec)
			return emit(rec)
		})
	}
	return wrapOp(s.st.Name, x.runTasks(ctx, out, len(tasks), func(ctx context.Context, i int, emit func(arrow.RecordBatch) error) error {
		return read(ctx, tasks[i], emit)
	}))
}

// runTasks runs n tasks on the configured number of goroutines. Each task
// emits batches; with PreserveOrder they reach out in task order (a task
// that is ahead waits on its own small channel).
func (x *exec) runTasks(ctx context.Context, out chan<- block, n int, do func(ctx context.Context, i int, emit func(arrow.RecordBatch) error) error) error {
	g, ctx := errgroup.WithContext(ctx)
	next := atomic.Int64{}
	workers := min(x.cfg.Concurrency, n)
	if !x.cfg.PreserveOrder {
		for range workers {
			g.Go(func() error {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := do(ctx, i, func(rec arrow.RecordBatch) error { return x.produce(ctx, out, rec) }); err != nil {
						return err
					}
				}
				return nil
			})
		}
		return g.Wait()
	}
	// Each task fills its own slot; the collector empties the slots in task
	// order. Tasks ahead of the collector keep reading into their slots
	// while the budget has room; the task the collector waits on (the head)
	// never waits on the budget, so a budget spent by tasks ahead cannot
	// stall it.
	slots := make([]chan block, n)
	for i := range slots {
		slots[i] = make(chan block, slotBatches)
	}
	var head atomic.Int64
	defer func() { // what a failed run left behind
		for _, s := range slots {
		drain:
			for {
				select {
				case b, ok := <-s:
					if !ok {
						break drain
					}
					x.drop(b)
				default:
					break drain
				}
			}
		}
	}()
	emitTo := func(ctx context.Context, i int, rec arrow.RecordBatch) error {
		size := kernel.BatchBytes(rec)
		for head.Load() != int64(i) {
			ok, wait := x.budget.tryAcquire(size)
			if ok {
				return x.send(ctx, slots[i], block{rec: rec, acct: size})
			}
			select {
			case <-wait:
			case <-ctx.Done():
				rec.Release()
				return ctx.Err()
			}
		}
		x.budget.adjust(size)
		return x.send(ctx, slots[i], block{rec: rec, acct: size})
	}
	for range workers {
		g.Go(func() error {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				err := do(ctx, i, func(rec arrow.RecordBatch) error { return emitTo(ctx, i, rec) })
				close(slots[i])
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		for i, s := range slots {
			head.Store(int64(i))
			x.budget.wake() // a worker waiting on the budget may now be the head
			for b := range s {
				if err := x.send(ctx, out, b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return g.Wait()
}

// scanReader reads splits of one Scan node: the needed file columns, plus
// partition columns, filtered, in the node's output order.
type scanReader struct {
	node     *plan.Scan
	opts     format.ReadOptions
	read1    bool          // no file column needed: read one and drop it
	schema   *arrow.Schema // of a batch after partition columns are added
	filters  []*expr.Bound // bound against schema
	outIdx   []int         // output columns, as indices into schema
	outSch   *arrow.Schema
	partOnly []*expr.Bound // filters over partition columns only, bound against FullSchema
}

func newScanReader(n *plan.Scan) (*scanReader, error) {
	need := map[string]bool{}
	outCols := n.Columns
	if outCols == nil {
		for _, f := range n.FullSchema().Fields() {
			outCols = append(outCols, f.Name)
		}
	}
	for _, c := range outCols {
		need[c] = true
	}
	for _, f := range n.Filters {
		for _, c := range f.Columns() {
			need[c] = true
		}
	}
	r := &scanReader{node: n, opts: n.ReadOpts}
	var fields []arrow.Field
	r.opts.Columns = []string{}
	for _, f := range n.FileSchema.Fields() {
		if need[f.Name] {
			r.opts.Columns = append(r.opts.Columns, f.Name)
			fields = append(fields, f)
		}
	}
	// With no column needed, Parquet counts rows from its footer; the
	// text formats must parse a column to count lines.
	if len(r.opts.Columns) == 0 && n.FileSchema.NumFields() > 0 && n.Format.Name() != "parquet" {
		r.read1 = true
		r.opts.Columns = []string{n.FileSchema.Field(0).Name}
	}
	for _, c := range n.PartCols {
		fields = append(fields, arrow.Field{Name: c, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	r.schema = arrow.NewSchema(fields, nil)
	for _, f := range n.Filters {
		b, err := expr.Compile(f.String(), r.schema)
		if err != nil {
			return nil, err
		}
		r.filters = append(r.filters, b)
		if len(n.PartCols) > 0 && !slices.ContainsFunc(f.Columns(), func(c string) bool { return !slices.Contains(n.PartCols, c) }) {
			r.partOnly = append(r.partOnly, f)
		}
	}
	for _, c := range outCols {
		r.outIdx = append(r.outIdx, r.schema.FieldIndices(c)[0])
	}
	r.outSch = n.Schema()
	if len(n.Filters) > 0 {
		r.opts.Prune = func(stats func(string) (format.ColumnStats, bool)) bool {
			for _, f := range n.Filters {
				if !f.MayMatch(func(c string) (expr.Stats, bool) {
					s, ok := stats(c)
					return expr.Stats{Min: s.Min, Max: s.Max, NullCount: s.NullCount, RowCount: s.RowCount, HasMinMax: s.HasMinMax}, ok
				}) {
					return false
				}
			}
			return true
		}
	}
	return r, nil
}

// setLate lets a Parquet scan decode the filters' columns (and those of
// a top-k's key, tk) first and the others only for the rows the filters
// keep and the top-k's bound does not drop (format.ReadOptions.Late). Off
// when a filter reads a partition column or a column read dictionary-encoded
// (its batches would not have the type the filter was bound with); tk alone
// is left out for the same reasons. The scan still applies its filters to
// the rows that come back.
func (r *scanReader) setLate(tk *scanTopK) error {
	if len(r.filters) == 0 && tk == nil || r.node.Format.Name() != "parquet" || r.read1 {
		return nil
	}
	usable := func(c string) bool {
		return !slices.Contains(r.node.PartCols, c) && !slices.Contains(r.opts.Dict, c) &&
			len(r.node.FileSchema.FieldIndices(c)) == 1 && slices.Contains(r.opts.Columns, c)
	}
	cols := map[string]bool{}
	for _, f := range r.node.Filters {
		for _, c := range f.Columns() {
			if !usable(c) {
				return nil
			}
			cols[c] = true
		}
	}
	if tk != nil && !slices.ContainsFunc(tk.cols, func(c string) bool { return !usable(c) }) {
		for _, c := range tk.cols {
			cols[c] = true
		}
	} else {
		tk = nil
	}
	var fields []arrow.Field
	for _, f := range r.node.FileSchema.Fields() {
		if cols[f.Name] {
			r.opts.LateColumns = append(r.opts.LateColumns, f.Name)
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 || len(fields) == len(r.opts.Columns) {
		r.opts.LateColumns = nil
		return nil
	}
	sch := arrow.NewSchema(fields, nil)
	var bound []*expr.Bound
	for _, f := range r.node.Filters {
		b, err := expr.Compile(f.String(), sch)
		if err != nil {
			return err
		}
		bound = append(bound, b)
	}
	var key *expr.Bound
	if tk != nil {
		var err error
		if key, err = expr.Compile(tk.key, sch); err != nil {
			return err
		}
	}
	r.opts.Late = func(ctx context.Context, rec arrow.RecordBatch) ([]bool, error) {
		keep := make([]bool, rec.NumRows())
		for i := range keep {
			keep[i] = true
		}
		for _, b := range bound {
			arr, err := b.Eval(ctx, memory.DefaultAllocator, rec)
			if err != nil {
				return nil, err
			}
			m, ok := arr.(*array.Boolean)
			if !ok {
				arr.Release()
				return nil, fmt.Errorf("local: filter %s gave %s, not boolean", b, arr.DataType())
			}
			for i := range keep {
				keep[i] = keep[i] && m.IsValid(i) && m.Value(i)
			}
			arr.Release()
		}
		if key != nil {
			arr, err := key.Eval(ctx, memory.DefaultAllocator, rec)
			if err != nil {
				return nil, err
			}
			tk.bound.Filter(arr, keep)
			arr.Release()
		}
		return keep, nil
	}
	return nil
}

// setTotals records what the scan will read, for the progress line: the
// rows when every split knows them (Parquet metadata, after pruning), else
// the bytes (CSV and JSONL files).
func (st *OpStats) setTotals(tasks []task) {
	var rows, bytes int64
	for _, t := range tasks {
		if t.split.Rows < 0 || rows < 0 {
			rows = -1
		} else {
			rows += t.split.Rows
		}
		bytes += t.split.Size
	}
	if rows >= 0 && len(tasks) > 0 {
		st.RowsTotal.Store(rows)
	} else if rows < 0 {
		st.BytesTotal.Store(bytes)
	}
}

// keepFile reports whether a file's partition values may satisfy the
// filters, so pruned files are never opened.
func (r *scanReader) keepFile(f plan.File) bool {
	for _, b := range r.partOnly {
		if !f.MayMatch(b) {
			return false
		}
	}
	return true
}

// plan lists the splits of every surviving file, reading footers in parallel.
func (s *scanOp) plan(ctx context.Context, x *exec, r *scanReader) ([]task, error) {
	var files []plan.File
	for _, f := range s.node.Files {
		if r.keepFile(f) {
			files = append(files, f)
		}
	}
	per := make([][]format.Split, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(4, x.cfg.Concurrency))
	for i, f := range files {
		g.Go(func() error {
			fh, err := x.open(gctx, f.Path, s.st)
			if err != nil {
				return err
			}
			defer fh.Close()
			per[i], err = s.node.Format.Splits(gctx, fh, r.opts)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var tasks []task
	for i, f := range files {
		for _, sp := range per[i] {
			tasks = append(tasks, task{file: f, split: sp})
		}
	}
	return tasks, nil
}

// open opens a path, counting the bytes read into st.
func (x *exec) open(ctx context.Context, path string, st *OpStats) (storage.File, error) {
	fs, err := x.fs(path)
	if err != nil {
		return nil, err
	}
	f, err := fs.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return &countedFile{File: f, st: st}, nil
}

type countedFile struct {
	storage.File
	st *OpStats
}

func (f *countedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.st.BytesIn.Add(int64(n))
	return n, err
}

func (r *scanReader) read(ctx context.Context, x *exec, t task, st *OpStats, emit func(arrow.RecordBatch) error) error {
	fh, err := x.open(ctx, t.file.Path, st)
	if err != nil {
		return err
	}
	defer fh.Close()
	opts := r.opts
	if opts.BatchRows == 0 {
		opts.BatchRows = x.cfg.BatchRows
	}
	// A local file's pages are read as decoded: fetching a row group up
	// front saves requests only on object stores, and here cost etl/sales
	// Q2 a fresh 16 MiB buffer per row group (2026-12-07, BENCHMARKS.md).
	opts.OnDemand = localPath(t.file.Path)
	// Rows in are the rows decoded, rows out those the pushed-down filters
	// kept, so the summary's scan line shows what they dropped. With late
	// materialization a batch reaches emit trimmed to the rows Late kept
	// (or not at all), so its rows are counted when Late sees the whole
	// batch; a file the format reads without Late counts them at emit.
	var late atomic.Bool
	if opts.Late != nil {
		filter := opts.Late
		opts.Late = func(ctx context.Context, rec arrow.RecordBatch) ([]bool, error) {
			late.Store(true)
			st.RowsIn.Add(rec.NumRows())
			var keep []bool
			err := st.work(func() error {
				var err error
				keep, err = filter(ctx, rec)
				return err
			})
			if err != nil {
				// Named as the eager path names a filter's error.
				return nil, fmt.Errorf("%s: %w", t.file.Path, err)
			}
			return keep, nil
		}
	}
	return r.node.Format.Read(ctx, fh, t.split, opts, x.mem, func(rec arrow.RecordBatch) error {
		if !late.Load() {
			st.RowsIn.Add(rec.NumRows())
		}
		var out arrow.RecordBatch
		err := st.work(func() error {
			var err error
			out, err = r.finish(ctx, x, t.file, rec)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", t.file.Path, err)
		}
		if out == nil {
			return nil
		}
		return emit(out)
	})
}

// checkTypes reports a file whose columns differ from the scan's schema,
// which comes from the first file, instead of letting NewRecordBatch panic.
// A column asked for dictionary-encoded may be a dictionary of its type.
func checkTypes(s *arrow.Schema, cols []arrow.Array, dict []string) error {
	if len(cols) != s.NumFields() {
		return fmt.Errorf("%d columns where the dataset's schema (from its first file) has %d", len(cols), s.NumFields())
	}
	for i, c := range cols {
		f := s.Field(i)
		if d, ok := c.DataType().(*arrow.DictionaryType); ok && slices.Contains(dict, f.Name) && arrow.TypeEqual(d.ValueType, f.Type) {
			continue
		}
		if !arrow.TypeEqual(c.DataType(), f.Type) {
			return fmt.Errorf("column %q is %s here but %s in the dataset's schema (from its first file): rewrite the file with that type, or read it separately and cast", f.Name, c.DataType(), f.Type)
		}
	}
	return nil
}

// finish adds partition columns, applies filters and orders the columns.
// It consumes rec.
func (r *scanReader) finish(ctx context.Context, x *exec, f plan.File, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	n := rec.NumRows()
	cols := rec.Columns()
	if r.read1 {
		cols = nil
	}
	cols = slices.Clone(cols)
	var owned []arrow.Array
	for _, c := range r.node.PartCols {
		b := array.NewStringBuilder(x.mem)
		v, null := "", false
		for _, p := range f.Partition {
			if p.Key == c {
				v, null = p.Value, p.Null
			}
		}
		b.Reserve(int(n))
		if null {
			b.AppendNulls(int(n))
		} else {
			for range n {
				b.Append(v)
			}
		}
		a := b.NewArray()
		b.Release()
		owned = append(owned, a)
		cols = append(cols, a)
	}
	if err := checkTypes(r.schema, cols, r.opts.Dict); err != nil {
		rec.Release()
		for _, a := range owned {
			a.Release()
		}
		return nil, err
	}
	full := array.NewRecordBatch(format.BatchSchema(r.schema, cols), cols, n)
	rec.Release()
	for _, a := range owned {
		a.Release()
	}
	for _, b := range r.filters {
		next, err := b.Filter(ctx, x.mem, full)
		full.Release()
		if err != nil {
			return nil, err
		}
		full = next
	}
	if full.NumRows() == 0 {
		full.Release()
		return nil, nil
	}
	outCols := make([]arrow.Array, len(r.outIdx))
	for i, j := range r.outIdx {
		outCols[i] = full.Column(j)
	}
	out := array.NewRecordBatch(format.BatchSchema(r.outSch, outCols), outCols, full.NumRows())
	full.Release()
	return out, nil
}

// localPath says whether storage.For opens p on the local file system: a
// plain path or a file:// URL, not an object store's URL.
func localPath(p string) bool {
	return !strings.Contains(p, "://") || strings.HasPrefix(p, "file://")
}
