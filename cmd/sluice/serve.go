package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/infer/serve"
)

// sluice serve: the OpenAI-compatible server over one engine.

func init() {
	var f struct {
		engineFlags
		host, name, apiKey    string
		port, maxQueue        int
		timeout, drainTimeout time.Duration
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
