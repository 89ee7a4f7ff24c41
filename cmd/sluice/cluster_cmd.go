package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
	"github.com/sluicehq/sluice/plans"
)

// Commands of the cluster: coordinator, worker, submit, jobs, job status,
// job cancel, cluster status.

func init() {
	var co coordinator.Config
	var coTokenFile, coSecretFile string
	var coTLS tlsFlags
	register(&command{
		name:    "coordinator",
		summary: "run a coordinator: a Raft node of the cluster with its HTTP API",
		flags: func(fs *flag.FlagSet) {
			co = coordinator.DefaultConfig()
			fs.StringVar(&co.NodeID, "node-id", "", "this node's id, unique in the cluster (n1)")
			fs.StringVar(&co.DataDir, "data-dir", "", "directory for the Raft log, stable store and snapshots")
			fs.StringVar(&co.RaftAddr, "raft-addr", "", "host:port of the Raft transport (reachable by the other coordinators)")
			fs.StringVar(&co.APIAddr, "api-addr", "", "host:port of the HTTP API")
			fs.BoolVar(&co.Bootstrap, "bootstrap", false, "start a new cluster with this node as its first voter")
			fs.StringVar(&co.Join, "join", "", "join the cluster through the coordinator API at this URL")
			fs.StringVar(&coTokenFile, "token-file", "", "file holding the bearer token of clients and workers (or SLUICE_TOKEN)")
			fs.StringVar(&coSecretFile, "cluster-secret-file", "", "file holding the cluster secret, known to coordinators only: authenticates Raft and joins (or SLUICE_CLUSTER_SECRET; default: the token, which lets token holders forge Raft traffic)")
			fs.DurationVar(&co.WorkerTimeout, "worker-timeout", co.WorkerTimeout, "declare a worker dead after this long without a heartbeat")
			fs.StringVar(&co.LogStore, "log-store", "bolt", "the durable Raft log: bolt (raft-boltdb) or wal (raft-wal)")
			coTLS.declare(fs, true)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			if !co.Bootstrap && co.Join == "" && !coordinator.HasState(co.DataDir) {
				return errors.New("want --bootstrap (a new cluster) or --join API_URL (an existing one)")
			}
			tok, err := loadToken(coTokenFile)
			if err != nil {
				return err
			}
			co.Token = tok
			if co.Secret, err = loadSecret(coSecretFile); err != nil {
				return err
			}
			if co.TLS, co.ClientTLS, err = coTLS.configs(); err != nil {
				return err
			}
			co.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
			co.RaftLog = e.stderr
			if co.Secret == "" {
				co.Logger.Warn("no --cluster-secret-file: the token is also the cluster secret, so every client and worker holding it can forge Raft traffic and join coordinators")
			}
			c, err := coordinator.Start(ctx, co)
			if err != nil {
				return err
			}
			co.Logger.Info("coordinator started", "node", co.NodeID, "api", c.URL(), "raft", co.RaftAddr)
			<-ctx.Done()
			return c.Shutdown()
		},
	})

	var wc worker.Config
	var wCoords, wTokenFile, wResources string
	var wTLS tlsFlags
	register(&command{
		name:    "worker",
		summary: "run a worker: register with the coordinators and run the tasks they assign",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&wCoords, "coordinators", "", "coordinator API addresses, comma-separated (or SLUICE_COORDINATORS)")
			fs.StringVar(&wc.DataDir, "data-dir", "", "directory for the worker's id and data")
			fs.StringVar(&wc.Addr, "addr", "", "host:port this worker advertises and serves its blocks on (Arrow Flight)")
			fs.Func("block-memory", "bytes of blocks kept in memory before spilling to --data-dir (default 1GiB)", func(v string) error {
				n, err := parseSize(v)
				wc.BlockMemory = n
				return err
			})
			fs.Func("split-bytes", "input bytes per scan task of the jobs this worker lays out (default 256MiB, and at least one task per CPU of the cluster)", func(v string) error {
				n, err := parseSize(v)
				wc.SplitBytes = n
				return err
			})
			fs.DurationVar(&wc.TaskDelay, "task-delay", 0, "wait this long before each task of a plan job (testing: stretches short jobs for chaos tests)")
			fs.StringVar(&wResources, "resources", "", "what the worker offers: cpu=N,gpu=N,memory=SIZE (default: all CPUs, no GPU)")
			fs.StringVar(&wTokenFile, "token-file", "", "file holding the shared bearer token (or SLUICE_TOKEN)")
			fs.DurationVar(&wc.Heartbeat, "heartbeat", time.Second, "how often to heartbeat")
			wTLS.declare(fs, true)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			var err error
			if wc.Coordinators, err = coordinators(wCoords); err != nil {
				return err
			}
			if wc.Token, err = loadToken(wTokenFile); err != nil {
				return err
			}
			if wc.Resources, err = parseResources(wResources); err != nil {
				return err
			}
			if wc.ServerTLS, wc.TLS, err = wTLS.configs(); err != nil {
				return err
			}
			wc.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
			w, err := worker.New(wc)
			if err != nil {
				return err
			}
			return w.Run(ctx)
		},
	})

	var cf clientFlags
	var po planFlags
	var retries int
	register(&command{
		name:    "submit",
		args:    "plan.yaml",
		summary: "validate a plan and submit it to the cluster; print the job (or schedule) id",
		flags: func(fs *flag.FlagSet) {
			po.declare(fs)
			cf.declare(fs)
			fs.IntVar(&retries, "max-retries", 3, "retry a failed task up to this many times")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return submitPlan(ctx, e, args, &cf, &po, retries)
		},
	})
	register(&command{
		name:    "jobs",
		summary: "list the cluster's jobs",
		flags:   cf.declare,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			cl, err := cf.client()
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
			cf.declare(fs)
			fs.BoolVar(&wait, "wait", false, "wait until the job finishes")
		},
		run: func(ctx context.Context, e *env, args []string) error { return jobStatus(ctx, e, args, &cf, wait) },
	})
	register(&command{
		name:    "job cancel",
		args:    "ID",
		summary: "cancel a job",
		flags:   cf.declare,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return errUsage
			}
			cl, err := cf.client()
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
		flags:   cf.declare,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			cl, err := cf.client()
			if err != nil {
				return err
			}
			var st api.ClusterStatus
			if err := cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			printStatus(e, &st)
			return nil
		},
	})
}

