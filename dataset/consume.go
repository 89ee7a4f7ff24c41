package dataset

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/internal/kernel"
)

// Schema is the Dataset's output schema, known without running anything.
func (d *Dataset) Schema() (*arrow.Schema, error) {
	if d.err != nil {
		return nil, d.err
	}
	return d.node.Schema(), nil
}

// Explain prints the logical plan, the optimized plan and the stages the
// local executor runs.
func (d *Dataset) Explain() (string, error) {
	if d.err != nil {
		return "", d.err
	}
	opt, err := plan.Optimize(d.node)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("== Logical plan ==\n")
	b.WriteString(plan.Format(d.node))
	b.WriteString("== Optimized plan ==\n")
	b.WriteString(plan.Format(opt))
	b.WriteString("== Stages ==\n")
	b.WriteString(local.FormatStages(local.Stages(opt)))
	return b.String(), nil
}

// Run optimizes n and runs it with the local executor, calling fn for every
// output batch (see local.Run).
func Run(ctx context.Context, n plan.Node, cfg local.Config, fn func(arrow.RecordBatch) error) (*local.Stats, error) {
	opt, err := plan.Optimize(n)
	if err != nil {
		return nil, err
	}
	return local.Run(ctx, opt, cfg, fn)
}

func (d *Dataset) run(ctx context.Context, n plan.Node, fn func(arrow.RecordBatch) error) (*local.Stats, error) {
	if d.err != nil {
		return nil, d.err
	}
	return Run(ctx, n, d.config(), fn)
}

// Count runs the Dataset and returns its number of rows.
func (d *Dataset) Count(ctx context.Context) (int64, error) {
	if d.err != nil {
		return 0, d.err
	}
	// Only the row count is needed: a projection of no columns lets the
	// optimizer prune every column it can.
	n := plan.NewProject(d.node, nil)
	var rows int64
	_, err := d.run(ctx, n, func(r arrow.RecordBatch) error {
		rows += r.NumRows()
		return nil
	})
	return rows, err
}

// Take runs the Dataset and returns its first n rows as one batch, which the
// caller releases.
func (d *Dataset) Take(ctx context.Context, n int64) (arrow.RecordBatch, error) {
	lim := d.Limit(n)
	if lim.err != nil {
		return nil, lim.err
	}
	mem := d.config().Allocator
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	if _, err := d.run(ctx, lim.node, func(r arrow.RecordBatch) error {
		r.Retain()
		recs = append(recs, r)
		return nil
	}); err != nil {
		return nil, err
	}
	return kernel.Concat(mem, lim.node.Schema(), recs)
}

// Iter runs the Dataset and yields its batches. A batch is valid until the
// loop body returns (Retain it to keep it). Breaking out of the loop stops
// the run. The last pair carries the run's error, if any.
func (d *Dataset) Iter(ctx context.Context) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		stop := fmt.Errorf("dataset: iteration stopped")
		_, err := d.run(ctx, d.node, func(r arrow.RecordBatch) error {
			if !yield(r, nil) {
				return stop
			}
			return nil
		})
		if err != nil && err != stop {
			yield(nil, err)
		}
	}
}

// WriteMode says what a write does when its destination already has files.
type WriteMode = plan.WriteMode

// Write modes.
const (
	Overwrite     = plan.ModeOverwrite
	ErrorIfExists = plan.ModeError
	Append        = plan.ModeAppend
)

// WriteOptions tune a write.
type WriteOptions struct {
	// Mode is what to do with existing files: ErrorIfExists (default), Overwrite or Append.
	Mode WriteMode
	// PartitionBy writes rows under key=value/ directories of these columns,
	// which are left out of the files themselves.
	PartitionBy []string
	// DirBy names a string column whose value is a directory of its own
	// under the path, written bare (DEST/train/, not DEST/split=train/),
	// above PartitionBy's key=value directories; like those, the column is
	// left out of the files. It is how a WithSplit's parts are written
	// side by side in one run. A null value is written as
	// __HIVE_DEFAULT_PARTITION__.
	DirBy string
	// RowsPerFile starts a new file after this many rows (0: no limit).
	RowsPerFile int64
	// Format options: Parquet compression (zstd default, snappy, gzip, none), row group size.
	Format format.WriteOptions
}

