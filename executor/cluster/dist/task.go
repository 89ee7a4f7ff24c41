package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/internal/kernel"
	"github.com/sluicehq/sluice/storage"
)

// Errors of this package.
var (
	// ErrPlanChanged is returned by Run when the plan it is given does not
	// cut into the stages of the Layout (another plan version, other
	// options): the task cannot know which rows are its own.
	ErrPlanChanged = errors.New("dist: plan changed since it was laid out")
	// ErrTask is returned by Run for a TaskSpec that does not fit the
	// Layout (a stage or task out of range, inputs that do not match).
	ErrTask = errors.New("dist: task does not fit the layout")
)

// Producer is where a succeeded producer task's blocks live.
type Producer struct {
	Task, Attempt int
	Addr          string
}

// StageInput is every producer task of one input stage, by task index.
type StageInput struct {
	Stage     int
	Producers []Producer
}

// TaskSpec is one attempt of one task.
type TaskSpec struct {
	Job                  string
	Stage, Task, Attempt int
	Inputs               []StageInput // one per stage the task's stage reads
}

// Env is what a task needs from its worker. Fetch and Put may be called
// from several goroutines at once.
type Env struct {
	// Fetch returns a block from a worker (the cluster passes the Flight
	// client). The caller owns the returned batches and releases them.
	Fetch func(ctx context.Context, addr, id string) (*arrow.Schema, []arrow.RecordBatch, error)
	// Put keeps an output block (the worker's store), retaining the batches
	// it keeps; the caller releases its own references after Put returns.
	Put func(id string, schema *arrow.Schema, recs []arrow.RecordBatch) error
	// Local runs the task's operators. PreserveOrder is forced on,
	// Concurrency to 1 (see Run) and JobID is set per task (it names the
	// staged files).
	Local local.Config
}

// Result is what a task produced. A sink task's files are listed in the
// manifest under its commit.AttemptDir, which the job's commit reads (it
// may run on another worker, after this one is gone).
type Result struct {
	Rows     int64   // rows output (sink: rows written)
	Bytes    int64   // bytes of the output blocks (sink: of the files)
	PartRows []int64 // rows per output partition
}

