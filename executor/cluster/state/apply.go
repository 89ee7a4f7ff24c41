package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// Op names a command.
type Op string

// Commands.
const (
	OpSubmit    Op = "submit"    // Job (+ Needs): a new job with one task
	OpSchedule  Op = "schedule"  // Schedule: register a scheduled plan
	OpFire      Op = "fire"      // ID (schedule), Time: make the job of one scheduled time
	OpSkip      Op = "skip"      // ID (schedule), Time: advance LastFired without a job (catch_up none)
	OpCancel    Op = "cancel"    // ID (job)
	OpRegister  Op = "register"  // Worker
	OpHeartbeat Op = "heartbeat" // ID (worker)
	OpExpire    Op = "expire"    // ID (worker): declare it dead, re-queue its tasks
	OpAssign    Op = "assign"    // ID (task), Worker
	OpStart     Op = "start"     // ID (task), Worker, Attempt
	OpFinish    Op = "finish"    // ID (task), Worker, Attempt, OK, Error, Rows
	OpNode      Op = "node"      // Node: a coordinator's addresses
	OpRemove    Op = "remove"    // ID (node)
	OpBatch     Op = "batch"     // Batch: many commands in one log entry, applied in order
)

// Command is one entry of the replicated log. At is the leader's clock
// when it proposed the command; Apply uses no other time.
type Command struct {
	Op        Op        `json:"op"`
	RequestID string    `json:"request_id,omitempty"`
	At        time.Time `json:"at"`

	ID       string    `json:"id,omitempty"`
	Worker   string    `json:"worker,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
	OK       bool      `json:"ok,omitempty"`
	Error    string    `json:"error,omitempty"`
	Rows     int64     `json:"rows,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Needs    Resources `json:"needs,omitzero"`
	Locality string    `json:"locality,omitempty"`

	Job      *Job      `json:"job,omitempty"`
	Schedule *Schedule `json:"schedule,omitempty"`
	Register *Worker   `json:"register,omitempty"`
	Node     *Node     `json:"node,omitempty"`

	// Count is the number of tasks a submit makes (0 or 1: one).
	Count int `json:"count,omitempty"`
	// Batch holds the commands of an OpBatch; each keeps its own request
	// id, and takes the batch's At when it has none.
	Batch []Command `json:"batch,omitempty"`
}

// MaxTasks is the most tasks one job may have.
const MaxTasks = 1_000_000

// Encode is the command as a log entry.
func (c Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // only plain data: cannot fail
	}
	return b
}

// Decode reads a log entry.
func Decode(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	return c, nil
}

// Result is what Apply answers: the id it made or touched, or an error.
type Result struct {
	Value string
	Err   error
	Batch []Result // an OpBatch's results, one per command
}

// Apply applies one command. A command with a request id that was applied
// before changes nothing and returns the first answer.
func (s *State) Apply(c Command) Result {
	if c.Op == OpBatch {
		out := Result{Batch: make([]Result, len(c.Batch))}
		for i, sub := range c.Batch {
			if sub.Op == OpBatch {
				out.Batch[i] = Result{Err: fmt.Errorf("%w: nested batch", ErrBadCommand)}
				continue
			}
			if sub.At.IsZero() {
				sub.At = c.At
			}
			out.Batch[i] = s.Apply(sub)
		}
		return out
	}
	if c.RequestID != "" {
		if r, ok := s.Requests[c.RequestID]; ok {
			return Result{Value: r.Value}
		}
	}
	v, err := s.apply(c)
	if err == nil && c.RequestID != "" {
		s.Requests[c.RequestID] = Request{Value: v, At: c.At}
	}
	s.prune(c.At)
	return Result{Value: v, Err: err}
}

// prune forgets the requests older than RequestTTL, at most once an hour
// of log time (so every replica prunes at the same entries).
func (s *State) prune(now time.Time) {
	if now.IsZero() || now.Sub(s.PrunedAt) < time.Hour {
		return
	}
	for id, r := range s.Requests {
		if now.Sub(r.At) > RequestTTL {
			delete(s.Requests, id)
		}
	}
	s.PrunedAt = now
}

