package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/harness"
	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/internal/salesgen"
)

// The benchmark commands: flags into bench/harness's configs.

func init() {
	var gen struct {
		rows, rowGroup int64
		files          int
		seed           uint64
	}
	register(&command{
		name:    "gen sales",
		args:    "DIR",
		summary: "generate the etl/sales workload's Parquet files (seeded) into DIR",
		flags: func(fs *flag.FlagSet) {
			fs.Int64Var(&gen.rows, "rows", 10_000_000, "number of rows")
			fs.IntVar(&gen.files, "files", 8, "number of files")
			fs.Int64Var(&gen.rowGroup, "row-group", 1<<20, "rows per row group")
			fs.Uint64Var(&gen.seed, "seed", 0, "seed")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return errUsage
			}
			paths, err := salesgen.WriteFiles(ctx, args[0], gen.seed, gen.rows, gen.files, gen.rowGroup)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %d rows in %d files under %s\n", gen.rows, len(paths), args[0])
			return nil
		},
	})

	var q harness.QueryConfig
	register(&command{
		name:    "bench etl-query",
		args:    "q1|q2|q3|q4|q5",
		summary: "run one etl/sales query once (used by `bench etl`)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&q.In, "in", "", "input Parquet directory")
			fs.StringVar(&q.Users, "users", "", "the users table's Parquet file (q4)")
			fs.StringVar(&q.Out, "out", "", "output directory")
			fs.StringVar(&q.CPUProfile, "cpuprofile", "", "write a CPU profile to this file")
			fs.StringVar(&q.Stats, "stats", "", "write the bytes read and written as JSON to this file")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 || !harness.IsQuery(args[0]) || q.In == "" || q.Out == "" {
				return errUsage
			}
			q.Query = args[0]
			return harness.RunQuery(ctx, q)
		},
	})

	var etl harness.ETLConfig
	register(&command{
		name:    "bench etl",
		summary: "run the etl/sales-10m workload against DuckDB on the same files",
		flags: func(fs *flag.FlagSet) {
			fs.Int64Var(&etl.Rows, "rows", 10_000_000, "rows of generated data")
			fs.IntVar(&etl.Files, "files", 8, "files of generated data")
			fs.IntVar(&etl.Runs, "runs", 5, "runs per query and engine (the median is reported)")
			fs.StringVar(&etl.Dir, "dir", ".cache/bench", "working directory for data and outputs")
			fs.StringVar(&etl.DuckDB, "duckdb", "", "DuckDB peer binary (default: build bench/duckdb into DIR/duckbench)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return harness.ETL(ctx, e.stdout, e.stderr, etl)
		},
	})

	var s3 harness.S3Config
	register(&command{
		name:    "bench etl-s3",
		summary: "run etl/sales-10m Q1 with input and output in MinIO on loopback against local files",
		flags: func(fs *flag.FlagSet) {
			fs.Int64Var(&s3.Rows, "rows", 10_000_000, "rows of generated data")
			fs.IntVar(&s3.Files, "files", 8, "files of generated data")
			fs.IntVar(&s3.Runs, "runs", 5, "runs per side (the median is reported)")
			fs.StringVar(&s3.Dir, "dir", ".cache/bench", "working directory for data and outputs")
			fs.StringVar(&s3.MinIO, "minio", ".cache/bin/minio", "MinIO server binary (go test ./storage/... installs it there)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return harness.S3(ctx, e.stdout, e.stderr, s3)
		},
	})

	var cl harness.ClusterConfig
	var workers, queries string
	register(&command{
		name:    "bench cluster",
		summary: "run etl/sales-10m on a loopback cluster of 1, 2, 4 workers against the local executor (--failover: cluster/failover)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&workers, "workers", "1,2,4", "worker counts to measure, comma-separated")
			fs.Int64Var(&cl.Rows, "rows", 10_000_000, "rows of generated data")
			fs.IntVar(&cl.Files, "files", 8, "files of generated data")
			fs.IntVar(&cl.Runs, "runs", 3, "runs per query, worker count and side (the median is reported)")
			fs.IntVar(&cl.CPUPerWorker, "cpu-per-worker", 0, "CPUs each worker offers and may use (GOMAXPROCS) (default: all CPUs / the largest worker count, at least 1)")
			fs.StringVar(&cl.Dir, "dir", ".cache/bench", "working directory for data, outputs and the cluster's files")
			fs.StringVar(&queries, "queries", "q1,q2,q3", "queries to run, comma-separated")
			fs.BoolVar(&cl.Failover, "failover", false, "run cluster/failover instead: 3 coordinators, the largest worker count; kill -9 the leader, then a worker, mid-job")
			fs.Int64Var(&cl.FailoverRows, "failover-rows", 1_000_000, "rows of cluster/failover's data")
			fs.DurationVar(&cl.WorkerTimeout, "worker-timeout", 5*time.Second, "the coordinators' --worker-timeout")
			fs.Func("split-bytes", "input `SIZE` per scan task of the layout, e.g. 40MiB (default: the worker's: 256 MiB, and at least one task per CPU of the cluster); passed to the workers' --split-bytes", func(v string) error {
				n, err := cli.ParseSize(v)
				cl.SplitBytes = n
				return err
			})
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			cl.Workers = nil
			for _, s := range strings.Split(workers, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 {
					return fmt.Errorf("--workers %q: want positive counts separated by commas", workers)
				}
				cl.Workers = append(cl.Workers, n)
			}
			cl.Queries = nil
			for _, q := range strings.Split(queries, ",") {
				cl.Queries = append(cl.Queries, strings.TrimSpace(q))
			}
			return harness.Cluster(ctx, e.stdout, e.stderr, cl)
		},
	})

	var sv harness.ServeConfig
	register(&command{
		name:    "bench serve",
		summary: "online benchmark of an OpenAI-compatible server: Poisson arrivals; TTFT, TPOT, ITL, throughput as JSON",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&sv.URL, "url", "", "the server's base URL, http://host:port (required)")
			fs.StringVar(&sv.Model, "model", "", "the model name (default: the server's first in /v1/models)")
			fs.IntVar(&sv.Requests, "requests", 512, "number of requests")
			fs.StringVar(&sv.Rate, "rate", "inf", "requests per second, Poisson arrivals; inf sends all at once")
			fs.IntVar(&sv.MinLen, "min-len", 128, "shortest prompt in tokens (infer/offline-512: 128)")
			fs.IntVar(&sv.MaxLen, "max-len", 512, "longest prompt in tokens (infer/offline-512: 512)")
			fs.IntVar(&sv.OutputLen, "output-len", 128, "output tokens per request, EOS ignored (infer/offline-512: 128)")
			fs.IntVar(&sv.Vocab, "vocab", 128256, "prompt token ids are uniform in [0, vocab) (bench-1b: 128256)")
			fs.Uint64Var(&sv.Seed, "seed", 0, "seed of the prompts and arrivals")
			fs.StringVar(&sv.APIKey, "api-key", "", "the server's API key")
			fs.StringVar(&sv.Output, "output", "json", "output: json or text")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 || sv.URL == "" {
				return fmt.Errorf("give --url: %w", errUsage)
			}
			return harness.Serve(ctx, e.stdout, sv)
		},
	})
}
