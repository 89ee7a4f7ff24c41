package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Store keeps an experiment's record outside its Dir: on a cluster, in
// the coordinators' replicated state (package tune/tunejob's Store). Run
// saves it, as it saves Dir's files, when a trial starts, ends or
// checkpoints, and at most every StoreEvery when trials report; a resumed
// experiment reads it before Dir's files, which it falls back to when the
// store holds none. Run calls a Store from one goroutine at a time.
type Store interface {
	// Load reads the record; ErrNoExperiment when the store holds none.
	Load(ctx context.Context) (*Experiment, error)
	// Save replaces the record.
	Save(ctx context.Context, e *Experiment) error
}

// StoreEvery is the least time between two saves of a Store that only
// reports changed.
const StoreEvery = 2 * time.Second

// ErrRecordTooLarge is a record over the limit MarshalRecord was given,
// even without the reports of finished trials.
var ErrRecordTooLarge = errors.New("tune: experiment record too large")

// MarshalRecord encodes an experiment as a store keeps it, within limit
// bytes: Experiment's JSON, but each report holds only its iteration and
// the metric (what a resume replays into the scheduler), and when that is
// over limit the finished trials' reports are left out (a resume then
// cannot replay them into the scheduler; their last and best metrics,
// which the searcher and the table use, stay).
func MarshalRecord(e *Experiment, limit int) ([]byte, error) {
	rec := *e
	rec.Trials = make([]*TrialState, len(e.Trials))
	for i, t := range e.Trials {
		c := *t
		c.Reports = nil
		for _, m := range t.Reports {
			if v, ok := m[e.Metric]; ok {
				c.Reports = append(c.Reports, map[string]float64{"iteration": m["iteration"], e.Metric: v})
			}
		}
		rec.Trials[i] = &c
	}
	b, err := json.Marshal(&rec)
	if err != nil || limit <= 0 || len(b) <= limit {
		return b, err
	}
	for _, t := range rec.Trials {
		if t.Status.final() {
			t.Reports = nil
		}
	}
	if b, err = json.Marshal(&rec); err != nil || len(b) <= limit {
		return b, err
	}
	return nil, fmt.Errorf("%w: %d bytes with %d trials, at most %d", ErrRecordTooLarge, len(b), len(rec.Trials), limit)
}

// UnmarshalRecord decodes a record MarshalRecord made; what names the
// record in errors.
func UnmarshalRecord(b []byte, what string) (*Experiment, error) {
	var e Experiment
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	for i, t := range e.Trials {
		if t == nil || t.ID == "" || t.Index != i {
			return nil, fmt.Errorf("%w: %s: trials[%d] is not trial %d", ErrInvalid, what, i, i)
		}
	}
	return &e, nil
}
