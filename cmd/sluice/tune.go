package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/tune"
	"github.com/sluicehq/sluice/tune/tunejob"
)

// Commands of hyperparameter search: tune, tune status.

// trainCommand is the program a trial of `sluice tune` runs when the file
// names no tune.command: this executable's train command.
var trainCommand = func() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable for `sluice train`: %w", err)
	}
	return []string{self, "train"}, nil
}

// A worker process registers the map_batches function that runs a cluster
// trial. Only a worker does: a sluice process that registers no function
// validates a plan naming one of another program's functions with a note
// (see plans' map_batches), and `sluice validate` / `submit` keep that.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := tunejob.Register(); err != nil {
			panic(err)
		}
	}
}

func init() {
	var dir string
	var resume bool
	var cf cli.Client
	var fset *flag.FlagSet
	register(&command{
		name:    "tune",
		args:    "FILE.yaml | status DIR | status --coordinators ADDRS NAME | rm --coordinators ADDRS NAME",
		summary: "search hyperparameters: run the file's tune: experiment over its train: section (or a plan: section's params), locally or, with --coordinators, as cluster jobs; `tune status DIR` (or NAME, with --coordinators: the cluster's record) prints an experiment's trial table; `tune rm NAME` removes the cluster's record",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "", "the experiment's directory, local or s3:// (default out/tune/NAME, NAME the file's name: or its base name); with --coordinators a path the workers share")
			fs.BoolVar(&resume, "resume", false, "continue the experiment (from the cluster's record with --coordinators, else --dir) without re-running finished trials")
			cf.Flags(fs)
			fset = fs
		},
		run: func(ctx context.Context, e *env, args []string) error {
			var cl *cli.Client
			if f := fset.Lookup("coordinators"); f != nil && f.Value.String() != "" {
				// Only the flag: SLUICE_COORDINATORS alone does not move
				// the trials onto a cluster.
				cl = &cf
			}
			if len(args) == 2 && (args[0] == "status" || args[0] == "rm") {
				// One command rather than a group, so that `sluice tune
				// FILE.yaml` and `sluice tune status DIR` both work.
				return tuneRecord(ctx, e, args[0], args[1], cl)
			}
			if len(args) != 1 {
				return errUsage
			}
			return runTune(ctx, e, args[0], dir, resume, cl)
		},
	})
}

// tuneRecord prints the trial table and the summary of the experiment in
// dir (status), or, with coordinators, of the cluster's record of the
// experiment named so (status) or removes that record (rm).
func tuneRecord(ctx context.Context, e *env, verb, arg string, cf *cli.Client) error {
	var exp *tune.Experiment
	var err error
	switch {
	case cf == nil && verb == "rm":
		return fmt.Errorf("tune rm %s: name the cluster with --coordinators (an experiment's directory is removed as any directory)", arg)
	case cf == nil:
		exp, err = tune.Load(ctx, arg)
	default:
		cl, cerr := cf.Client()
		if cerr != nil {
			return cerr
		}
		if verb == "rm" {
			if err := cl.DeleteExperiment(ctx, arg); err != nil {
				return fmt.Errorf("tune rm %s: %w", arg, err)
			}
			fmt.Fprintf(e.stdout, "removed the cluster's record of experiment %s\n", arg)
			return nil
		}
		exp, err = tunejob.Store{API: cl, Name: arg, Wait: -1}.Load(ctx)
	}
	if err != nil {
		return err
	}
	if err := exp.WriteTable(e.stdout); err != nil {
		return err
	}
	return printSummary(e, exp)
}