// clientFlags are the flags of the commands that call the coordinators.
type clientFlags struct {
	coordinators, tokenFile string
	tls                     tlsFlags
}

func (c *clientFlags) declare(fs *flag.FlagSet) {
	*c = clientFlags{}
	fs.StringVar(&c.coordinators, "coordinators", "", "coordinator API addresses, comma-separated (or SLUICE_COORDINATORS)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the shared bearer token (or SLUICE_TOKEN)")
	c.tls.declare(fs, false)
}

// tlsFlags are the certificate flags; without them everything is plain
// TCP and HTTP.
type tlsFlags struct{ cert, key, ca string }

func (t *tlsFlags) declare(fs *flag.FlagSet, server bool) {
	*t = tlsFlags{}
	if server {
		fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate: serve over TLS (a coordinator's API and Raft, a worker's block server)")
		fs.StringVar(&t.key, "tls-key", "", "PEM private key of --tls-cert")
	}
	fs.StringVar(&t.ca, "tls-ca", "", "PEM CA bundle that signs the coordinators' certificates (or SLUICE_TLS_CA; default: the system's)")
}

// configs are the server config (nil without --tls-cert) and the client
// config (nil when no TLS flag is given).
func (t *tlsFlags) configs() (server, client *tls.Config, err error) {
	ca := t.ca
	if ca == "" {
		ca = os.Getenv("SLUICE_TLS_CA")
	}
	if (t.cert == "") != (t.key == "") {
		return nil, nil, fmt.Errorf("--tls-cert (%q) and --tls-key (%q) go together", t.cert, t.key)
	}
	if t.cert != "" {
		pair, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-cert: %w", err)
		}
		server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	if t.cert == "" && ca == "" {
		return nil, nil, nil
	}
	client = &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-ca: %w", err)
		}
		client.RootCAs = x509.NewCertPool()
		if !client.RootCAs.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", ca)
		}
	}
	return server, client, nil
}

func (c *clientFlags) client() (*api.Client, error) {
	urls, err := coordinators(c.coordinators)
	if err != nil {
		return nil, err
	}
	tok, err := loadToken(c.tokenFile)
	if err != nil {
		return nil, err
	}
	_, tc, err := c.tls.configs()
	if err != nil {
		return nil, err
	}
	cl := api.NewClient(urls, tok)
	cl.SetTLS(tc)
	return cl, nil
}

func coordinators(flagValue string) ([]string, error) {
	v := flagValue
	if v == "" {
		v = os.Getenv("SLUICE_COORDINATORS")
	}
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no coordinators: give --coordinators host:port[,host:port] or set SLUICE_COORDINATORS")
	}
	return out, nil
}

func loadToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv("SLUICE_TOKEN")); t != "" {
		return t, nil
	}
	return "", errors.New("no token: give --token-file FILE or set SLUICE_TOKEN")
}

// loadSecret reads the cluster secret from file or SLUICE_CLUSTER_SECRET;
// "" when neither is given.
func loadSecret(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv("SLUICE_CLUSTER_SECRET")), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--cluster-secret-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("--cluster-secret-file %s: want at least 16 characters (openssl rand -hex 32 > %s)", file, file)
	}
	return t, nil
}

// parseResources reads cpu=N,gpu=N,memory=SIZE.
func parseResources(s string) (state.Resources, error) {
	r := state.Resources{CPU: numCPU()}
	if s == "" {
		return r, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return r, fmt.Errorf("--resources %q: want cpu=N,gpu=N,memory=SIZE", s)
		}
		var err error
		switch k {
		case "cpu":
			r.CPU, err = strconv.Atoi(v)
		case "gpu":
			r.GPU, err = strconv.Atoi(v)
		case "memory", "mem":
			r.Memory, err = parseSize(v)
		default:
			return r, fmt.Errorf("--resources: unknown resource %q: want cpu, gpu or memory", k)
		}
		if err != nil || r.CPU < 0 || r.GPU < 0 || r.Memory < 0 {
			return r, fmt.Errorf("--resources %s=%q: want a non-negative number", k, v)
		}
	}
	return r, nil
}

// parseSize reads 512, 64MiB, 16GiB, 2GB, 1TiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			s, mul = s[:len(s)-len(u.suffix)], u.mul
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (GiB, MB, …)", s)
	}
	return int64(f * float64(mul)), nil
}

func submitPlan(ctx context.Context, e *env, args []string, cf *clientFlags, o *planFlags, retries int) error {
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
	cl, err := cf.client()
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

func jobStatus(ctx context.Context, e *env, args []string, cf *clientFlags, wait bool) error {
	if len(args) != 1 {
		return errUsage
	}
	cl, err := cf.client()
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

func printStatus(e *env, st *api.ClusterStatus) {
	fmt.Fprintf(e.stdout, "leader %s, term %d (answered by %s)\n\n", st.Leader, st.Term, st.Node)
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRAFT\tAPI\tSUFFRAGE\tLEADER")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", n.ID, n.RaftAddr, n.APIAddr, n.Suffrage, n.Leader)
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

func numCPU() int { return runtime.NumCPU() }
