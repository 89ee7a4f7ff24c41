package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
)

// Commands over plan files: run, validate, explain, plan schema, schedule next.

func init() {
	var o planFlags
	register(&command{
		name:    "run",
		args:    "plan.yaml",
		summary: "run a plan file with the local executor",
		flags: func(fs *flag.FlagSet) {
			o.declare(fs)
			fs.BoolVar(&o.dryRun, "dry-run", false, "validate and print the compiled plan; write nothing")
		},
		run: func(ctx context.Context, e *env, args []string) error { return runPlan(ctx, e, args, &o) },
	})
	register(&command{
		name:    "validate",
		args:    "plan.yaml...",
		summary: "check plan files without running them; print every problem with its line:column",
		flags:   o.declare,
		run:     func(ctx context.Context, e *env, args []string) error { return validatePlans(e, args, &o) },
	})
	register(&command{
		name:    "explain",
		args:    "plan.yaml",
		summary: "print a plan file's logical plan, optimized plan and stages",
		flags:   o.declare,
		run:     func(ctx context.Context, e *env, args []string) error { return explainPlan(e, args, &o) },
	})
	register(&command{
		name:    "plan schema",
		summary: "print the JSON Schema of plan files (for editors)",
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			_, err := e.stdout.Write(plans.JSONSchema())
			return err
		},
	})
	var n int
	var after string
	register(&command{
		name:    "schedule next",
		args:    "plan.yaml",
		summary: "print a plan's next scheduled run times (RFC 3339, in its time zone)",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&n, "n", 5, "how many run times")
			fs.StringVar(&after, "after", "", "list runs after this time (RFC 3339; default now)")
		},
		run: func(ctx context.Context, e *env, args []string) error { return scheduleNext(e, args, n, after) },
	})
}

// planFlags are the flags shared by the commands that render a plan.
type planFlags struct {
	params    paramFlag
	scheduled string
	runID     string
	dryRun    bool
	envAllow  string
}

func (o *planFlags) declare(fs *flag.FlagSet) {
	*o = planFlags{params: paramFlag{}}
	fs.Var(o.params, "param", "override a param of the plan: name=value (repeatable)")
	fs.StringVar(&o.scheduled, "scheduled-time", "", "the run's .ScheduledTime: RFC 3339, or a date YYYY-MM-DD (midnight in the plan's zone); default now")
	fs.StringVar(&o.runID, "run-id", "", "the run's .RunID (default: the plan's name and the scheduled time)")
	fs.StringVar(&o.envAllow, "env-allow", os.Getenv(plans.EnvAllowVar), "environment variables the plan's templates may read with env, comma-separated (or "+plans.EnvAllowVar+"); credentials never")
}

// vars are the template values for p.
func (o *planFlags) vars(p *plans.Plan) (plans.Vars, error) {
	v := plans.Vars{Params: o.params, RunID: o.runID, EnvAllow: plans.ParseEnvAllow(o.envAllow)}
	if o.scheduled == "" {
		return v, nil
	}
	loc := time.UTC
	if p.Schedule != nil {
		loc = p.Schedule.Location
	}
	t, err := time.Parse(time.RFC3339, o.scheduled)
	if err != nil {
		if t, err = time.ParseInLocation(time.DateOnly, o.scheduled, loc); err != nil {
			return v, fmt.Errorf("--scheduled-time %q: want RFC 3339 (2006-01-02T15:04:05Z) or a date (2006-01-02)", o.scheduled)
		}
	}
	v.ScheduledTime = t
	return v, nil
}

// paramFlag collects repeated --param name=value.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	p[k] = v
	return nil
}

// report prints lints, one a line, to stderr, and is an error when any is
// an error.
func report(e *env, file string, lints plans.Lints) error {
	for _, l := range lints {
		fmt.Fprintln(e.stderr, l.Error())
	}
	if n := len(lints.Errors()); n > 0 {
		return fmt.Errorf("%s: %d error%s", file, n, map[bool]string{true: "", false: "s"}[n == 1])
	}
	return nil
}

// compile loads, renders and compiles a plan, reporting its lints.
func compile(e *env, args []string, o *planFlags) (*plans.Job, error) {
	if len(args) != 1 {
		return nil, errUsage
	}
	file := args[0]
	p, err := plans.Load(file)
	if err != nil {
		var lints plans.Lints
		if errors.As(err, &lints) {
			return nil, report(e, file, lints)
		}
		return nil, err
	}
	vars, err := o.vars(p)
	if err != nil {
		return nil, err
	}
	job, err := plans.Compile(p, vars)
	if err != nil {
		var lints plans.Lints
		if errors.As(err, &lints) {
			return nil, report(e, file, lints)
		}
		return nil, err
	}
	return job, nil
}

func runPlan(ctx context.Context, e *env, args []string, o *planFlags) error {
	job, err := compile(e, args, o)
	if err != nil {
		return err
	}
	if o.dryRun {
		text, err := job.Explain()
		if err != nil {
			return err
		}
		fmt.Fprint(e.stdout, text)
		fmt.Fprintf(e.stdout, "dry run: nothing written to %s\n", job.Output())
		return nil
	}
	cfg := local.DefaultConfig()
	cfg.Progress = e.stderr // shows only on a terminal
	stats, err := job.Run(ctx, cfg)
	if err != nil {
		return err
	}
	stats.Summary(e.stdout)
	fmt.Fprintf(e.stdout, "wrote %d rows in %d file%s to %s\n", stats.Rows, len(stats.Files),
		map[bool]string{true: "", false: "s"}[len(stats.Files) == 1], job.Output())
	return nil
}

func validatePlans(e *env, args []string, o *planFlags) error {
	if len(args) == 0 {
		return errUsage
	}
	var failed []string
	for _, file := range args {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		p, lints := plans.Parse(file, data)
		if p != nil {
			vars, err := o.vars(p)
			if err != nil {
				return err
			}
			lints = append(lints, plans.Validate(p, vars)...).Sort()
		}
		if err := report(e, file, lints); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", file)
	}
	if failed != nil {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func explainPlan(e *env, args []string, o *planFlags) error {
	job, err := compile(e, args, o)
	if err != nil {
		return err
	}
	text, err := job.Explain()
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, text)
	return err
}

func scheduleNext(e *env, args []string, n int, after string) error {
	if len(args) != 1 || n < 1 {
		return errUsage
	}
	p, err := plans.Load(args[0])
	if err != nil {
		var lints plans.Lints
		if errors.As(err, &lints) {
			return report(e, args[0], lints)
		}
		return err
	}
	if p.Schedule == nil {
		return fmt.Errorf("%s: %w", args[0], plans.ErrNoSchedule)
	}
	from := time.Now()
	if after != "" {
		if from, err = time.Parse(time.RFC3339, after); err != nil {
			return fmt.Errorf("--after %q: want RFC 3339 (2006-01-02T15:04:05Z)", after)
		}
	}
	for _, t := range p.Schedule.Upcoming(from, n) {
		fmt.Fprintln(e.stdout, t.In(p.Schedule.Location).Format(time.RFC3339))
	}
	return nil
}
