// Package tunejob runs tune's trials as jobs of a Sluice cluster: Client
// is tune.Jobs over the coordinators' HTTP API, and Register makes the
// map_batches function tune.TrialFunc, which runs a trial on a worker (a
// program, or a Go function of the worker's program registered with
// tune.Register when the trial names one), known to plans. The worker's program must call Register (the sluice command does
// in its worker processes); the driver, `sluice tune --coordinators`, uses
// Client with tune.Cluster.
package tunejob

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/tune"
)

// Client is tune.Jobs over a coordinators' API client.
type Client struct {
	API *api.Client
	// MaxRetries is each trial task's retry budget for failures (a dead
	// worker's attempt is not one; default 0: a failing trial fails).
	MaxRetries int
}

var _ tune.Jobs = Client{}

// Submit submits a plan job with the trial's needs.
func (c Client) Submit(ctx context.Context, requestID, plan string, needs tune.Resources) (string, error) {
	req := api.SubmitRequest{RequestID: requestID, File: "tune-trial.yaml", Plan: plan, MaxRetries: c.MaxRetries,
		Needs: state.Resources{CPU: needs.CPU, GPU: needs.GPU, Memory: needs.Memory}}
	var r api.IDResponse
	// The request id makes a retried submit the same job.
	if err := retry(ctx, 0, func() error { return c.API.Do(ctx, http.MethodPost, "/v1/jobs", req, &r) }); err != nil {
		return "", err
	}
	return r.ID, nil
}

// SubmitPlan submits a plan file's job with params over the plan's own
// (--param name=value), as `sluice submit` does: a plan trial's run (see
// the sluice command's tune plan: section).
func (c Client) SubmitPlan(ctx context.Context, requestID, file, plan string, params map[string]string, needs tune.Resources) (string, error) {
	req := api.SubmitRequest{RequestID: requestID, File: file, Plan: plan, Params: params, MaxRetries: c.MaxRetries,
		Needs: state.Resources{CPU: needs.CPU, GPU: needs.GPU, Memory: needs.Memory}}
	var r api.IDResponse
	if err := retry(ctx, 0, func() error { return c.API.Do(ctx, http.MethodPost, "/v1/jobs", req, &r) }); err != nil {
		return "", err
	}
	return r.ID, nil
}

// State reads a job's state.
func (c Client) State(ctx context.Context, id string) (tune.JobState, error) {
	var st api.JobStatus
	if err := c.API.Do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &st); err != nil {
		return tune.JobState{}, err
	}
	j := st.Job
	msg := j.Error
	if msg == "" {
		for _, t := range st.Tasks {
			if t.Error != "" {
				msg = t.Error
			}
		}
	}
	return tune.JobState{Done: j.State.Done(), Succeeded: j.State == state.JobSucceeded, State: string(j.State), Error: msg}, nil
}

// Cancel cancels a job.
func (c Client) Cancel(ctx context.Context, id string) error {
	return retry(ctx, 0, func() error { return c.API.Do(ctx, http.MethodPost, "/v1/jobs/"+id+"/cancel", nil, nil) })
}

// Stderr gets the trials' standard error lines on the worker (the
// worker's own standard error by default).
var Stderr io.Writer = os.Stderr

// Self is the program a trial runs when its spec names none: this
// executable's train command.
var Self = func() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{exe, "train"}, nil
}

var outSchema = arrow.NewSchema([]arrow.Field{
	{Name: "trial", Type: arrow.BinaryTypes.String},
	{Name: "reports", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// Register registers tune.TrialFunc with plans (once per program; a
// second call is an error).
func Register() error {
	return plans.Register(tune.TrialFunc, plans.SpecFunc(tune.TrialFunc, "a tune.TrialSpec", outSchema, runTrial))
}

// runTrial runs one trial's run and appends its row.
func runTrial(ctx context.Context, s tune.TrialSpec, b *array.RecordBuilder) error {
	var n int
	var err error
	if s.Function != "" {
		// A registered Go function: run it here (tune.Register).
		n, err = tune.RunFunc(ctx, s)
	} else {
		var self []string
		if len(s.Command) == 0 {
			if self, err = Self(); err != nil {
				return fmt.Errorf("%s: trial %s: %w", tune.TrialFunc, s.Trial, err)
			}
		}
		n, err = tune.RunSpec(ctx, s, self, Stderr)
	}
	if err != nil {
		return err
	}
	b.Field(0).(*array.StringBuilder).Append(s.Trial)
	b.Field(1).(*array.Int64Builder).Append(int64(n))
	return nil
}