// Run runs one task of the stage t.Stage of l: it recomputes the stages
// from root (the same optimized plan Plan was given), fetches its inputs,
// runs the stage's operators with the local executor, and puts its output
// partitions with env.Put under BlockID (every partition, an empty one as a
// block with the schema and no batches), or, for the sink stage, writes the
// plan's Write under commit.AttemptDir in overwrite mode (the files are in
// that directory's manifest).
//
// A fetch error is returned wrapped (errors.Is matches the original) with
// the block id and address.
func Run(ctx context.Context, root plan.Node, l *Layout, t TaskSpec, env Env) (*Result, error) {
	stages, err := cut(root, l.Partitions)
	if err != nil {
		return nil, err
	}
	if err := matches(stages, l); err != nil {
		return nil, err
	}
	if t.Stage < 0 || t.Stage >= len(stages) {
		return nil, fmt.Errorf("%w: stage %d of %d", ErrTask, t.Stage, len(stages))
	}
	s, spec := stages[t.Stage], l.Stages[t.Stage]
	if t.Task < 0 || t.Task >= spec.Tasks {
		return nil, fmt.Errorf("%w: task %d of stage %d, which has %d", ErrTask, t.Task, t.Stage, spec.Tasks)
	}
	// One goroutine per operator, in order: a task's output is then a
	// function of its input, so a task run again (its blocks lost) makes
	// the same blocks. Lineage needs it: a sort's range boundaries come
	// from samples of its producers' output, and split tasks that read a
	// producer's sample before and after it ran again must agree (an
	// aggregate on several goroutines orders its groups, and adds its
	// floats, as they happen to arrive). The cluster runs a task per CPU.
	cfg := env.Local
	cfg.PreserveOrder = true
	cfg.Concurrency = 1
	if cfg.Allocator == nil {
		cfg.Allocator = memory.DefaultAllocator
	}
	mem := cfg.Allocator

	var fetched [][]arrow.RecordBatch
	defer func() {
		for _, recs := range fetched {
			releaseAll(recs)
		}
	}()
	var samples []arrow.RecordBatch
	for i, in := range s.inputs {
		ids, addrs, err := inputBlocks(t, in, l.Stages[in.Stage])
		if err != nil {
			return nil, err
		}
		var want *arrow.Schema
		if leaf := s.leaves[i]; leaf != nil {
			want = leaf.Sch
		} else {
			want = sampleSchema(s.frag.Schema(), s.sortKeys)
		}
		recs, err := fetchAll(ctx, env, ids, addrs, want)
		if err != nil {
			return nil, err
		}
		fetched = append(fetched, recs)
		if leaf := s.leaves[i]; leaf != nil {
			leaf.Records = recs
		} else {
			samples = recs
		}
	}

	frag := s.frag
	switch src := s.source.(type) {
	case *plan.Scan:
		frag = replace(frag, src, scanSplit(src, spec.Splits, t.Task))
	case *plan.Range:
		frag = replace(frag, src, rangeTask(src, spec.Tasks, t.Task))
	}
	if s.sink {
		return runSink(ctx, frag.(*plan.Write), t, cfg)
	}

	var rows []arrow.RecordBatch
	if len(s.leaves) > 0 && frag == s.leaves[0] {
		// Nothing to run (a split task): its input is its output.
		for _, r := range s.leaves[0].Records {
			r.Retain()
			rows = append(rows, r)
		}
	} else {
		cfg.JobID = fileID(t)
		_, err := local.Run(ctx, frag, cfg, func(rec arrow.RecordBatch) error {
			rec.Retain()
			rows = append(rows, rec)
			return nil
		})
		if err != nil {
			releaseAll(rows)
			return nil, err
		}
	}
	return putOutput(ctx, mem, s, spec, t, env, frag.Schema(), rows, samples)
}

// matches checks that the stages cut from the plan now are the layout's.
func matches(stages []*stage, l *Layout) error {
	if len(stages) != len(l.Stages) {
		return fmt.Errorf("%w: %d stages now, %d in the layout", ErrPlanChanged, len(stages), len(l.Stages))
	}
	for i, s := range stages {
		spec := l.Stages[i]
		if got, want := s.name(), spec.Name; got != want {
			return fmt.Errorf("%w: stage %d is %q now, %q in the layout", ErrPlanChanged, i, got, want)
		}
		if !slices.Equal(s.inputs, spec.Inputs) || s.parts != spec.Partitions || s.sink != spec.Sink {
			return fmt.Errorf("%w: stage %d (%s) reads %v into %d partitions now, %v into %d in the layout",
				ErrPlanChanged, i, spec.Name, s.inputs, s.parts, spec.Inputs, spec.Partitions)
		}
	}
	return nil
}

