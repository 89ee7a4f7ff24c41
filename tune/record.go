package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Store keeps an experiment's record outside its Dir: on a cluster, in
// the coordinators' replicated state (package tune/tunejob's Store). Run
// saves it when a trial starts, ends or checkpoints, and at most every
// StoreEvery when trials report; a resumed experiment reads it before
// Dir's files, which it falls back to when the store holds none.
//
// Saves run off the experiment loop, one at a time and at least 250 ms
// apart, each of the latest state (states handed over meanwhile are
// coalesced), so a slow
// store (a Raft commit per save) does not hold up the trials' reports:
// the record may lag the loop by a save, and a driver that dies then
// runs the last trials again on resume (never fewer). Run waits for the
// last save before it returns; a failed save ends the experiment as a
// failed save of Dir does. Run calls a Store from one goroutine at a time.
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

// saver saves a Store's record in its own goroutine: put hands over the
// latest state without waiting; flush waits for the last.
type saver struct {
	s    Store
	mu   sync.Mutex
	idle *sync.Cond
	next *Experiment // to save next; nil: none
	busy bool        // a goroutine is saving
	err  error       // the first failed save
}

func newSaver(s Store) *saver {
	w := &saver{s: s}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// put queues e (replacing one not yet saved) and returns the error of an
// earlier save, if one failed.
func (w *saver) put(e *Experiment) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next = e
	if !w.busy {
		w.busy = true
		go w.run()
	}
	return w.err
}

// saveGap is the least time between the starts of two saves: the states
// put meanwhile are coalesced into the next, which bounds what a busy
// experiment costs the store (a Raft entry of the whole record per save).
const saveGap = 250 * time.Millisecond

func (w *saver) run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for w.next != nil {
		if wait := saveGap - time.Since(last); !last.IsZero() && wait > 0 {
			w.mu.Unlock()
			time.Sleep(wait)
			w.mu.Lock()
		}
		e := w.next
		w.next = nil
		last = time.Now()
		w.mu.Unlock()
		err := w.s.Save(context.Background(), e)
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = fmt.Errorf("tune: saving the experiment in %v: %w", w.s, err)
		}
	}
	w.busy = false
	w.idle.Broadcast()
}

// flush waits until every state put is saved, and returns the first
// failed save's error.
func (w *saver) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.busy {
		w.idle.Wait()
	}
	return w.err
}

// clone copies the experiment for a save that runs beside the loop: the
// loop replaces a trial's fields and appends to its slices, but changes
// no report, checkpoint or config in place, so the slices are shared,
// capped at their length.
func (e *Experiment) clone() *Experiment {
	c := *e
	c.Trials = make([]*TrialState, len(e.Trials))
	for i, t := range e.Trials {
		tc := *t
		tc.Reports = t.Reports[:len(t.Reports):len(t.Reports)]
		tc.Checkpoints = t.Checkpoints[:len(t.Checkpoints):len(t.Checkpoints)]
		c.Trials[i] = &tc
	}
	return &c
}
