// Package state is the coordinators' replicated state machine: jobs, their
// tasks, workers with their resources and heartbeats, schedules, and the
// coordinator nodes. It is deterministic: Apply depends only on the state
// and the command (the command carries the time, set by the leader that
// proposed it), so every replica that applies the same log holds the same
// state. Decide is the leader's scheduler, a pure function from the state
// and the time to the commands to propose.
//
// State is not safe for concurrent use; the coordinator guards it.
package state

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Errors that Apply returns. A rejected command changes nothing.
var (
	ErrUnknownJob    = errors.New("state: unknown job")
	ErrUnknownTask   = errors.New("state: unknown task")
	ErrUnknownWorker = errors.New("state: unknown worker")
	ErrBadCommand    = errors.New("state: bad command")
	ErrStale         = errors.New("state: stale task report") // an old attempt, or another worker's
	ErrFinished      = errors.New("state: job already finished")
	ErrBadSnapshot   = errors.New("state: not a snapshot") // Restore's input is neither format
)

// TaskState is where a task is in its life: pending → assigned → running →
// succeeded or failed. A failed attempt with retries left goes back to
// pending, as do the tasks of a dead worker.
type TaskState string

// Task states.
const (
	TaskPending   TaskState = "pending"
	TaskAssigned  TaskState = "assigned"
	TaskRunning   TaskState = "running"
	TaskSucceeded TaskState = "succeeded"
	TaskFailed    TaskState = "failed"
)

// JobState is a job's state, derived from its tasks (or cancelled).
type JobState string

// Job states.
const (
	JobPending   JobState = "pending"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Done reports whether the job will not change any more.
func (s JobState) Done() bool { return s == JobSucceeded || s == JobFailed || s == JobCancelled }

// Resources are what a worker offers and a task needs.
type Resources struct {
	CPU    int   `json:"cpu"`
	GPU    int   `json:"gpu"`
	Memory int64 `json:"memory"` // bytes
}

// Fits reports whether r fits in free.
func (r Resources) Fits(free Resources) bool {
	return r.CPU <= free.CPU && r.GPU <= free.GPU && r.Memory <= free.Memory
}

func (r Resources) add(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, GPU: r.GPU + o.GPU, Memory: r.Memory + o.Memory}
}

func (r Resources) sub(o Resources) Resources {
	return Resources{CPU: r.CPU - o.CPU, GPU: r.GPU - o.GPU, Memory: r.Memory - o.Memory}
}

// Job is one run of a plan.
type Job struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	File          string            `json:"file"`
	Plan          []byte            `json:"plan"` // the plan file's text
	Params        map[string]string `json:"params,omitempty"`
	ScheduledTime time.Time         `json:"scheduled_time,omitzero"`
	RunID         string            `json:"run_id,omitempty"`
	Schedule      string            `json:"schedule,omitempty"` // the schedule that fired it
	MaxRetries    int               `json:"max_retries"`        // the default of its stages
	State         JobState          `json:"state"`
	Error         string            `json:"error,omitempty"`
	Submitted     time.Time         `json:"submitted"`
	Finished      time.Time         `json:"finished,omitzero"`
	Tasks         []string          `json:"tasks"`
	// Succeeded counts the job's succeeded tasks, so a finish settles the
	// job without scanning its tasks.
	Succeeded int `json:"succeeded"`
	// Stages split Tasks in order: stage i holds the Stages[i].Tasks tasks
	// after those of the stages before it. (A plan is one stage until plans
	// split across workers.)
	Stages []Stage `json:"stages,omitempty"`
	// Layout is the physical plan its planning task reported, handed as
	// is to the tasks of later stages.
	Layout []byte `json:"layout,omitempty"`
	// Failing is set when a task failed for good in a job with a commit
	// stage: the commit task then removes the staged output, and the job
	// fails when it is done.
	Failing bool `json:"failing,omitempty"`
	// Cancelled is set by a cancel of a job with a commit stage: it is
	// failing, and ends cancelled.
	Cancelled bool `json:"cancelled,omitempty"`
	// Output is the list of files the commit task published.
	Output []string `json:"output,omitempty"`
}

