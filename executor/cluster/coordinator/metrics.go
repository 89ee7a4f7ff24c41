package coordinator

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// metrics are the coordinator's Prometheus counters, written in the text
// exposition format without a client library.
type metrics struct {
	mu            sync.Mutex
	leaderChanges int64
	commits       int64
	commitSeconds float64
	assigns       int64
	schedSeconds  float64 // submit (or requeue) to assignment
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) leaderChange() { m.mu.Lock(); m.leaderChanges++; m.mu.Unlock() }

func (m *metrics) commit(d time.Duration) {
	m.mu.Lock()
	m.commits++
	m.commitSeconds += d.Seconds()
	m.mu.Unlock()
}

func (m *metrics) assigned(f *fsm, task string, _ time.Time) {
	var wait time.Duration
	f.read(func(s *state.State) {
		if t := s.Tasks[task]; t != nil {
			wait = t.Assigned.Sub(t.Submitted)
		}
	})
	m.mu.Lock()
	m.assigns++
	m.schedSeconds += wait.Seconds()
	m.mu.Unlock()
}

func (m *metrics) write(w io.Writer, s *state.State, leader bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "# TYPE sluice_leader gauge\nsluice_leader %d\n", map[bool]int{true: 1}[leader])
	fmt.Fprintf(w, "# TYPE sluice_leader_changes_total counter\nsluice_leader_changes_total %d\n", m.leaderChanges)
	fmt.Fprintf(w, "# TYPE sluice_raft_commit_seconds summary\nsluice_raft_commit_seconds_sum %g\nsluice_raft_commit_seconds_count %d\n", m.commitSeconds, m.commits)
	fmt.Fprintf(w, "# TYPE sluice_scheduling_latency_seconds summary\nsluice_scheduling_latency_seconds_sum %g\nsluice_scheduling_latency_seconds_count %d\n", m.schedSeconds, m.assigns)
	jobs := map[state.JobState]int{}
	for _, j := range s.Jobs {
		jobs[j.State]++
	}
	fmt.Fprintf(w, "# TYPE sluice_jobs gauge\n")
	for _, st := range []state.JobState{state.JobPending, state.JobRunning, state.JobSucceeded, state.JobFailed, state.JobCancelled} {
		fmt.Fprintf(w, "sluice_jobs{state=%q} %d\n", st, jobs[st])
	}
	counts := s.Counts()
	fmt.Fprintf(w, "# TYPE sluice_tasks gauge\n")
	for _, st := range []state.TaskState{state.TaskPending, state.TaskAssigned, state.TaskRunning, state.TaskSucceeded, state.TaskFailed} {
		fmt.Fprintf(w, "sluice_tasks{state=%q} %d\n", st, counts[st])
	}
	alive := 0
	for _, wk := range s.Workers {
		if wk.Alive {
			alive++
		}
	}
	fmt.Fprintf(w, "# TYPE sluice_workers_alive gauge\nsluice_workers_alive %d\n", alive)
}
