package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/worker"
	"github.com/sluicehq/sluice/plans"
)

// Worker is `sluice worker`: its flags fill a worker.Config, and Run
// registers with the coordinators and runs the tasks they assign until ctx
// ends. Plans compile in this process, so a program that registered plan
// functions runs them as a worker.
type Worker struct {
	Config                             worker.Config
	coordinators, tokenFile, resources string
	envAllow, allowedPaths             string
	tls                                TLSFlags
}

// Flags declares the worker's flags in fs.
func (w *Worker) Flags(fs *flag.FlagSet) {
	*w = Worker{}
	c := &w.Config
	fs.StringVar(&w.coordinators, "coordinators", "", "coordinator API addresses, comma-separated (or SLUICE_COORDINATORS)")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for the worker's id and data")
	fs.StringVar(&c.Addr, "addr", "", "host:port this worker advertises and serves its blocks on (Arrow Flight)")
	fs.Func("block-memory", "bytes of blocks kept in memory before spilling to --data-dir (default 1GiB)", func(v string) error {
		n, err := ParseSize(v)
		c.BlockMemory = n
		return err
	})
	fs.Func("split-bytes", "input bytes per scan task of the jobs this worker lays out (default 256MiB, and at least one task per CPU of the cluster)", func(v string) error {
		n, err := ParseSize(v)
		c.SplitBytes = n
		return err
	})
	fs.DurationVar(&c.TaskDelay, "task-delay", 0, "wait this long before each task of a plan job (testing: stretches short jobs for chaos tests)")
	fs.StringVar(&w.resources, "resources", "", "what the worker offers: cpu=N,gpu=N,memory=SIZE (default: all CPUs, no GPU)")
	fs.StringVar(&w.tokenFile, "token-file", "", "file holding the shared bearer token (or SLUICE_TOKEN)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", time.Second, "how often to heartbeat")
	fs.StringVar(&w.envAllow, "env-allow", os.Getenv(plans.EnvAllowVar), "environment variables of this worker that plans' templates may read with env, comma-separated (or "+plans.EnvAllowVar+"); credentials never")
	fs.StringVar(&w.allowedPaths, "allowed-paths", "", "directories and URL prefixes plans may write below, comma-separated (default: the working directory, the temporary directory and s3://); a destination elsewhere, \"..\" included, is refused")
	w.tls.Declare(fs, true)
}

// Run starts the worker from the parsed flags, logging to stderr, and
// returns when ctx ends or the worker fails.
func (w *Worker) Run(ctx context.Context, stderr io.Writer) error {
	c, err := w.config()
	if err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	wk, err := worker.New(c)
	if err != nil {
		return err
	}
	return wk.Run(ctx)
}

// config is the worker.Config the parsed flags make.
func (w *Worker) config() (worker.Config, error) {
	c := w.Config
	var err error
	if c.Coordinators, err = Coordinators(w.coordinators); err != nil {
		return c, err
	}
	if c.Token, err = LoadToken(w.tokenFile); err != nil {
		return c, err
	}
	if c.Resources, err = ParseResources(w.resources); err != nil {
		return c, err
	}
	if c.ServerTLS, c.TLS, err = w.tls.Configs(); err != nil {
		return c, err
	}
	c.EnvAllow = plans.ParseEnvAllow(w.envAllow)
	if c.AllowedPaths = plans.ParseEnvAllow(w.allowedPaths); len(c.AllowedPaths) == 0 {
		wd, err := os.Getwd()
		if err != nil {
			return c, err
		}
		c.AllowedPaths = []string{wd, os.TempDir(), "s3://"}
	}
	return c, nil
}

// RunWorker parses args as `sluice worker`'s flags and runs the worker:
// the whole command, for a program's own `worker` subcommand. Usage and
// flag errors go to stderr.
func RunWorker(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var w Worker
	w.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("worker: unexpected arguments %q: the worker takes flags only", fs.Args())
	}
	return w.Run(ctx, stderr)
}
