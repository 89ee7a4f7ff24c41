package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/train/trainjob"
	"github.com/sluicehq/sluice/tune/tunejob"
)

// trainCluster are sluice train's flags for a data-parallel run on a
// cluster: --num-workers ranks, each a job of the cluster (train/trainjob).
type trainCluster struct {
	client      cli.Client
	ranks       int
	host        string
	maxRestarts int
	cpu, gpu    int
	// stepDelay is --step-delay, which every rank gets too.
	stepDelay time.Duration
}

// driverFlags are the flags a rank does not get: the driver's own (those
// bind declares) and the data-parallel ones the driver sets per rank.
func driverFlags() []string {
	names := []string{"workers", "rank"}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	new(trainCluster).bind(fs)
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

func (tc *trainCluster) bind(fs *flag.FlagSet) {
	tc.client.Flags(fs)
	fs.IntVar(&tc.ranks, "num-workers", 0, "data-parallel on a cluster (with --coordinators): this many ranks, each a job on some worker; --out must be a directory every worker mounts")
	fs.StringVar(&tc.host, "rank-host", "", "with --num-workers: the address the ranks reach each other at (default: each worker's host name)")
	fs.IntVar(&tc.maxRestarts, "max-restarts", 3, "with --num-workers: restarts of every rank from the last checkpoint (--checkpoint-every) after one is lost")
	fs.IntVar(&tc.cpu, "cpu-per-worker", 1, "with --num-workers: CPUs each rank's task needs of its worker")
	fs.IntVar(&tc.gpu, "gpu-per-worker", 0, "with --num-workers: GPUs each rank's task needs of its worker")
}

// bindStepDelay declares --step-delay, which is not the driver's own: a
// rank gets it.
func (tc *trainCluster) bindStepDelay(fs *flag.FlagSet) {
	fs.DurationVar(&tc.stepDelay, "step-delay", 0, "wait this long after each step (testing: stretches short runs for chaos tests, as the worker's --task-delay)")
}

// afterStep is what a step's end waits (--step-delay).
func (tc *trainCluster) afterStep() {
	if tc.stepDelay > 0 {
		time.Sleep(tc.stepDelay)
	}
}

// run is the driver: it hands every flag given (but its own) and the plan
// file, if any, to each rank.
func (tc *trainCluster) run(ctx context.Context, e *env, fs *flag.FlagSet, args []string, out string) error {
	if tc.ranks < 1 {
		return fmt.Errorf("--coordinators: a training run on a cluster needs --num-workers N: %w", errUsage)
	}
	var rankArgs []string
	var serr error
	skip := driverFlags()
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(skip, f.Name) {
			return
		}
		v := f.Value.String()
		if (f.Name == "model" || f.Name == "data" || f.Name == "out" || f.Name == "resume") && v != "" && !storage.IsURL(v) {
			abs, err := filepath.Abs(v)
			if err != nil && serr == nil {
				serr = err
			}
			v = abs
		}
		rankArgs = append(rankArgs, "--"+f.Name+"="+v)
	})
	if serr != nil {
		return serr
	}
	for _, a := range args {
		abs, err := filepath.Abs(a)
		if err != nil {
			return err
		}
		rankArgs = append(rankArgs, abs)
	}
	cl, err := tc.client.Client()
	if err != nil {
		return err
	}
	return trainjob.Run(ctx, trainjob.Config{
		Jobs: rankJobs{api: cl, c: tunejob.Client{API: cl}}, Ranks: tc.ranks, Out: out, Args: rankArgs, Host: tc.host,
		Needs: trainjob.Needs{CPU: tc.cpu, GPU: tc.gpu}, MaxRestarts: tc.maxRestarts, Stdout: e.stdout, Log: e.stderr,
	})
}

// rankJobs is trainjob.Jobs over the coordinators' API (tune's client for
// a job's state and its cancel).
type rankJobs struct {
	api *api.Client
	c   tunejob.Client
}

func (j rankJobs) Submit(ctx context.Context, requestID, plan string, n trainjob.Needs) (string, error) {
	req := api.SubmitRequest{RequestID: requestID, File: "train-rank.yaml", Plan: plan,
		Needs: state.Resources{CPU: n.CPU, GPU: n.GPU, Memory: n.Memory}}
	var r api.IDResponse
	if err := j.api.Do(ctx, http.MethodPost, "/v1/jobs", req, &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

func (j rankJobs) State(ctx context.Context, id string) (trainjob.JobState, error) {
	st, err := j.c.State(ctx, id)
	return trainjob.JobState{Done: st.Done, Succeeded: st.Succeeded, State: st.State, Error: st.Error}, err
}

func (j rankJobs) Cancel(ctx context.Context, id string) error { return j.c.Cancel(ctx, id) }

// A worker process registers the function that runs a rank (as it does
// tune's trial function, tune.go).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := trainjob.Register(); err != nil {
			panic(err)
		}
	}
}
