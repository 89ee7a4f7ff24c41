package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/tune"
)

// Plan trials: a tune file's plan: section runs a plan file per trial,
// here or, with --coordinators, as a job of the cluster (planJobs).
//
// The trial's config becomes the plan's --param name=value (over the
// section's params); a plan that declares a param out gets
// DIR/trials/ID/out as it, unless the space or params set it, so that
// trials running at once write apart. The trial reports once, when the
// plan has run: run_rows (the rows written) and run_seconds (the run's
// wall time), and, when the plan's output holds exactly one row, that
// row's numeric columns under their names (a column wins over run_*).

// planTrials is the trial function of a plan: section. It checks first
// that the space's and the params' names are params the plan declares.
//
// With jobs, each trial runs as a job of that cluster (see planJobs);
// noColumn, when set, gets the error that names the trial and the
// column when a one-row output lacks the metric (the experiment then
// fails with tune.ErrNoMetric, as without it).
func planTrials(f *tune.File, cfg *tune.Config, progress io.Writer, jobs *planJobs, noColumn func(error)) (tune.Func, error) {
	file := f.Plan.File
	p, err := plans.Load(file)
	if err != nil {
		var lints plans.Lints
		if errors.As(err, &lints) {
			for _, l := range lints {
				fmt.Fprintln(progress, l.Error())
			}
		}
		return nil, f.ErrorAt("plan.file", err)
	}
	var declared []string
	for _, prm := range p.Params {
		declared = append(declared, prm.Name)
	}
	check := func(path, name string) error {
		if slices.Contains(declared, name) {
			return nil
		}
		list := "none"
		if len(declared) > 0 {
			list = strings.Join(declared, ", ")
		}
		return f.ErrorAt(path, fmt.Errorf("%s declares no param %q (its params: %s)", file, name, list))
	}
	for _, name := range cfg.Space.Names() {
		if err := check("tune.space."+name, name); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Plan.Params)) {
		if err := check("plan.params."+name, name); err != nil {
			return nil, err
		}
	}
	setOut := slices.Contains(declared, "out") && !slices.Contains(cfg.Space.Names(), "out") && f.Plan.Params["out"] == ""
	if !setOut && cfg.MaxConcurrent > 1 {
		return nil, f.ErrorAt("tune.max_concurrent", fmt.Errorf("trials running at once would write the same output: declare a param out in %s "+
			"and write under it (tune sets it per trial), or run one trial at a time", file))
	}
	var run planRunner = runPlanHere
	if jobs != nil {
		if run, err = jobs.runner(file, setOut || filepath.IsAbs(f.Plan.Params["out"]) || storage.IsURL(f.Plan.Params["out"])); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context, t *tune.Trial) error {
		params, err := tune.Params(t.Config)
		if err != nil {
			return err
		}
		for k, v := range f.Plan.Params {
			if _, ok := params[k]; !ok {
				params[k] = v
			}
		}
		if setOut {
			// Under the experiment's Dir, not t.Dir(): that is a local
			// scratch directory when Dir is s3://, which neither lasts
			// nor is the workers'.
			params["out"] = storage.Join(cfg.Dir, "trials", t.ID, "out")
		}
		// Each trial compiles the plan afresh: a compiled plan is one run's.
		p, err := plans.Load(file)
		if err != nil {
			return err
		}
		job, err := plans.Compile(p, plans.Vars{Params: params})
		if err != nil {
			return fmt.Errorf("%s with %s: %w", file, formatParams(params), err)
		}
		rows, wall, err := run(ctx, t, job, params)
		if err != nil {
			return fmt.Errorf("%s with %s: %w", file, formatParams(params), err)
		}
		report := map[string]float64{"run_rows": float64(rows), "run_seconds": wall.Seconds()}
		cols, err := singleRow(ctx, job, report)
		if err != nil {
			return fmt.Errorf("%s: reading its output %s: %w", file, job.Output(), err)
		}
		if _, ok := report[cfg.Metric]; !ok && cols != nil && noColumn != nil {
			// The output was one row without the metric: say which.
			noColumn(fmt.Errorf("trial %s: the output of %s with %s (%s) has no column %q (its columns: %s)",
				t.ID, file, formatParams(params), job.Output(), cfg.Metric, strings.Join(cols, ", ")))
		}
		// A metric missing from the report fails the experiment naming the
		// report's keys: run_* alone when the output was not one row.
		return t.Report(report)
	}, nil
}

// firstErr keeps the first error set, for any goroutine.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (e *firstErr) set(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
}

func (e *firstErr) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// A planRunner runs a trial's compiled plan: the rows it wrote and the
// run's wall time.
type planRunner func(ctx context.Context, t *tune.Trial, job *plans.Job, params map[string]string) (rows int64, wall time.Duration, err error)

// runPlanHere runs the plan in this process.
func runPlanHere(ctx context.Context, _ *tune.Trial, job *plans.Job, _ map[string]string) (int64, time.Duration, error) {
	stats, err := job.Run(ctx, local.DefaultConfig())
	if err != nil {
		return 0, 0, err
	}
	return stats.Rows, stats.Wall, nil
}

// singleRow adds the numeric columns of the job's output to report when
// the output is one row, and returns the output's column names then (nil
// otherwise). The output is read through the storage package: a local
// path or an s3:// URL.
func singleRow(ctx context.Context, job *plans.Job, report map[string]float64) ([]string, error) {
	if stats := report["run_rows"]; stats != 1 {
		return nil, nil
	}
	rec, err := dataset.Read(job.Sink.Format, job.Output()).Take(ctx, 2)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	if rec.NumRows() != 1 {
		return nil, nil
	}
	var cols []string
	for i, f := range rec.Schema().Fields() {
		cols = append(cols, f.Name)
		col := rec.Column(i)
		if col.IsNull(0) {
			continue
		}
		switch c := col.(type) {
		case *array.Float64:
			report[f.Name] = c.Value(0)
		case *array.Float32:
			report[f.Name] = float64(c.Value(0))
		case *array.Int64:
			report[f.Name] = float64(c.Value(0))
		case *array.Int32:
			report[f.Name] = float64(c.Value(0))
		case *array.Int16:
			report[f.Name] = float64(c.Value(0))
		case *array.Int8:
			report[f.Name] = float64(c.Value(0))
		case *array.Uint64:
			report[f.Name] = float64(c.Value(0))
		case *array.Uint32:
			report[f.Name] = float64(c.Value(0))
		case *array.Boolean:
			if c.Value(0) {
				report[f.Name] = 1
			} else {
				report[f.Name] = 0
			}
		}
	}
	return cols, nil
}

func formatParams(p map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, "--param "+k+"="+p[k])
	}
	return strings.Join(parts, " ")
}