// inputBlocks lists the block ids (and addresses) task t reads from one input.
func inputBlocks(t TaskSpec, in Input, producer StageSpec) (ids, addrs []string, err error) {
	var ps []Producer
	found := false
	for _, si := range t.Inputs {
		if si.Stage == in.Stage {
			ps, found = si.Producers, true
			break
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("%w: stage %d reads stage %d, but the task lists no producers for it", ErrTask, t.Stage, in.Stage)
	}
	if len(ps) != producer.Tasks {
		return nil, nil, fmt.Errorf("%w: stage %d has %d tasks, the task lists %d producers", ErrTask, in.Stage, producer.Tasks, len(ps))
	}
	for i, p := range ps {
		if p.Task != i {
			return nil, nil, fmt.Errorf("%w: producer %d of stage %d is task %d; producers go by task index", ErrTask, i, in.Stage, p.Task)
		}
	}
	switch in.Mode {
	case ModeOne:
		p := ps[t.Task]
		return []string{BlockID(t.Job, in.Stage, p.Task, p.Attempt, 0)}, []string{p.Addr}, nil
	case ModeAll, ModeSamples:
		for _, p := range ps {
			id := SampleID(t.Job, in.Stage, p.Task, p.Attempt)
			if in.Mode == ModeAll {
				id = BlockID(t.Job, in.Stage, p.Task, p.Attempt, t.Task)
			}
			ids = append(ids, id)
			addrs = append(addrs, p.Addr)
		}
		return ids, addrs, nil
	}
	return nil, nil, fmt.Errorf("%w: input mode %q", ErrTask, in.Mode)
}

// fetchParallel is how many blocks a task fetches at once.
const fetchParallel = 8

// fetchAll fetches blocks, 8 at a time, and returns their batches in the
// order of ids. Every block must have the schema want.
func fetchAll(ctx context.Context, env Env, ids, addrs []string, want *arrow.Schema) ([]arrow.RecordBatch, error) {
	got := make([][]arrow.RecordBatch, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallel)
	for i := range ids {
		g.Go(func() error {
			schema, recs, err := env.Fetch(gctx, addrs[i], ids[i])
			if err != nil {
				return fmt.Errorf("dist: fetching block %s from %s: %w", ids[i], addrs[i], err)
			}
			got[i] = recs
			if schema != nil && !schema.Equal(want) {
				return fmt.Errorf("dist: block %s from %s has schema %s, want %s", ids[i], addrs[i], schema, want)
			}
			return nil
		})
	}
	err := g.Wait()
	var out []arrow.RecordBatch
	for _, recs := range got {
		out = append(out, recs...)
	}
	if err != nil {
		releaseAll(out)
		return nil, err
	}
	return out, nil
}

// putOutput cuts a task's rows into its partitions and puts them. It
// consumes rows.
func putOutput(ctx context.Context, mem memory.Allocator, s *stage, spec StageSpec, t TaskSpec, env Env, schema *arrow.Schema, rows, samples []arrow.RecordBatch) (*Result, error) {
	if s.out == outSample {
		sample, err := makeSample(mem, schema, rows, s.sortKeys)
		if err != nil {
			releaseAll(rows)
			return nil, err
		}
		err = env.Put(SampleID(t.Job, t.Stage, t.Task, t.Attempt), sampleSchema(schema, s.sortKeys), sample)
		releaseAll(sample)
		if err != nil {
			releaseAll(rows)
			return nil, fmt.Errorf("dist: putting %s: %w", SampleID(t.Job, t.Stage, t.Task, t.Attempt), err)
		}
	}
	parts, err := partition(ctx, mem, s, t, spec.Partitions, schema, rows, samples)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range parts {
			releaseAll(p)
		}
	}()
	res := &Result{PartRows: make([]int64, len(parts))}
	for p, recs := range parts {
		if err := conform(schema, recs); err != nil {
			return nil, err
		}
		for _, r := range recs {
			res.PartRows[p] += r.NumRows()
			res.Bytes += kernel.BatchBytes(r)
		}
		res.Rows += res.PartRows[p]
		id := BlockID(t.Job, t.Stage, t.Task, t.Attempt, p)
		if err := env.Put(id, schema, recs); err != nil {
			return nil, fmt.Errorf("dist: putting %s: %w", id, err)
		}
	}
	return res, nil
}

// runSink writes the task's rows under its staging dir and counts them from
// the manifest the write leaves there. The task runs on one goroutine
// (Run), so its files hold its rows in order (a sort's range, say).
func runSink(ctx context.Context, w *plan.Write, t TaskSpec, cfg local.Config) (*Result, error) {
	sink := *w
	sink.Path = commit.AttemptDir(w.Path, t.Job, t.Task, t.Attempt)
	sink.Mode = plan.ModeOverwrite
	cfg.JobID = fileID(t)
	if _, err := local.Run(ctx, &sink, cfg, nil); err != nil {
		return nil, err
	}
	fs, err := fsFor(cfg, sink.Path)
	if err != nil {
		return nil, err
	}
	mpath := storage.Join(sink.Path, commit.ManifestName)
	data, err := storage.ReadFile(ctx, fs, mpath)
	if err != nil {
		return nil, fmt.Errorf("dist: reading the task's manifest: %w", err)
	}
	var m commit.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("dist: %s: %w", mpath, err)
	}
	res := &Result{Rows: m.Rows}
	for _, f := range m.Files {
		res.Bytes += f.Bytes
	}
	return res, nil
}

