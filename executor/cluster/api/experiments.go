package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Tune experiments' records, kept in the replicated state (state.OpExperiment):
//
//	PUT    /v1/experiments/{name}  the record (one JSON object) → ExperimentSaved
//	GET    /v1/experiments/{name}  → state.Experiment (404: none)
//	GET    /v1/experiments         → []state.Experiment, without their records
//	DELETE /v1/experiments/{name}  → ExperimentSaved (404: none)
//
// Writes replace the whole record, so a retried PUT is harmless.

// ExperimentSaved answers a write of an experiment's record.
type ExperimentSaved struct {
	Name string `json:"name"`
	// Version counts the record's writes (0 after a removal).
	Version int64 `json:"version"`
}

func experimentPath(name string) string { return "/v1/experiments/" + url.PathEscape(name) }

// PutExperiment replaces the record of experiment name and returns its
// version.
func (c *Client) PutExperiment(ctx context.Context, name string, record json.RawMessage) (int64, error) {
	var out ExperimentSaved
	if err := c.Do(ctx, http.MethodPut, experimentPath(name), record, &out); err != nil {
		return 0, err
	}
	return out.Version, nil
}

// Experiment reads experiment name's record; ErrNotFound when the
// cluster holds none.
func (c *Client) Experiment(ctx context.Context, name string) (*state.Experiment, error) {
	var out state.Experiment
	if err := c.Do(ctx, http.MethodGet, experimentPath(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Experiments lists the experiments the cluster holds, by name, without
// their records.
func (c *Client) Experiments(ctx context.Context) ([]state.Experiment, error) {
	var out []state.Experiment
	if err := c.Do(ctx, http.MethodGet, "/v1/experiments", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteExperiment removes experiment name's record; ErrNotFound when
// the cluster holds none.
func (c *Client) DeleteExperiment(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, experimentPath(name), nil, nil)
}
