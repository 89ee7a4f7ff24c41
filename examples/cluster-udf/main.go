// Command cluster-udf runs a program's own Go function in plans, locally
// and on a cluster.
//
// A plan is YAML: it cannot carry code. It names the Go function instead
// (`map_batches: {fn: add_tax}`), and every program that compiles the plan
// must have registered a function by that name. On a cluster each worker
// compiles the plan itself, so the workers run this program's binary
// (`cluster-udf worker ...`), not the sluice command; coordinators and
// submission stay sluice's. See README.md.
//
//	cluster-udf run [-param name=value]... plan.yaml
//	cluster-udf validate plan.yaml
//	cluster-udf worker -coordinators URL -data-dir DIR -addr HOST:PORT [-token-file FILE] [-resources cpu=N,gpu=N,memory=SIZE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
)

// Registered at init, so that every way this binary compiles a plan (run,
// validate, and each task a worker runs) knows the function.
func init() { plans.MustRegister("add_tax", addTax) }

// taxRates are the sales tax of each category; other categories pay
// defaultRate. A table lookup like this is what an expression step cannot do.
var taxRates = map[string]float64{"c0": 0.2, "c1": 0.2, "c2": 0.055, "c3": 0.1, "c4": 0}

const defaultRate = 0.2

// taxOf is the tax of one sale, in cents rounded half up.
func taxOf(category string, price float64, qty int32) float64 {
	rate, ok := taxRates[category]
	if !ok {
		rate = defaultRate
	}
	cents := int64(price*float64(qty)*rate*100 + 0.5)
	return float64(cents) / 100
}

var taxField = arrow.Field{Name: "tax", Type: arrow.PrimitiveTypes.Float64, Nullable: true}

// wantColumns are the columns add_tax reads.
var wantColumns = []arrow.Field{
	{Name: "category", Type: arrow.BinaryTypes.String},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64},
	{Name: "qty", Type: arrow.PrimitiveTypes.Int32},
}

// addTax appends the column tax to each batch. It keeps every row, in
// order (RowLocal), so the optimizer may move filters and limits across it.
var addTax = plans.Func{
	Out: func(in *arrow.Schema) (*arrow.Schema, error) {
		for _, w := range wantColumns {
			f, ok := in.FieldsByName(w.Name)
			if !ok || len(f) != 1 || !arrow.TypeEqual(f[0].Type, w.Type) {
				return nil, fmt.Errorf("wants a %s column %q", w.Type, w.Name)
			}
		}
		if in.HasField(taxField.Name) {
			return nil, fmt.Errorf("the input already has a column %q", taxField.Name)
		}
		return arrow.NewSchema(append(slices.Clone(in.Fields()), taxField), nil), nil
	},
	Fn: func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		s := rec.Schema()
		cat := rec.Column(s.FieldIndices("category")[0]).(*array.String)
		price := rec.Column(s.FieldIndices("price")[0]).(*array.Float64)
		qty := rec.Column(s.FieldIndices("qty")[0]).(*array.Int32)
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		n := int(rec.NumRows())
		b.Reserve(n)
		for i := range n {
			if cat.IsNull(i) || price.IsNull(i) || qty.IsNull(i) {
				b.AppendNull()
				continue
			}
			b.UnsafeAppend(taxOf(cat.Value(i), price.Value(i), qty.Value(i)))
		}
		tax := b.NewArray()
		defer tax.Release() // the batch holds its own reference
		out := arrow.NewSchema(append(slices.Clone(s.Fields()), taxField), nil)
		return array.NewRecordBatch(out, append(slices.Clone(rec.Columns()), tax), rec.NumRows()), nil
	},
	RowLocal: true,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cluster-udf:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New(`usage:
  cluster-udf run [-param name=value]... plan.yaml   run a plan here, with the local executor
  cluster-udf validate plan.yaml                     check a plan, the registered functions included
  cluster-udf worker -coordinators URL -data-dir DIR -addr HOST:PORT [-token-file FILE] [-resources cpu=N,gpu=N,memory=SIZE]
                                                     run a cluster worker that knows this program's functions`)

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "validate":
		return validateCmd(args[1:], stdout)
	case "worker":
		return workerCmd(ctx, args[1:], stderr)
	}
	return errUsage
}

// params collects -param name=value flags.
type params map[string]string

func (p params) String() string { return "" }

func (p params) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want name=value", v)
	}
	p[k] = val
	return nil
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ps := params{}
	fs.Var(ps, "param", "override a param of the plan: name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errUsage
	}
	cfg := local.DefaultConfig()
	cfg.Progress = stderr // shows only on a terminal
	stats, err := runPlan(ctx, fs.Arg(0), ps, cfg)
	if err != nil {
		return err
	}
	stats.Summary(stdout)
	return nil
}

// runPlan compiles a plan file, with this program's functions, and runs it
// with the local executor.
func runPlan(ctx context.Context, file string, ps map[string]string, cfg local.Config) (*local.Stats, error) {
	p, err := plans.Load(file)
	if err != nil {
		return nil, err
	}
	job, err := plans.Compile(p, plans.Vars{Params: ps})
	if err != nil {
		return nil, err
	}
	return job.Run(ctx, cfg)
}

func validateCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errUsage
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	_, lints := plans.Check(args[0], data, plans.Vars{})
	for _, l := range lints {
		fmt.Fprintln(stdout, l.Error())
	}
	if err := lints.Err(); err != nil {
		return fmt.Errorf("%s: %d errors", args[0], len(lints.Errors()))
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return nil
}

// workerCmd is `sluice worker` in this binary, through its library entry
// cli.RunWorker: the same flags, and the worker compiles plans with
// add_tax registered.
func workerCmd(ctx context.Context, args []string, stderr io.Writer) error {
	slog.New(slog.NewTextHandler(stderr, nil)).Info("worker starting", "functions", plans.Registered())
	return cli.RunWorker(ctx, args, stderr)
}