func (s *State) apply(c Command) (string, error) {
	switch c.Op {
	case OpSubmit:
		if c.Job == nil {
			return "", fmt.Errorf("%w: submit without a job", ErrBadCommand)
		}
		if c.Count < 0 || c.Count > MaxTasks {
			return "", fmt.Errorf("%w: %d tasks (at most %d)", ErrBadCommand, c.Count, MaxTasks)
		}
		return s.submitN(*c.Job, c.Needs, c.Locality, c.At, max(c.Count, 1)), nil
	case OpSchedule:
		if c.Schedule == nil {
			return "", fmt.Errorf("%w: schedule without a schedule", ErrBadCommand)
		}
		sc := *c.Schedule
		if sc.ID == "" {
			sc.ID = s.newID("s")
		}
		if sc.LastFired.IsZero() {
			sc.LastFired = c.At
		}
		s.Schedules[sc.ID] = &sc
		return sc.ID, nil
	case OpFire, OpSkip:
		sc := s.Schedules[c.ID]
		if sc == nil {
			return "", fmt.Errorf("%w: schedule %s", ErrBadCommand, c.ID)
		}
		if !c.Time.After(sc.LastFired) {
			return "", nil // fired already: once per scheduled time
		}
		sc.LastFired = c.Time
		if c.Op == OpSkip {
			return "", nil
		}
		sc.Jobs++
		return s.submitN(Job{Name: sc.Name, File: sc.File, Plan: sc.Plan, Params: sc.Params,
			ScheduledTime: c.Time, Schedule: sc.ID, MaxRetries: sc.MaxRetries}, sc.Needs, sc.Locality, c.At, 1), nil
	case OpCancel:
		j := s.Jobs[c.ID]
		if j == nil {
			return "", fmt.Errorf("%w: %s", ErrUnknownJob, c.ID)
		}
		if j.State.Done() {
			return j.ID, nil
		}
		for _, id := range j.Tasks {
			t := s.Tasks[id]
			if t.State != TaskSucceeded && t.State != TaskFailed {
				s.setTask(t, TaskFailed, t.Worker)
				t.Error, t.Updated = "cancelled", c.At
			}
		}
		j.State, j.Error, j.Finished = JobCancelled, "cancelled", c.At
		return j.ID, nil
	case OpRegister:
		if c.Register == nil || c.Register.ID == "" {
			return "", fmt.Errorf("%w: register without a worker id", ErrBadCommand)
		}
		w := *c.Register
		if old := s.Workers[w.ID]; old != nil {
			w.Registered = old.Registered
		} else {
			w.Registered = c.At
		}
		w.Alive, w.LastHeartbeat = true, c.At
		s.Workers[w.ID] = &w
		return w.ID, nil
	case OpHeartbeat:
		w := s.Workers[c.ID]
		if w == nil {
			return "", fmt.Errorf("%w: %s", ErrUnknownWorker, c.ID)
		}
		w.Alive, w.LastHeartbeat = true, c.At
		return w.ID, nil
	case OpExpire:
		w := s.Workers[c.ID]
		if w == nil {
			return "", fmt.Errorf("%w: %s", ErrUnknownWorker, c.ID)
		}
		if !w.Alive {
			return w.ID, nil
		}
		w.Alive = false
		for _, t := range s.TasksOf(w.ID) {
			s.setTask(t, TaskPending, "")
			t.Error, t.Updated = "worker "+w.ID+" died", c.At
		}
		return w.ID, nil
	case OpAssign:
		t := s.Tasks[c.ID]
		if t == nil {
			return "", fmt.Errorf("%w: %s", ErrUnknownTask, c.ID)
		}
		w := s.Workers[c.Worker]
		if w == nil || !w.Alive {
			return "", fmt.Errorf("%w: %s", ErrUnknownWorker, c.Worker)
		}
		if t.State != TaskPending || !t.Needs.Fits(s.Free(w.ID)) {
			return "", fmt.Errorf("%w: task %s is %s", ErrStale, t.ID, t.State) // decided on an older state
		}
		s.setTask(t, TaskAssigned, w.ID)
		t.Error, t.Updated, t.Assigned = "", c.At, c.At
		t.Attempt++
		if j := s.Jobs[t.Job]; j.State == JobPending {
			j.State = JobRunning
		}
		return t.ID, nil
	case OpStart, OpFinish:
		t := s.Tasks[c.ID]
		if t == nil {
			return "", fmt.Errorf("%w: %s", ErrUnknownTask, c.ID)
		}
		w := s.Workers[c.Worker]
		if t.Worker != c.Worker || t.Attempt != c.Attempt || w == nil || !w.Alive ||
			(t.State != TaskAssigned && t.State != TaskRunning) {
			return "", fmt.Errorf("%w: task %s attempt %d from worker %s (task is %s, attempt %d on %q)",
				ErrStale, t.ID, c.Attempt, c.Worker, t.State, t.Attempt, t.Worker)
		}
		t.Updated = c.At
		if c.Op == OpStart {
			s.setTask(t, TaskRunning, t.Worker)
			return t.ID, nil
		}
		j := s.Jobs[t.Job]
		if c.OK {
			s.setTask(t, TaskSucceeded, t.Worker)
			t.Rows, t.Error = c.Rows, ""
			j.Succeeded++
		} else {
			t.Failures++
			t.Error = c.Error
			if t.Failures > j.maxRetries(t) {
				s.setTask(t, TaskFailed, "")
			} else {
				s.setTask(t, TaskPending, "")
			}
		}
		s.settle(j, t, c.At)
		return t.ID, nil
	case OpNode:
		if c.Node == nil || c.Node.ID == "" {
			return "", fmt.Errorf("%w: node without an id", ErrBadCommand)
		}
		n := *c.Node
		s.Nodes[n.ID] = &n
		return n.ID, nil
	case OpRemove:
		delete(s.Nodes, c.ID)
		return c.ID, nil
	}
	return "", fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
}

// submitN makes a job of n tasks, j-ID-t0 … j-ID-t(n-1).
func (s *State) submitN(j Job, needs Resources, locality string, at time.Time, n int) string {
	j.ID = s.newID("j")
	j.State, j.Submitted, j.Error, j.Succeeded = JobPending, at, "", 0
	j.Finished = time.Time{}
	j.Tasks = make([]string, n)
	j.Stages = []Stage{{Name: "plan", Tasks: n, MaxRetries: j.MaxRetries, Needs: needs}}
	for i := range n {
		t := &Task{ID: fmt.Sprintf("%s-t%d", j.ID, i), Job: j.ID, State: TaskPending, Needs: needs, Locality: locality,
			Updated: at, Submitted: at}
		j.Tasks[i] = t.ID
		s.Tasks[t.ID] = t
	}
	s.Jobs[j.ID] = &j
	return j.ID
}

// settle derives a job's state after its task t finished.
func (s *State) settle(j *Job, t *Task, at time.Time) {
	if j.State.Done() {
		return
	}
	switch {
	case t.State == TaskFailed:
		j.State, j.Error, j.Finished = JobFailed, fmt.Sprintf("task %s: %s", t.ID, t.Error), at
	case j.Succeeded == len(j.Tasks):
		j.State, j.Finished = JobSucceeded, at
	}
}
