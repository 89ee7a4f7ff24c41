package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/plans"
)

// Commands of the cluster: coordinator, worker, submit, jobs, job status,
// job cancel, cluster status.

func init() {
	var co cli.Coordinator
	register(&command{
		name:    "coordinator",
		summary: "run a coordinator: a Raft node of the cluster with its HTTP API",
		flags:   co.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			return co.Run(ctx, e.stderr)
		},
	})

	var w cli.Worker
	register(&command{
		name:    "worker",
		summary: "run a worker: register with the coordinators and run the tasks they assign",
		flags:   w.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			return w.Run(ctx, e.stderr)
		},
	})

	var cf cli.Client
	var po planFlags
	var retries int
	var keepPaths bool
	register(&command{
		name:    "submit",
		args:    "plan.yaml",
		summary: "validate a plan and submit it to the cluster; print the job (or schedule) id",
		flags: func(fs *flag.FlagSet) {
			po.declare(fs)
			cf.Flags(fs)
			fs.IntVar(&retries, "max-retries", 3, "retry a failed task up to this many times")
			fs.BoolVar(&keepPaths, "keep-paths", false, "send relative paths as written (each worker resolves them in its own directory) instead of resolving them against the current directory")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return submitPlan(ctx, e, args, &cf, &po, retries, keepPaths)
		},
	})
	register(&command{
		name:    "jobs",
		summary: "list the cluster's jobs",
		flags:   cf.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			cl, err := cf.Client()
			if err != nil {
				return err
			}
			var jobs []state.Job
			if err := cl.Do(ctx, http.MethodGet, "/v1/jobs", nil, &jobs); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tSUBMITTED\tERROR")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.Name, j.State, j.Submitted.Format(time.RFC3339), j.Error)
			}
			return tw.Flush()
		},
	})
	var wait bool
	register(&command{
		name:    "job status",
		args:    "ID",
		summary: "print a job's state and tasks; exit 0 only when it succeeded",
		flags: func(fs *flag.FlagSet) {
			cf.Flags(fs)
			fs.BoolVar(&wait, "wait", false, "wait until the job finishes")
		},
		run: func(ctx context.Context, e *env, args []string) error { return jobStatus(ctx, e, args, &cf, wait) },
	})
	register(&command{
		name:    "job cancel",
		args:    "ID",
		summary: "cancel a job",
		flags:   cf.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return errUsage
			}
			cl, err := cf.Client()
			if err != nil {
				return err
			}
			if err := cl.Do(ctx, http.MethodPost, "/v1/jobs/"+args[0]+"/cancel", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s cancelled\n", args[0])
			return nil
		},
	})
	register(&command{
		name:    "cluster status",
		summary: "print the coordinators (leader, term), the workers and their resources",
		flags:   cf.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			cl, err := cf.Client()
			if err != nil {
				return err
			}
			var st api.ClusterStatus
			if err := cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			printStatus(e, &st, probeNodes(ctx, &cf, st.Nodes))
			return nil
		},
	})
}

