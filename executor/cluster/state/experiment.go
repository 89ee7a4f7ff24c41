package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxExperimentBytes bounds one experiment record (its JSON): the record
// is the experiment's summary (each trial's config, status, iterations,
// last and best metric, latest checkpoint), never its every report, and
// it lives in every snapshot.
const MaxExperimentBytes = 1 << 20

// Errors of experiment records.
var (
	// ErrExperimentTooLarge is an experiment record over MaxExperimentBytes.
	ErrExperimentTooLarge = errors.New("state: experiment record too large")
	// ErrUnknownExperiment is the removal of an experiment the state does
	// not hold.
	ErrUnknownExperiment = errors.New("state: unknown experiment")
)

// Experiment is the replicated record of a tune experiment, by name. The
// state keeps Record as the driver wrote it (tune's JSON); it checks only
// that it is one JSON object within MaxExperimentBytes.
type Experiment struct {
	Name    string          `json:"name"`
	Record  json.RawMessage `json:"record,omitempty"`
	Updated time.Time       `json:"updated"`
	// Version counts the writes of the record.
	Version int64 `json:"version"`
	// Delete, in an OpExperiment command, removes the experiment (Record
	// is then ignored).
	Delete bool `json:"delete,omitempty"`
}

// applyExperiment replaces or removes the record of an experiment
// (OpExperiment).
func (s *State) applyExperiment(c Command) (string, error) {
	e := c.Experiment
	switch {
	case e == nil:
		return "", fmt.Errorf("%w: experiment without a record", ErrBadCommand)
	case e.Name == "" || len(e.Name) > 200:
		return "", fmt.Errorf("%w: experiment name %q: want 1 to 200 characters", ErrBadCommand, e.Name)
	case e.Delete:
		if s.Experiments[e.Name] == nil {
			return "", fmt.Errorf("%w: %q", ErrUnknownExperiment, e.Name)
		}
		delete(s.Experiments, e.Name)
		return e.Name, nil
	case len(e.Record) > MaxExperimentBytes:
		return "", fmt.Errorf("%w: experiment %q: the record is %d bytes, at most %d (MaxExperimentBytes)", ErrExperimentTooLarge, e.Name, len(e.Record), MaxExperimentBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Record, &obj); err != nil {
		return "", fmt.Errorf("%w: experiment %q: the record is not a JSON object: %w", ErrBadCommand, e.Name, err)
	}
	old := s.Experiments[e.Name]
	n := &Experiment{Name: e.Name, Record: append(json.RawMessage(nil), e.Record...), Updated: c.At, Version: 1}
	if old != nil {
		n.Version = old.Version + 1
	}
	s.Experiments[e.Name] = n
	return e.Name, nil
}
