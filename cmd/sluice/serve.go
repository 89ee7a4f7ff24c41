package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/infer/serve"
	"github.com/sluicehq/sluice/infer/serve/deploy"
	"github.com/sluicehq/sluice/infer/serve/router"
)

// sluice serve: the OpenAI-compatible server over one engine.

func init() {
	var f struct {
		engineFlags
		host, name, apiKey    string
		port, maxQueue        int
		timeout, drainTimeout time.Duration
		runtimeLoRA           bool
		// On the cluster (--coordinators): a deployment of replicas.
		cluster                    cli.Client
		replicas, minRepl, maxRepl int
		resources, deployment, dir string
		fs                         *flag.FlagSet
	}
	register(&command{
		name:    "serve",
		summary: "serve a model over OpenAI's completions and chat API (one engine, continuous batching across requests)",
		flags: func(fs *flag.FlagSet) {
			f.engineFlags.declare(fs)
			d := serve.DefaultConfig()
			fs.StringVar(&f.host, "host", "127.0.0.1", "address to listen on")
			fs.IntVar(&f.port, "port", 8000, "port to listen on (0: any free port)")
			fs.StringVar(&f.name, "served-model-name", "", "the model name clients give (default: --model)")
			fs.StringVar(&f.apiKey, "api-key", "", "when set, every call but /health and /metrics needs \"Authorization: Bearer KEY\"")
			fs.IntVar(&f.maxQueue, "max-queue", d.MaxQueue, "completions (prompts × n) admitted at once; past it requests get 429")
			fs.DurationVar(&f.timeout, "request-timeout", d.RequestTimeout, "abort a request not finished after this (0: never)")
			fs.BoolVar(&f.runtimeLoRA, "allow-runtime-lora-updating", false, "enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING): they read any path the server can")
			fs.DurationVar(&f.drainTimeout, "shutdown-timeout", d.ShutdownTimeout, "on SIGINT or SIGTERM, wait this long for requests in flight before closing them")
			f.cluster.Flags(fs)
			fs.IntVar(&f.replicas, "replicas", 1, "with --coordinators: the deployment's replicas at start, each a job on a worker")
			fs.IntVar(&f.minRepl, "min-replicas", 0, "with --coordinators: the fewest replicas `sluice router --deployment` scales to (default --replicas)")
			fs.IntVar(&f.maxRepl, "max-replicas", 0, "with --coordinators: the most replicas `sluice router --deployment` scales to (default --replicas)")
			fs.StringVar(&f.resources, "resources", "cpu=1", "with --coordinators: what each replica needs of its worker, cpu=N,gpu=N,memory=SIZE")
			fs.StringVar(&f.deployment, "deployment", "", "with --coordinators: the deployment's name, [a-z0-9-]+ (default --served-model-name, or the model directory's name)")
			fs.StringVar(&f.dir, "dir", "", "with --coordinators: a directory the workers share for the deployment's spec (default out/serve/NAME)")
			f.fs = fs
		},
		run: func(ctx context.Context, env *env, args []string) error {
			if len(args) > 0 {
				return errUsage
			}
			if c := f.fs.Lookup("coordinators"); c != nil && c.Value.String() != "" {
				// Only the flag: SLUICE_COORDINATORS alone does not move
				// the server onto a cluster.
				return createDeployment(ctx, env, f.fs, &f.cluster, f.model, f.name, f.deployment, f.dir, f.resources, f.replicas, f.minRepl, f.maxRepl)
			}
			if f.port < 0 || f.port > 65535 {
				return fmt.Errorf("--port must be in [0, 65535], got %d", f.port)
			}
			cfg := serve.DefaultConfig()
			cfg.ModelName, cfg.APIKey, cfg.MaxQueue = f.name, f.apiKey, f.maxQueue
			cfg.RequestTimeout, cfg.ShutdownTimeout = f.timeout, f.drainTimeout
			cfg.AllowRuntimeLoRA = f.runtimeLoRA
			if cfg.ModelName == "" {
				cfg.ModelName = f.model
			}
			if f.maxQueue < 1 {
				return fmt.Errorf("--max-queue must be positive, got %d", f.maxQueue)
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			e, l, closeAll, err := f.engineFlags.open()
			if err != nil {
				return err
			}
			s, err := serve.New(e, l.Tokenizer, cfg)
			if err != nil {
				return errors.Join(err, closeAll())
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(f.port)))
			if err != nil {
				return errors.Join(fmt.Errorf("--host/--port: %w", err), closeAll())
			}
			fmt.Fprintf(env.stdout, "sluice serve: %s on http://%s (model %q)\n", f.model, ln.Addr(), cfg.ModelName)
			err = s.Run(ctx, ln)
			return errors.Join(err, closeAll())
		},
	})
}