// commitStage is the index of the job's commit stage, or -1.
func (j *Job) commitStage() int {
	if n := len(j.Stages); n > 1 && j.Stages[n-1].Kind == StageCommit {
		return n - 1
	}
	return -1
}

// StageOf is the stage of task t and t's index in it.
func (j *Job) StageOf(t *Task) (*Stage, int) {
	if t.Stage < len(j.Stages) {
		st := &j.Stages[t.Stage]
		return st, t.Index
	}
	return &Stage{Tasks: len(j.Tasks)}, t.Index
}

// TaskAt is the id of task i of stage st.
func (j *Job) TaskAt(st, i int) string { return j.Tasks[j.Stages[st].First+i] }

// Stage is a step of a job whose tasks share their needs and retry budget.
//
// A job starts as one stage of one task. A plan job's task is its planning
// task (Kind "plan"): it reports the physical plan's stages, which Apply
// appends, with a last "commit" stage of one task that publishes the sink's
// staged files once every other task succeeded (or removes them when the
// job failed).
type Stage struct {
	Name       string    `json:"name"`
	Tasks      int       `json:"tasks"`
	MaxRetries int       `json:"max_retries"` // failed attempts a task may retry
	Needs      Resources `json:"needs"`
	Kind       StageKind `json:"kind,omitempty"`
	// First is the index in Job.Tasks of the stage's first task.
	First int `json:"first,omitempty"`
	// Inputs are the stages whose output the stage's tasks read.
	Inputs []StageInput `json:"inputs,omitempty"`
	// Blocks is set when the stage's tasks keep their output on their
	// worker: a worker's death loses them, and they run again while a
	// consumer still needs them (lineage).
	Blocks bool `json:"blocks,omitempty"`
	// Stateful stages keep user state on the worker between tasks, so
	// their tasks prefer a worker that ran one before.
	Stateful bool `json:"stateful,omitempty"`
	// MaxInFlight bounds the tasks of the stage that are running or hold
	// output not yet consumed by their one-to-one consumer (0: no bound).
	MaxInFlight int `json:"max_in_flight,omitempty"`
}

// StageKind says what a stage's tasks do.
type StageKind string

// Stage kinds.
const (
	StagePlan   StageKind = "plan"   // lay the plan out into stages
	StageExec   StageKind = "exec"   // one task of the physical plan
	StageCommit StageKind = "commit" // publish (or, if the job failed, remove) the staged output
)

// StageInput is an input of a stage: task i reads producer task i (One),
// or every producer task (All).
type StageInput struct {
	Stage int  `json:"stage"`
	All   bool `json:"all,omitempty"`
}

// maxRetries is the retry budget of the task's stage.
func (j *Job) maxRetries(t *Task) int {
	if t.Stage < len(j.Stages) {
		return j.Stages[t.Stage].MaxRetries
	}
	return j.MaxRetries // a job from before stages
}

// Task is one unit of work of a job on one worker. Attempt counts the
// assignments; Failures the attempts that failed (retries are bounded by
// its stage's MaxRetries; a dead worker's attempt is not a failure).
type Task struct {
	ID        string    `json:"id"`
	Job       string    `json:"job"`
	State     TaskState `json:"state"`
	Attempt   int       `json:"attempt"`
	Failures  int       `json:"failures"`
	Stage     int       `json:"stage,omitempty"`  // index in its job's Stages
	Index     int       `json:"index,omitempty"`  // index in its stage
	Lost      int       `json:"lost,omitempty"`   // attempts ended by a lost input (not failures)
	Deaths    int       `json:"deaths,omitempty"` // attempts ended by their worker's death (not failures)
	Bytes     int64     `json:"bytes,omitempty"`
	Worker    string    `json:"worker,omitempty"`
	Needs     Resources `json:"needs"`
	Locality  string    `json:"locality,omitempty"` // a preferred worker address
	Error     string    `json:"error,omitempty"`
	Rows      int64     `json:"rows,omitempty"`
	Updated   time.Time `json:"updated"`
	Assigned  time.Time `json:"assigned,omitzero"`
	Submitted time.Time `json:"submitted"`
	// Reported and ReportedBy are the last worker report applied with a
	// request id (attempt*4 + 1 for a start, + 2 for a finish, and its
	// worker): a retry of it answers the task's id again without applying.
	// Kept here rather than in State.Requests, which held two entries per
	// task for a day (BENCHMARKS.md, cluster/noop at scale).
	Reported   int    `json:"reported,omitempty"`
	ReportedBy string `json:"reported_by,omitempty"`
}