// WriteParquet runs the Dataset and writes it as Parquet files under path.
// Files are staged and published only when the whole run succeeds, followed
// by a _SUCCESS manifest listing them; a failed run leaves nothing visible.
func (d *Dataset) WriteParquet(ctx context.Context, path string, opts WriteOptions) (*local.Stats, error) {
	return d.Write(ctx, "parquet", path, opts)
}

// WriteCSV is WriteParquet for CSV files with a header line.
func (d *Dataset) WriteCSV(ctx context.Context, path string, opts WriteOptions) (*local.Stats, error) {
	return d.Write(ctx, "csv", path, opts)
}

// WriteJSONL is WriteParquet for files of one JSON object per line.
func (d *Dataset) WriteJSONL(ctx context.Context, path string, opts WriteOptions) (*local.Stats, error) {
	return d.Write(ctx, "jsonl", path, opts)
}

// WriteNode is the sink node that Write runs, for plans and Explain.
func (d *Dataset) WriteNode(formatName, path string, opts WriteOptions) (*plan.Write, error) {
	if d.err != nil {
		return nil, d.err
	}
	if _, err := format.ByName(formatName); err != nil {
		return nil, fmt.Errorf("dataset: write %s: %w", path, err)
	}
	if formatName == "csv" {
		opts.Format.CSVHeader = true // readers infer names from it
	}
	mode := opts.Mode
	switch mode {
	case "":
		mode = plan.ModeError
	case plan.ModeError, plan.ModeOverwrite, plan.ModeAppend:
	default:
		return nil, fmt.Errorf("dataset: write %s: mode %q: want overwrite, error or append", path, mode)
	}
	for _, c := range opts.PartitionBy {
		if len(d.node.Schema().FieldIndices(c)) == 0 {
			return nil, fmt.Errorf("dataset: write %s: partition_by: %w", path, unknownColumn(c, d.node.Schema()))
		}
	}
	if len(opts.PartitionBy) == d.node.Schema().NumFields() && len(opts.PartitionBy) > 0 {
		return nil, fmt.Errorf("dataset: write %s: partition_by names every column; no data columns would be left", path)
	}
	if c := opts.DirBy; c != "" {
		idx := d.node.Schema().FieldIndices(c)
		switch {
		case len(idx) == 0:
			return nil, fmt.Errorf("dataset: write %s: dir_by: %w", path, unknownColumn(c, d.node.Schema()))
		case d.node.Schema().Field(idx[0]).Type.ID() != arrow.STRING:
			return nil, fmt.Errorf("dataset: write %s: dir_by column %q is %s, want a string", path, c, d.node.Schema().Field(idx[0]).Type)
		case slices.Contains(opts.PartitionBy, c):
			return nil, fmt.Errorf("dataset: write %s: column %q is both dir_by and partition_by", path, c)
		case len(opts.PartitionBy)+1 == d.node.Schema().NumFields():
			return nil, fmt.Errorf("dataset: write %s: dir_by and partition_by name every column; no data columns would be left", path)
		}
	}
	return &plan.Write{Input: d.node, Format: formatName, Path: path, Mode: mode,
		PartitionBy: opts.PartitionBy, DirBy: opts.DirBy, RowsPerFile: opts.RowsPerFile, Options: opts.Format}, nil
}

// Write runs the Dataset and writes files of the named format under path.
func (d *Dataset) Write(ctx context.Context, formatName, path string, opts WriteOptions) (*local.Stats, error) {
	w, err := d.WriteNode(formatName, path, opts)
	if err != nil {
		return nil, err
	}
	return d.run(ctx, w, nil)
}