func runTune(ctx context.Context, e *env, path, dir string, resume bool, cf *cli.Client) error {
	f, err := tune.LoadFile(path)
	if err != nil {
		return err
	}
	name := f.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if dir == "" {
		dir = filepath.Join("out", "tune", name)
	}
	// The experiment's progress and the trials' stderr share one writer,
	// above the live trial table when stderr is a terminal.
	cfg := f.Config()
	stderr := &tune.Live{W: e.stderr, Metric: cfg.Metric, Mode: cfg.Mode}
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		stderr.Redraw = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			stderr.Width = w - 1
		}
	}
	cfg.Dir, cfg.Resume, cfg.Progress, cfg.Watch = dir, resume, stderr, stderr.Update
	args := f.Tune.Command
	if len(args) == 0 {
		if args, err = trainCommand(); err != nil {
			return err
		}
	}
	base := tune.Values{}
	for k, v := range f.Train {
		base[k] = v
	}
	if _, ok := base["steps"]; !ok && f.Tune.MaxT > 0 && cfg.Space["steps"] == nil {
		base["steps"] = int64(f.Tune.MaxT)
	}
	var fn tune.Func
	var noColumn firstErr // a plan trial's one-row output without the metric
	switch {
	case f.Plan != nil && cf != nil:
		if fn, err = planClusterTrials(f, cf, name, &cfg, stderr, noColumn.set); err != nil {
			return err
		}
	case f.Plan != nil:
		if fn, err = planTrials(f, &cfg, stderr, nil, noColumn.set); err != nil {
			return err
		}
	case cf != nil:
		if fn, err = clusterTrials(f, cf, name, base, &cfg, stderr); err != nil {
			return err
		}
	default:
		cmd := tune.Command{Args: args, Base: base, Stderr: stderr}
		if p, ok := cfg.Scheduler.(*tune.PBT); ok {
			cmd.CheckpointEvery = p.Interval
		}
		fn = cmd.Func()
	}
	stderr.Start()
	exp, err := tune.Run(ctx, cfg, fn)
	stderr.Stop()
	if errors.Is(err, tune.ErrNoMetric) {
		if cerr := noColumn.get(); cerr != nil {
			return f.ErrorAt("tune.metric", fmt.Errorf("%w: %w", tune.ErrNoMetric, cerr))
		}
		return f.ErrorAt("tune.metric", err)
	}
	if errors.Is(err, tune.ErrInvalid) && exp == nil && strings.HasPrefix(err.Error(), "tune: searcher:") {
		return f.ErrorAt("tune.space", err) // the file parsed: what is left is the space's (a grid too large)
	}
	if err != nil {
		return err
	}
	if err := exp.WriteTable(e.stdout); err != nil {
		return err
	}
	return printSummary(e, exp)
}

// clusterTrials is the trial function that runs each trial as a job of
// the cluster the flags name, with the tune: section's cpu, gpu and memory;
// it keeps the experiment's record, as name, in the cluster's state.
func clusterTrials(f *tune.File, cf *cli.Client, name string, base tune.Values, cfg *tune.Config, progress io.Writer) (tune.Func, error) {
	needs := tune.Resources{CPU: max(f.Tune.CPU, 1), GPU: f.Tune.GPU}
	if f.Tune.Memory != "" {
		var err error
		if needs.Memory, err = cli.ParseSize(f.Tune.Memory); err != nil {
			return nil, f.ErrorAt("tune.memory", err)
		}
	}
	if strings.Contains(cfg.Dir, "://") {
		return nil, fmt.Errorf("--dir %s: trials on a cluster need a directory every worker shares as a local path (s3:// is not supported for cluster trials yet)", cfg.Dir)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = abs
	cl, err := cf.Client()
	if err != nil {
		return nil, err
	}
	cfg.Store = tunejob.Store{API: cl, Name: name}
	c := tune.Cluster{Jobs: tunejob.Client{API: cl}, Command: f.Tune.Command, Base: base, Progress: progress, Needs: needs}
	if p, ok := cfg.Scheduler.(*tune.PBT); ok {
		c.CheckpointEvery = p.Interval
	}
	return c.Func(), nil
}

// printSummary prints the result line, always stdout's last.
func printSummary(e *env, exp *tune.Experiment) error {
	b, err := json.Marshal(exp.Summary())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}