// reportRank orders a task's reports: a finish implies its start.
func reportRank(op Op) int {
	if op == OpFinish {
		return 2
	}
	return 1
}

// reported reports whether c, a start or finish, repeats (or precedes) the
// last report applied to t.
func (t *Task) reported(c Command) bool {
	return c.Worker != "" && t.ReportedBy == c.Worker && t.Reported/4 == c.Attempt && t.Reported%4 >= reportRank(c.Op)
}

// Worker is a registered worker.
type Worker struct {
	ID            string    `json:"id"`
	Addr          string    `json:"addr"`
	Resources     Resources `json:"resources"`
	Alive         bool      `json:"alive"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Registered    time.Time `json:"registered"`
}

// Schedule is a submitted plan with a cron schedule. LastFired is the last
// scheduled time a job was made for (or, before the first, the time it was
// submitted): a time at or before it never fires again.
type Schedule struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	File       string            `json:"file"`
	Plan       []byte            `json:"plan"`
	Params     map[string]string `json:"params,omitempty"`
	Cron       string            `json:"cron"`
	TimeZone   string            `json:"time_zone"`
	CatchUp    string            `json:"catch_up"`
	MaxRetries int               `json:"max_retries"`
	Needs      Resources         `json:"needs"`              // what each fired job's tasks need
	Locality   string            `json:"locality,omitempty"` // and where they prefer to run
	LastFired  time.Time         `json:"last_fired"`
	Jobs       int               `json:"jobs"`
}

// Node is a coordinator, with the address of its API so followers can
// forward writes to the leader.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// State is the whole replicated state.
type State struct {
	Jobs      map[string]*Job      `json:"jobs"`
	Tasks     map[string]*Task     `json:"tasks"`
	Workers   map[string]*Worker   `json:"workers"`
	Schedules map[string]*Schedule `json:"schedules"`
	Nodes     map[string]*Node     `json:"nodes"`
	// Experiments are tune experiments' records, by name.
	Experiments map[string]*Experiment `json:"experiments,omitempty"`
	NextID      int64                  `json:"next_id"`
	// Requests maps the request id of each command applied in the last
	// RequestTTL to its answer, so a retried request applies once and
	// answers the same.
	Requests map[string]Request `json:"requests"`
	PrunedAt time.Time          `json:"pruned_at,omitzero"`

	// live indexes the assigned and running tasks by worker; derived from
	// Tasks (rebuilt when nil), never serialized.
	live map[string]map[string]*Task
	// used is, by worker, what its live tasks need: derived with live
	// (and rebuilt with it), never serialized, so Free is O(1) rather
	// than a walk over the worker's tasks for each assignment.
	used map[string]Resources
	// counts is the number of tasks in each state; derived from Tasks
	// (rebuilt when nil), never serialized.
	counts map[TaskState]int
	// done is, by job, the succeeded tasks of each stage; derived from
	// Tasks (rebuilt when nil), never serialized. Decide's gate reads it
	// instead of walking the job's tasks.
	done map[string][]int
	// hint is, by job, how many of its first tasks Decide found not
	// pending; a task that goes back to pending clears its job's. Only
	// Decide sets it (one goroutine, the leader's), never serialized.
	hint map[string]int
}

func (s *State) setHint(job string, n int) {
	if s.hint == nil {
		s.hint = map[string]int{}
	}
	s.hint[job] = n
}

// Request is the answer to an applied request and when it was applied.
type Request struct {
	Value string    `json:"v"`
	At    time.Time `json:"at"`
}

// RequestTTL is how long a request id is remembered: a retry later than
// this applies again.
const RequestTTL = 24 * time.Hour

// New is an empty state.
func New() *State {
	return &State{
		Jobs: map[string]*Job{}, Tasks: map[string]*Task{}, Workers: map[string]*Worker{},
		Schedules: map[string]*Schedule{}, Nodes: map[string]*Node{}, Requests: map[string]Request{},
		Experiments: map[string]*Experiment{},
		live:        map[string]map[string]*Task{}, used: map[string]Resources{}, counts: map[TaskState]int{}, done: map[string][]int{},
	}
}

func (s *State) newID(prefix string) string {
	s.NextID++
	return fmt.Sprintf("%s-%06d", prefix, s.NextID)
}

func (t *Task) isLive() bool { return t.State == TaskAssigned || t.State == TaskRunning }

// index is the live-task index, built from Tasks when missing.
func (s *State) index() map[string]map[string]*Task {
	if s.live == nil {
		s.live, s.used = map[string]map[string]*Task{}, map[string]Resources{}
		for _, t := range s.Tasks {
			if t.isLive() && t.Worker != "" {
				s.link(t)
			}
		}
	}
	return s.live
}

func (s *State) link(t *Task) {
	m := s.live[t.Worker]
	if m == nil {
		m = map[string]*Task{}
		s.live[t.Worker] = m
	}
	m[t.ID] = t
	s.used[t.Worker] = s.used[t.Worker].add(t.Needs)
}

func (s *State) unlink(t *Task) {
	if m := s.live[t.Worker]; m[t.ID] != nil {
		delete(m, t.ID)
		s.used[t.Worker] = s.used[t.Worker].sub(t.Needs)
	}
}

// count is the tasks-by-state count, built from Tasks when missing.
func (s *State) count() map[TaskState]int {
	if s.counts == nil {
		s.counts = map[TaskState]int{}
		for _, t := range s.Tasks {
			s.counts[t.State]++
		}
	}
	return s.counts
}

// stageDone is the succeeded-per-stage index, built from Tasks when
// missing.
func (s *State) stageDone() map[string][]int {
	if s.done == nil {
		s.done = map[string][]int{}
		for _, t := range s.Tasks {
			if t.State == TaskSucceeded {
				s.addDone(t, 1)
			}
		}
	}
	return s.done
}

func (s *State) addDone(t *Task, d int) {
	n := s.done[t.Job]
	if len(n) <= t.Stage {
		n = append(n, make([]int, t.Stage+1-len(n))...)
		s.done[t.Job] = n
	}
	n[t.Stage] += d
}

// addTask adds a new task, keeping the counts.
func (s *State) addTask(t *Task) {
	s.count()[t.State]++
	if t.State == TaskSucceeded {
		s.stageDone()
		s.addDone(t, 1)
	}
	s.Tasks[t.ID] = t
}

// setTask moves t to state st on worker w, keeping the index and counts.
func (s *State) setTask(t *Task, st TaskState, w string) {
	s.index()
	if t.isLive() && t.Worker != "" {
		s.unlink(t)
	}
	c := s.count()
	c[t.State]--
	c[st]++
	if (t.State == TaskSucceeded) != (st == TaskSucceeded) {
		s.stageDone()
		if st == TaskSucceeded {
			s.addDone(t, 1)
		} else {
			s.addDone(t, -1)
		}
	}
	t.State, t.Worker = st, w
	if st == TaskPending {
		delete(s.hint, t.Job)
	}
	if t.isLive() && t.Worker != "" {
		s.link(t)
	}
}

// Used is what the live tasks on worker w hold (kept as tasks change
// state: O(1)).
func (s *State) Used(w string) Resources {
	s.index()
	return s.used[w]
}

// Free is what worker w has left.
func (s *State) Free(w string) Resources {
	wk := s.Workers[w]
	if wk == nil {
		return Resources{}
	}
	return wk.Resources.sub(s.Used(w))
}

// TasksOf are the tasks assigned to or running on worker w, by id.
func (s *State) TasksOf(w string) []*Task {
	m := s.index()[w]
	var out []*Task
	for _, id := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[id])
	}
	return out
}

// Counts are the number of tasks in each state (kept as tasks change
// state: O(states), not O(tasks)).
func (s *State) Counts() map[TaskState]int {
	c := map[TaskState]int{}
	for st, n := range s.count() {
		if n > 0 {
			c[st] = n
		}
	}
	return c
}
