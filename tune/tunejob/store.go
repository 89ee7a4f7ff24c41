package tunejob

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/tune"
)

// Store is tune.Store over the coordinators: the experiment's record,
// by Name, in the cluster's replicated state (PUT and GET
// /v1/experiments/{name}), encoded by tune.MarshalRecord within
// state.MaxExperimentBytes.
type Store struct {
	API  *api.Client
	Name string
	// Wait is how long a call keeps trying while no coordinator takes it
	// (a leader's election), beyond the client's own Retry: 0 is
	// Unavailable, below 0 no more than the client's.
	Wait time.Duration
}

var _ tune.Store = Store{}

func (s Store) String() string { return fmt.Sprintf("the cluster's record of experiment %q", s.Name) }

// Load reads the record; tune.ErrNoExperiment when the cluster holds none.
func (s Store) Load(ctx context.Context) (*tune.Experiment, error) {
	var e *state.Experiment
	err := retry(ctx, s.Wait, func() (err error) {
		e, err = s.API.Experiment(ctx, s.Name)
		return err
	})
	if errors.Is(err, api.ErrNotFound) {
		return nil, fmt.Errorf("%w: the cluster holds no experiment %q", tune.ErrNoExperiment, s.Name)
	}
	if err != nil {
		return nil, err
	}
	return tune.UnmarshalRecord(e.Record, s.String())
}

// Save replaces the record.
func (s Store) Save(ctx context.Context, e *tune.Experiment) error {
	b, err := tune.MarshalRecord(e, state.MaxExperimentBytes)
	if err != nil {
		return err
	}
	return retry(ctx, s.Wait, func() error {
		_, err := s.API.PutExperiment(ctx, s.Name, b)
		return err
	})
}

// Unavailable is how long the driver's calls keep trying while no
// coordinator takes them, by default: a trial's job state is polled as
// long (see tune.Cluster).
const Unavailable = time.Minute

// retry calls fn until it returns an error other than api.ErrUnavailable,
// or for wait (0: Unavailable; below 0: once).
func retry(ctx context.Context, wait time.Duration, fn func() error) error {
	if wait == 0 {
		wait = Unavailable
	}
	deadline := time.Now().Add(wait)
	for {
		err := fn()
		if !errors.Is(err, api.ErrUnavailable) || !time.Now().Before(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