func fsFor(cfg local.Config, path string) (storage.FS, error) {
	if cfg.FS != nil {
		return cfg.FS(path)
	}
	return storage.For(path)
}

// fileID is the name staged files carry: the job and task, so files of
// different tasks never collide once published side by side.
func fileID(t TaskSpec) string {
	job := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, t.Job)
	return fmt.Sprintf("%s-t%05d", job, t.Task)
}

// replace returns n with the node old (compared by identity) replaced by nw.
func replace(n, old, nw plan.Node) plan.Node {
	if n == old {
		return nw
	}
	kids := n.Children()
	out := make([]plan.Node, len(kids))
	changed := false
	for i, k := range kids {
		out[i] = replace(k, old, nw)
		changed = changed || out[i] != k
	}
	if !changed {
		return n
	}
	return plan.WithChildren(n, out)
}

// scanSplit is the scan restricted to task's split: its files, and of
// those split by row groups, its row groups.
func scanSplit(s *plan.Scan, splits []Split, task int) plan.Node {
	cp := *s
	cp.Files = nil
	if task >= len(splits) {
		return &cp
	}
	keep := map[string][]int{}
	parts := false
	for _, f := range splits[task].Files {
		cp.Files = append(cp.Files, plan.File{Path: f.Path, Size: f.Size, Partition: f.Partition})
		keep[f.Path] = f.RowGroups
		parts = parts || f.RowGroups != nil
	}
	if parts {
		cp.Format = rowGroupFormat{Format: s.Format, keep: keep}
	}
	return &cp
}

// rangeTask is task's share of [0, N): an equal cut, the first N%tasks
// tasks one row longer.
func rangeTask(r *plan.Range, tasks, task int) plan.Node {
	per, extra := r.N/int64(tasks), r.N%int64(tasks)
	lo := int64(task)*per + min(int64(task), extra)
	n := per
	if int64(task) < extra {
		n++
	}
	sub := &plan.Range{N: n, BatchRows: r.BatchRows}
	if lo == 0 {
		return sub
	}
	return &plan.MapBatches{Input: sub, Name: fmt.Sprintf("offset %d", lo), Out: plan.RangeSchema, RowLocal: true,
		Fn: func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			ids := rec.Column(0).(*array.Int64).Int64Values()
			b := array.NewInt64Builder(mem)
			defer b.Release()
			b.Reserve(len(ids))
			for _, v := range ids {
				b.UnsafeAppend(v + lo)
			}
			col := b.NewArray()
			defer col.Release()
			return array.NewRecordBatch(plan.RangeSchema, []arrow.Array{col}, int64(len(ids))), nil
		}}
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// conform gives every batch of recs exactly schema (a block is one IPC
// stream, whose batches must all have its schema), rebuilding those that
// differ only in names, nullability or metadata.
func conform(schema *arrow.Schema, recs []arrow.RecordBatch) error {
	for i, r := range recs {
		if r.Schema().Equal(schema) {
			continue
		}
		if r.NumCols() != int64(schema.NumFields()) {
			return fmt.Errorf("dist: a batch of %d columns in a block of schema %s", r.NumCols(), schema)
		}
		for c, col := range r.Columns() {
			if !arrow.TypeEqual(col.DataType(), schema.Field(c).Type) {
				return fmt.Errorf("dist: column %q is %s in a batch, %s in the block's schema", schema.Field(c).Name, col.DataType(), schema.Field(c).Type)
			}
		}
		recs[i] = array.NewRecordBatch(schema, r.Columns(), r.NumRows())
		r.Release()
	}
	return nil
}
