package coordinator

import (
	"io"
	"sync"

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
}

// touch wakes the waiters of changed; the caller holds mu.
func (f *fsm) touch() {
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

var _ raft.FSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any {
	c, err := state.Decode(l.Data)
	if err != nil {
		return state.Result{Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.touch()
	return f.s.Apply(c)
}

// Snapshot serializes the state at once, under the lock, so Persist can
// run concurrently with later Applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var b bytesBuffer
	if err := f.s.Snapshot(&b); err != nil {
		return nil, err
	}
	return &snapshot{data: b.data}, nil
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

type bytesBuffer struct{ data []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.data = append(b.data, p...); return len(p), nil }

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
