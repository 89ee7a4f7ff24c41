package coordinator

import (
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// metrics are the coordinator's Prometheus metrics, on a registry of its
// own (a process may run several coordinators: tests do). The counters
// count as things happen; the gauges of jobs, tasks and workers are read
// from the state at each scrape (write).
//
// It also holds deployments, the serving replicas the heartbeats report,
// and the routers over them: like the counters, what this node keeps in
// memory and never logs.
type metrics struct {
	reg           *prometheus.Registry
	leader        prometheus.Gauge
	leaderChanges prometheus.Counter
	commits       prometheus.Summary
	sched         prometheus.Summary // submit (or requeue) to assignment
	jobs          *prometheus.GaugeVec
	tasks         *prometheus.GaugeVec
	alive         prometheus.Gauge
	// The serving deployments' replicas and queues, as reported to the
	// leader (empty on followers).
	depReplicas, depRunning, depWaiting *prometheus.GaugeVec

	mu      sync.Mutex // one scrape at a time: it sets the gauges, then gathers
	deps    deployments
	routers routers // route.go
}

func newMetrics() *metrics {
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		leader:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_leader", Help: "1 when this coordinator is the Raft leader."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_leader_changes_total", Help: "Leader changes this coordinator observed."}),
		commits:       prometheus.NewSummary(prometheus.SummaryOpts{Name: "sluice_raft_commit_seconds", Help: "Time from proposing a command to its commit, on the leader."}),
		sched:         prometheus.NewSummary(prometheus.SummaryOpts{Name: "sluice_scheduling_latency_seconds", Help: "Time from a task's submission (or requeue) to its assignment."}),
		jobs:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_jobs", Help: "Jobs by state."}, []string{"state"}),
		tasks:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_tasks", Help: "Tasks by state."}, []string{"state"}),
		alive:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_workers_alive", Help: "Workers the state holds alive."}),
		depReplicas:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_deployment_replicas", Help: "Serving replicas of a deployment that live workers report (on the leader)."}, []string{"deployment"}),
		depRunning:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_deployment_requests_running", Help: "Requests in the running batches of a deployment's replicas, as reported (on the leader)."}, []string{"deployment"}),
		depWaiting:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_deployment_requests_waiting", Help: "Requests waiting at a deployment's replicas, as reported (on the leader)."}, []string{"deployment"}),
	}
	m.reg.MustRegister(m.leader, m.leaderChanges, m.commits, m.sched, m.jobs, m.tasks, m.alive, m.depReplicas, m.depRunning, m.depWaiting)
	return m
}

func (m *metrics) leaderChange() { m.leaderChanges.Inc() }

func (m *metrics) commit(d time.Duration) { m.commits.Observe(d.Seconds()) }

func (m *metrics) assigned(f *fsm, task string, _ time.Time) {
	var wait time.Duration
	f.read(func(s *state.State) {
		if t := s.Tasks[task]; t != nil {
			wait = t.Assigned.Sub(t.Submitted)
		}
	})
	m.sched.Observe(wait.Seconds())
}

// commitStats returns how many commits the leader timed and their seconds.
func (m *metrics) commitStats() (n int64, secs float64) {
	var d dto.Metric
	if m.commits.Write(&d) != nil || d.Summary == nil {
		return 0, 0
	}
	return int64(d.Summary.GetSampleCount()), d.Summary.GetSampleSum()
}

// write writes the metrics in Prometheus's text format, the gauges as of s
// and deps.
func (m *metrics) write(w io.Writer, s *state.State, leader bool, deps []api.Deployment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader.Set(map[bool]float64{true: 1}[leader])
	jobs := map[state.JobState]int{}
	for _, j := range s.Jobs {
		jobs[j.State]++
	}
	for _, st := range []state.JobState{state.JobPending, state.JobRunning, state.JobSucceeded, state.JobFailed, state.JobCancelled} {
		m.jobs.WithLabelValues(string(st)).Set(float64(jobs[st]))
	}
	counts := s.Counts()
	for _, st := range []state.TaskState{state.TaskPending, state.TaskAssigned, state.TaskRunning, state.TaskSucceeded, state.TaskFailed} {
		m.tasks.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
	alive := 0
	for _, wk := range s.Workers {
		if wk.Alive {
			alive++
		}
	}
	m.alive.Set(float64(alive))
	for _, v := range []*prometheus.GaugeVec{m.depReplicas, m.depRunning, m.depWaiting} {
		v.Reset() // a deployment gone leaves no series
	}
	for _, d := range deps {
		running, waiting := 0, 0
		for _, r := range d.Replicas {
			running, waiting = running+r.Running, waiting+r.Waiting
		}
		m.depReplicas.WithLabelValues(d.Name).Set(float64(len(d.Replicas)))
		m.depRunning.WithLabelValues(d.Name).Set(float64(running))
		m.depWaiting.WithLabelValues(d.Name).Set(float64(waiting))
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
