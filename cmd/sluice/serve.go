package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/infer/serve"
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
		},
		run: func(ctx context.Context, env *env, args []string) error {
			if len(args) > 0 {
				return errUsage
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
		},
		run: func(ctx context.Context, env *env, args []string) error {
			if len(args) > 0 || f.replicas == "" {
				return fmt.Errorf("give --replicas: %w", errUsage)
			}
			cfg := router.DefaultConfig()
			cfg.Policy, cfg.PrefixBytes = f.policy, f.prefix
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
