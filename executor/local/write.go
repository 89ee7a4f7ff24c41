package local

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/internal/kernel"
	"github.com/sluicehq/sluice/storage"
)

// staged is a written file awaiting the job's commit.
type staged struct {
	path   string
	upload storage.Upload
	w      format.Writer
	closed bool
}

type writeOp struct {
	node *plan.Write
	in   op
	st   *OpStats
}

// run writes every batch under staged names; the files are published by
// commit only after the whole input succeeded, and aborted otherwise.
func (w *writeOp) run(ctx context.Context, x *exec, out chan<- block) error {
	n := w.node
	fs, err := x.fs(n.Path)
	if err != nil {
		return wrapOp(w.st.Name, err)
	}
	if err := commit.Check(ctx, fs, n.Path, n.Mode, n.Input); err != nil {
		return wrapOp(w.st.Name, err)
	}
	existing, err := fs.List(ctx, n.Path)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return wrapOp(w.st.Name, err)
	}
	// A write that fails leaves no directory it made behind.
	defer commit.Cleanup(n.Path)()
	w.st.begin()
	defer w.st.end()

	var mu sync.Mutex
	var files []*staged
	abort := func() {
		ctx := context.WithoutCancel(ctx)
		for _, f := range files {
			if !f.closed {
				_ = f.w.Close()
			}
			_ = f.upload.Abort(ctx)
		}
	}
	dirCols := n.PartitionBy
	if n.DirBy != "" {
		dirCols = append([]string{n.DirBy}, n.PartitionBy...)
	}
	dataSchema := dropColumns(n.Input.Schema(), dirCols)

	g, gctx := errgroup.WithContext(ctx)
	in := x.start(gctx, g, w.in)
	writers := x.cfg.Concurrency
	if x.cfg.PreserveOrder && sorted(n.Input) {
		// One writer: its files, in name order, hold the rows in order.
		writers = 1
	}
	for worker := range writers {
		g.Go(func() error {
			open := map[string]*staged{}
			seq := 0
			get := func(dir string) (*staged, error) {
				if f := open[dir]; f != nil {
					return f, nil
				}
				name := fmt.Sprintf("part-%05d-%04d-%s.%s", worker, seq, x.jobID, ext(n.Format))
				seq++
				path := storage.Join(n.Path, dir, name)
				if dir == "" {
					path = storage.Join(n.Path, name)
				}
				u, err := fs.Create(gctx, path)
				if err != nil {
					return nil, err
				}
				fw, err := format.NewWriter(n.Format, u, dataSchema, n.Options, x.mem)
				if err != nil {
					_ = u.Close()
					_ = u.Abort(context.WithoutCancel(gctx))
					return nil, err
				}
				f := &staged{path: path, upload: u, w: fw}
				mu.Lock()
				files = append(files, f)
				mu.Unlock()
				open[dir] = f
				return f, nil
			}
			// write splits rec across files so none holds more than
			// RowsPerFile rows.
			write := func(dir string, rec arrow.RecordBatch) error {
				for off := int64(0); ; {
					f, err := get(dir)
					if err != nil {
						return err
					}
					rows := rec.NumRows() - off
					if n.RowsPerFile > 0 {
						rows = min(rows, n.RowsPerFile-f.w.Rows())
					}
					part := rec
					if rows < rec.NumRows() {
						part = rec.NewSlice(off, off+rows)
					}
					err = f.w.Write(part)
					if part != rec {
						part.Release()
					}
					if err != nil {
						return fmt.Errorf("%s: %w", f.path, err)
					}
					off += rows
					if n.RowsPerFile > 0 && f.w.Rows() >= n.RowsPerFile {
						delete(open, dir)
						if err := closeStaged(f); err != nil {
							return err
						}
					}
					if off >= rec.NumRows() {
						return nil
					}
				}
			}
			for b := range in {
				w.st.RowsIn.Add(b.rec.NumRows())
				err := w.st.work(func() error {
					if len(dirCols) == 0 {
						return write("", b.rec)
					}
					return partition(x, b.rec, dirCols, n.DirBy != "", dataSchema, write)
				})
				x.drop(b)
				if err != nil {
					return err
				}
			}
			for _, f := range open {
				if err := closeStaged(f); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		abort()
		return wrapOp(w.st.Name, err)
	}
	if err := w.commit(ctx, x, fs, existing, files); err != nil {
		abort()
		return wrapOp(w.st.Name, err)
	}
	return nil
}

// sorted reports whether n's rows come out of a sort, through operators
// that keep their order.
func sorted(n plan.Node) bool {
	for {
		switch m := n.(type) {
		case *plan.Sort:
			return true
		case *plan.Filter, *plan.Project, *plan.Limit:
			n = m.Children()[0]
		case *plan.MapBatches:
			if !m.RowLocal {
				return false
			}
			n = m.Input
		default:
			return false
		}
	}
}

func closeStaged(f *staged) error {
	f.closed = true
	if err := f.w.Close(); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return nil
}

// commit publishes the job's files (see commit.Finish) and records them.
func (w *writeOp) commit(ctx context.Context, x *exec, fs storage.FS, existing []storage.FileInfo, files []*staged) error {
	slices.SortFunc(files, func(a, b *staged) int { return strings.Compare(a.path, b.path) })
	out := make([]commit.ManifestFile, len(files))
	for i, f := range files {
		out[i] = commit.ManifestFile{Path: f.path, Rows: f.w.Rows(), Bytes: f.w.Bytes()}
		w.st.BytesOut.Add(f.w.Bytes())
	}
	m, prevRows, err := commit.Finish(ctx, fs, w.node.Path, w.node.Mode, x.jobID, existing, out,
		func(ctx context.Context) error { return publish(ctx, fs, files) },
		func(ctx context.Context) error { return unpublish(ctx, fs, files) })
	if err != nil {
		return err
	}
	w.st.RowsOut.Store(m.Rows - prevRows)
	x.mu.Lock()
	for _, f := range files {
		x.written = append(x.written, f.path)
	}
	x.mu.Unlock()
	return nil
}

// publish commits every staged file, 8 at a time, and returns an error
// naming the file that failed (see unpublish).
func publish(ctx context.Context, fs storage.FS, files []*staged) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, f := range files {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another commit failed: publish no more
			}
			// A started Commit runs to its answer, not cancelled by
			// another's failure: a Complete cut off in flight may finish
			// on the server after the rollback's Abort, leaving a pending
			// upload or an object nobody deletes.
			if err := f.upload.Commit(context.WithoutCancel(gctx)); err != nil {
				return commit.NamePath(f.path, "publish", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// unpublish deletes every new file. A Commit that failed may still have
// completed on the server (a lost answer): every file goes, not only those
// known to be published. Deleting a missing file is not an error.
func unpublish(ctx context.Context, fs storage.FS, files []*staged) error {
	var errs []error
	for _, f := range files {
		if err := fs.Delete(ctx, f.path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ext(format string) string {
	return format
}

func dropColumns(s *arrow.Schema, drop []string) *arrow.Schema {
	var fields []arrow.Field
	for _, f := range s.Fields() {
		if !slices.Contains(drop, f.Name) {
			fields = append(fields, f)
		}
	}
	return arrow.NewSchema(fields, nil)
}

// hiveNull is the directory value Hive and Spark use for a null partition value.
const hiveNull = "__HIVE_DEFAULT_PARTITION__"

// partition splits rec by the values of the partition columns and writes
// each part, without those columns, under its key=value/ directory; with
// bare, the first column's directory is its value alone (Write.DirBy).
func partition(x *exec, rec arrow.RecordBatch, by []string, bare bool, data *arrow.Schema, write func(dir string, rec arrow.RecordBatch) error) error {
	keyCols := make([]arrow.Array, len(by))
	for i, c := range by {
		keyCols[i] = rec.Column(rec.Schema().FieldIndices(c)[0])
	}
	groups := map[string][]int32{}
	var order []string
	var sb strings.Builder
	for row := range int(rec.NumRows()) {
		sb.Reset()
		for i, c := range keyCols {
			if i > 0 {
				sb.WriteByte('/')
			}
			v := hiveNull
			if c.IsValid(row) {
				v = url.PathEscape(c.ValueStr(row))
			}
			if i == 0 && bare && (v == "" || v == "." || v == "..") {
				return fmt.Errorf("dir_by column %q: the value %q cannot name a directory", by[0], v)
			}
			if i > 0 || !bare {
				sb.WriteString(by[i])
				sb.WriteByte('=')
			}
			sb.WriteString(v)
		}
		k := sb.String()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], int32(row))
	}
	var dataIdx []int
	for i, f := range rec.Schema().Fields() {
		if !slices.Contains(by, f.Name) {
			dataIdx = append(dataIdx, i)
		}
	}
	for _, k := range order {
		idx := groups[k]
		var part arrow.RecordBatch
		if len(idx) == int(rec.NumRows()) {
			rec.Retain()
			part = rec
		} else {
			var err error
			if part, err = kernel.Take(x.mem, rec, idx); err != nil {
				return err
			}
		}
		cols := make([]arrow.Array, len(dataIdx))
		for i, j := range dataIdx {
			cols[i] = part.Column(j)
		}
		d := array.NewRecordBatch(data, cols, part.NumRows())
		part.Release()
		err := write(k, d)
		d.Release()
		if err != nil {
			return err
		}
	}
	return nil
}
