package coordinator

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// fsm adapts state.State to raft.FSM. Raft calls Apply, Snapshot and
// Restore from one goroutine; the API reads the state concurrently under
// mu.
type fsm struct {
	mu sync.RWMutex
	s  *state.State
	// changed is closed (and replaced) by every Apply and Restore, so
	// long-polling heartbeats wake on a change.
	changed chan struct{}
	// stallMin is how long an Apply or Snapshot may hold the state before
	// it counts as a stall (0: never), and stalled is when the last one
	// ended (Unix nanoseconds): heartbeats wait behind it, so the leader
	// declares no worker dead until a worker timeout after it.
	stallMin time.Duration
	stalled  atomic.Int64
	now      func() time.Time // the clock of commands, which stamps stalled
}

// held notes a hold of the state that began at since (time.Now).
func (f *fsm) held(since time.Time) {
	if f.stallMin > 0 && time.Since(since) > f.stallMin {
		f.stalled.Store(f.now().UnixNano())
	}
}

// stalledAt is when the last stall ended (zero: none).
func (f *fsm) stalledAt() time.Time {
	if n := f.stalled.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

// touch wakes the waiters of changed; the caller holds mu.
func (f *fsm) touch() {
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func (f *fsm) Apply(l *raft.Log) any {
	c, err := state.Decode(l.Data)
	if err != nil {
		return state.Result{Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.touch()
	defer f.held(time.Now()) // a million-task layout holds it for seconds
	return f.s.Apply(c)
}

// ApplyBatch applies the committed entries raft hands over together
// (those one log write stored) under one hold of the lock, with one wake
// of the long-polling heartbeats: per entry, each heartbeat woke, read the
// state and slept again. Raft passes configuration entries here too; like
// Apply (never called with them), they leave the state alone.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	cmds := make([]state.Command, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := state.Decode(l.Data)
		if err != nil {
			out[i] = state.Result{Err: err}
			continue
		}
		cmds[i] = c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.touch()
	defer f.held(time.Now())
	for i, l := range logs {
		if l.Type == raft.LogCommand && out[i] == nil {
			out[i] = f.s.Apply(cmds[i])
		}
	}
	return out
}

// Snapshot serializes the state at once, under the lock, so Persist can
// run concurrently with later Applies. The binary snapshot (format 1)
// takes a few tens of milliseconds per 100,000 tasks where the JSON one
// took seconds at a million, with Apply waiting on the lock (BENCHMARKS.md,
// cluster/noop-1m).
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.held(time.Now())
	return &snapshot{data: f.s.AppendSnapshot(nil)}, nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	s, err := state.Restore(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.s = s
	f.touch()
	f.mu.Unlock()
	return nil
}

// read runs fn with the state locked for reading.
func (f *fsm) read(fn func(s *state.State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.s)
}

// readWatch runs fn like read and returns a channel closed at the next
// change of the state after the one fn saw.
func (f *fsm) readWatch(fn func(s *state.State)) <-chan struct{} {
	f.mu.Lock() // changed may be made here
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	fn(f.s)
	return f.changed
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