func init() {
	var f struct {
		listen, replicas, policy string
		prefix                   int
		cluster                  cli.Client
		deployment               string
		ctl                      deploy.ControllerConfig
		fs                       *flag.FlagSet
	}
	register(&command{
		name:    "router",
		summary: "route OpenAI API requests over sluice serve replicas (prefix affinity, power of two choices, retries)",
		flags: func(fs *flag.FlagSet) {
			d := router.DefaultConfig()
			fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
			fs.StringVar(&f.replicas, "replicas", "", "comma-separated base URLs of the replicas, http://host:port (required)")
			fs.StringVar(&f.policy, "policy", d.Policy, "affinity (prompt prefix, then load), p2c (power of two choices) or random")
			fs.IntVar(&f.prefix, "prefix-bytes", d.PrefixBytes, "bytes of the prompt's start that key its affinity")
			f.cluster.Flags(fs)
			dc := deploy.DefaultControllerConfig()
			fs.StringVar(&f.deployment, "deployment", "", "route over this deployment's replicas (sluice serve --coordinators), as the coordinators report them, and scale it between its --min-replicas and --max-replicas (instead of --replicas)")
			fs.DurationVar(&f.ctl.Interval, "scale-interval", dc.Interval, "with --deployment: how often to read the replicas and their queues")
			fs.IntVar(&f.ctl.UpQueue, "scale-up-queue", dc.UpQueue, "with --deployment: add a replica while more requests than this per replica wait")
			fs.IntVar(&f.ctl.UpAfter, "scale-up-after", dc.UpAfter, "with --deployment: ... for this many readings in a row")
			fs.IntVar(&f.ctl.DownAfter, "scale-down-after", dc.DownAfter, "with --deployment: remove a replica after this many readings in a row with no request running or waiting")
			f.fs = fs
		},
		run: func(ctx context.Context, env *env, args []string) error {
			if len(args) > 0 || (f.replicas == "") == (f.deployment == "") {
				return fmt.Errorf("give --replicas or --deployment (one of them): %w", errUsage)
			}
			cfg := router.DefaultConfig()
			cfg.Policy, cfg.PrefixBytes = f.policy, f.prefix
			if f.deployment != "" {
				return routeDeployment(ctx, env, cfg, &f.cluster, f.fs, f.deployment, f.ctl, f.listen)
			}
			for r := range strings.SplitSeq(f.replicas, ",") {
				if r = strings.TrimSpace(r); r != "" {
					cfg.Replicas = append(cfg.Replicas, r)
				}
			}
			r, err := router.New(cfg)
			if err != nil {
				return fmt.Errorf("--replicas/--policy: %w", err)
			}
			ln, err := net.Listen("tcp", f.listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			fmt.Fprintf(env.stdout, "sluice router: http://%s over %d replicas (%s)\n", ln.Addr(), len(cfg.Replicas), cfg.Policy)
			hs := &http.Server{Handler: r, ReadHeaderTimeout: 30 * time.Second}
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return hs.Shutdown(sctx)
		},
	})
}

// createDeployment submits a deployment's replica jobs (sluice serve
// --coordinators): each runs `sluice serve` with this command's serving
// flags on a worker.
func createDeployment(ctx context.Context, env *env, fs *flag.FlagSet, cf *cli.Client, model, served, name, dir, resources string, replicas, minR, maxR int) error {
	if model == "" {
		return fmt.Errorf("give --model: %w", errUsage)
	}
	if name == "" {
		name = served
		if name == "" {
			name = filepath.Base(filepath.Clean(model))
		}
		name = strings.Trim(regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(name), "-"), "-")
	}
	if replicas < 1 {
		return fmt.Errorf("--replicas must be at least 1, got %d", replicas)
	}
	if minR == 0 {
		minR = replicas
	}
	if maxR == 0 {
		maxR = max(replicas, minR)
	}
	needs, err := cli.ParseResources(resources)
	if err != nil {
		return fmt.Errorf("--resources: %w", err)
	}
	if dir == "" {
		dir = filepath.Join("out", "serve", name)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	abs := func(p string) string { // local paths as the workers see them
		if strings.Contains(p, "://") {
			return p
		}
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	// The replicas' flags: every serving flag given here, but those of the
	// deployment and the address (each replica's own).
	cluster := map[string]bool{"coordinators": true, "token-file": true, "timeout": true, "tls-ca": true, "tls-cert": true, "tls-key": true,
		"replicas": true, "min-replicas": true, "max-replicas": true, "resources": true, "deployment": true, "dir": true,
		"model": true, "host": true, "port": true}
	var args []string
	fs.Visit(func(fl *flag.Flag) {
		if cluster[fl.Name] {
			return
		}
		v := fl.Value.String()
		if fl.Name == "tokenizer" {
			v = abs(v)
		}
		args = append(args, "--"+fl.Name+"="+v)
	})
	spec := deploy.Spec{Name: name, Model: abs(model), Args: args, MinReplicas: minR, MaxReplicas: maxR}
	if err := spec.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(spec.Model); err != nil && !strings.Contains(spec.Model, "://") {
		return fmt.Errorf("--model: %w (the workers read the model at this path)", err)
	}
	cl, err := cf.Client()
	if err != nil {
		return err
	}
	ids, err := deploy.Create(ctx, cl, spec, dir, replicas, needs)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "sluice serve: deployment %s: %d replicas submitted (%s), %d to %d; spec in %s\n", name, len(ids), strings.Join(ids, ", "), minR, maxR, dir)
	fmt.Fprintf(env.stdout, "route and scale it with: sluice router --coordinators ... --deployment %s\n", name)
	return nil
}

// routeDeployment runs a router over a deployment's replicas, with its
// controller.
func routeDeployment(ctx context.Context, env *env, cfg router.Config, cf *cli.Client, fs *flag.FlagSet, name string, ctl deploy.ControllerConfig, listen string) error {
	if c := fs.Lookup("coordinators"); c == nil || c.Value.String() == "" {
		if os.Getenv("SLUICE_COORDINATORS") == "" {
			return fmt.Errorf("--deployment needs --coordinators (or SLUICE_COORDINATORS): %w", errUsage)
		}
	}
	cl, err := cf.Client()
	if err != nil {
		return err
	}
	cfg.Dynamic = true
	r, err := router.New(cfg)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	ctl.API, ctl.Deployment = cl, name
	c, err := deploy.NewController(ctl, r)
	if err != nil {
		return err
	}
	// A first reading before the address is out, so that the router has
	// the replicas already serving when its first request comes.
	if err := c.Step(ctx); err != nil {
		fmt.Fprintf(env.stderr, "sluice router: reading deployment %s: %v (trying again every %s)\n", name, err, ctl.Interval)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	fmt.Fprintf(env.stdout, "sluice router: http://%s over deployment %s (%s, %d replicas serving)\n", ln.Addr(), name, cfg.Policy, c.Stats().Serving)
	hs := &http.Server{Handler: r, ReadHeaderTimeout: 30 * time.Second}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	go func() { errc <- c.Run(cctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