func submitPlan(ctx context.Context, e *env, args []string, cf *cli.Client, o *planFlags, retries int, keepPaths bool) error {
	if len(args) != 1 {
		return errUsage
	}
	file := args[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// The same checks as `sluice validate`.
	p, lints := plans.Parse(file, data)
	var vars plans.Vars
	if p != nil {
		if vars, err = o.vars(p); err != nil {
			return err
		}
		lints = append(lints, plans.Validate(p, vars)...).Sort()
	}
	if err := report(e, file, lints); err != nil {
		return err
	}
	if !keepPaths {
		// Workers run elsewhere: relative paths mean the directory the
		// plan is submitted from.
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		abs, changed, err := plans.AbsPaths(file, data, wd)
		if err != nil {
			return fmt.Errorf("%w\n(or pass --keep-paths to leave relative paths to each worker's directory)", err)
		}
		if len(changed) > 0 {
			fmt.Fprintf(e.stderr, "submit: relative paths resolved against %s: %s\n", wd, strings.Join(changed, ", "))
		}
		data = abs
	}
	cl, err := cf.Client()
	if err != nil {
		return err
	}
	var rid [8]byte
	rand.Read(rid[:])
	req := api.SubmitRequest{RequestID: "submit-" + hex.EncodeToString(rid[:]), File: file, Plan: string(data),
		Params: o.params, ScheduledTime: vars.ScheduledTime, RunID: vars.RunID, MaxRetries: retries,
		Needs: state.Resources{CPU: 1}}
	var r api.IDResponse
	if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", req, &r); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, r.ID)
	return nil
}

func jobStatus(ctx context.Context, e *env, args []string, cf *cli.Client, wait bool) error {
	if len(args) != 1 {
		return errUsage
	}
	cl, err := cf.Client()
	if err != nil {
		return err
	}
	var st api.JobStatus
	for {
		if err := cl.Do(ctx, http.MethodGet, "/v1/jobs/"+args[0], nil, &st); err != nil && !(wait && errors.Is(err, api.ErrUnavailable)) {
			return err
		}
		if !wait || st.Job.State.Done() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	j := st.Job
	fmt.Fprintf(e.stdout, "job %s (%s): %s\n", j.ID, j.Name, j.State)
	if len(st.Stages) > 1 {
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  stage\ttasks\tdone\trunning\tfailed\trows\tbytes\trows/s\toperators")
		for i, p := range st.Stages {
			fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%s\n", i, p.Tasks, p.Succeeded, p.Running, p.Failed, p.Rows, p.Bytes, p.RowsPerSec, p.Name)
		}
		tw.Flush()
	}
	// Every task of a small job; of a large one, those that are not done.
	for _, t := range st.Tasks {
		if len(st.Tasks) > 20 && t.State == state.TaskSucceeded && t.Error == "" {
			continue
		}
		fmt.Fprintf(e.stdout, "  task %s: %s, attempt %d, worker %q, rows %d", t.ID, t.State, t.Attempt, t.Worker, t.Rows)
		if t.Error != "" {
			fmt.Fprintf(e.stdout, ", error: %s", t.Error)
		}
		fmt.Fprintln(e.stdout)
	}
	if len(j.Output) > 0 {
		fmt.Fprintf(e.stdout, "  output: %d files\n", len(j.Output))
	}
	if j.State != state.JobSucceeded {
		if j.Error != "" {
			return fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Error)
		}
		return fmt.Errorf("job %s is %s", j.ID, j.State)
	}
	return nil
}

// probeNodes asks each coordinator's API for its status, at once and
// briefly: what each answered ("yes"), or why not. A node without an API
// address gets "?".
func probeNodes(ctx context.Context, cf *cli.Client, nodes []api.NodeStatus) []string {
	out := make([]string, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n.APIAddr == "" {
			out[i] = "?"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := cf.ClientOf([]string{n.APIAddr})
			if err != nil {
				out[i] = "no: " + err.Error()
				return
			}
			cl.Retry, cl.HTTP.Timeout = 0, 2*time.Second
			var st api.ClusterStatus
			if err := cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				out[i] = "NO: " + err.Error()
				return
			}
			out[i] = "yes"
		}()
	}
	wg.Wait()
	return out
}

func printStatus(e *env, st *api.ClusterStatus, answers []string) {
	fmt.Fprintf(e.stdout, "leader %s, term %d (answered by %s)\n\n", st.Leader, st.Term, st.Node)
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRAFT\tAPI\tSUFFRAGE\tLEADER\tANSWERS")
	for i, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", n.ID, n.RaftAddr, n.APIAddr, n.Suffrage, n.Leader, answers[i])
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "WORKER\tADDR\tALIVE\tCPU\tGPU\tMEMORY\tFREE CPU\tTASKS\tLAST HEARTBEAT")
	for _, w := range st.Workers {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%d\t%d\t%s\n", w.ID, w.Addr, w.Alive, w.Resources.CPU, w.Resources.GPU,
			w.Resources.Memory, w.Free.CPU, w.Tasks, w.LastHeartbeat.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\ntasks: %v\n", st.Tasks)
}
