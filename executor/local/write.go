package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
	"github.com/sluicehq/sluice/storage"
)

// ManifestName is the file a successful write publishes last, listing its files.
const ManifestName = "_SUCCESS"

// Manifest is the content of the _SUCCESS file.
type Manifest struct {
	JobID   string         `json:"job_id"`
	Created time.Time      `json:"created"`
	Rows    int64          `json:"rows"`
	Files   []ManifestFile `json:"files"`
}

// ManifestFile is one published file.
type ManifestFile struct {
	Path  string `json:"path"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

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

func (w *writeOp) stats() *OpStats { return w.st }

// run writes every batch under staged names; the files are published by
// commit only after the whole input succeeded, and aborted otherwise.
func (w *writeOp) run(ctx context.Context, x *exec, out chan<- block) error {
	n := w.node
	fs, err := storage.For(n.Path)
	if err != nil {
		return wrapOp(w.st.Name, err)
	}
	existing, err := fs.List(ctx, n.Path)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return wrapOp(w.st.Name, err)
	}
	if len(existing) > 0 && n.Mode == plan.ModeError {
		return wrapOp(w.st.Name, fmt.Errorf("%s: %w (%d files; mode is error: use mode overwrite to replace it or append to add to it)", n.Path, storage.ErrExist, len(existing)))
	}
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
	dataSchema := dropColumns(n.Input.Schema(), n.PartitionBy)

	g, gctx := errgroup.WithContext(ctx)
	in := x.start(gctx, g, w.in)
	for worker := range x.cfg.Concurrency {
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
			write := func(dir string, rec arrow.RecordBatch) error {
				f, err := get(dir)
				if err != nil {
					return err
				}
				if err := f.w.Write(rec); err != nil {
					return fmt.Errorf("%s: %w", f.path, err)
				}
				if n.RowsPerFile > 0 && f.w.Rows() >= n.RowsPerFile {
					delete(open, dir)
					return closeStaged(f)
				}
				return nil
			}
			for b := range in {
				w.st.RowsIn.Add(b.rec.NumRows())
				err := w.st.work(func() error {
					if len(n.PartitionBy) == 0 {
						return write("", b.rec)
					}
					return partition(x, b.rec, n.PartitionBy, dataSchema, write)
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

func closeStaged(f *staged) error {
	f.closed = true
	if err := f.w.Close(); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return nil
}

// commit publishes the job's files: for overwrite it first removes what the
// destination held, then completes every upload, then writes the manifest.
func (w *writeOp) commit(ctx context.Context, x *exec, fs storage.FS, existing []storage.FileInfo, files []*staged) error {
	if w.node.Mode == plan.ModeOverwrite {
		for _, e := range existing {
			if err := fs.Delete(ctx, e.Path); err != nil {
				return err
			}
		}
	}
	slices.SortFunc(files, func(a, b *staged) int { return strings.Compare(a.path, b.path) })
	m := Manifest{JobID: x.jobID, Created: time.Now().UTC()}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, f := range files {
		g.Go(func() error { return f.upload.Commit(gctx) })
		m.Files = append(m.Files, ManifestFile{Path: f.path, Rows: f.w.Rows(), Bytes: f.w.Bytes()})
		m.Rows += f.w.Rows()
		w.st.BytesOut.Add(f.w.Bytes())
	}
	if err := g.Wait(); err != nil {
		return err
	}
	w.st.RowsOut.Store(m.Rows)
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	u, err := fs.Create(ctx, storage.Join(w.node.Path, ManifestName))
	if err != nil {
		return err
	}
	if _, err := u.Write(append(data, '\n')); err != nil {
		_ = u.Close()
		_ = u.Abort(ctx)
		return err
	}
	if err := u.Close(); err != nil {
		_ = u.Abort(ctx)
		return err
	}
	if err := u.Commit(ctx); err != nil {
		return err
	}
	x.mu.Lock()
	for _, f := range m.Files {
		x.written = append(x.written, f.Path)
	}
	x.mu.Unlock()
	return nil
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
// each part, without those columns, under its key=value/ directory.
func partition(x *exec, rec arrow.RecordBatch, by []string, data *arrow.Schema, write func(dir string, rec arrow.RecordBatch) error) error {
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
			sb.WriteString(by[i])
			sb.WriteByte('=')
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
