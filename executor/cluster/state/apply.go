package state

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Op names a command.
type Op string

// Commands.
const (
	OpSubmit     Op = "submit"     // Job (+ Needs): a new job with one task
	OpSchedule   Op = "schedule"   // Schedule: register a scheduled plan
	OpUnschedule Op = "unschedule" // ID (schedule): remove it (the jobs it made stay)
	OpFire       Op = "fire"       // ID (schedule), Time: make the job of one scheduled time
	OpSkip       Op = "skip"       // ID (schedule), Time: advance LastFired without a job (catch_up none)
	OpCancel     Op = "cancel"     // ID (job)
	OpRegister   Op = "register"   // Worker
	OpHeartbeat  Op = "heartbeat"  // ID (worker)
	OpExpire     Op = "expire"     // ID (worker): declare it dead, re-queue its tasks
	OpAssign     Op = "assign"     // ID (task), Worker
	OpStart      Op = "start"      // ID (task), Worker, Attempt
	OpFinish     Op = "finish"     // ID (task), Worker, Attempt, OK, Error, Rows
	OpNode       Op = "node"       // Node: a coordinator's addresses
	OpRemove     Op = "remove"     // ID (node)
	OpBatch      Op = "batch"      // Batch: many commands in one log entry, applied in order
	OpExperiment Op = "experiment" // Experiment: replace a tune experiment's record
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
	// Experiment is an OpExperiment's record.
	Experiment *Experiment `json:"experiment,omitempty"`

	// A finish may carry: the stages a planning task laid out and the
	// layout itself; the producer tasks whose output a task could not
	// fetch (the attempt is then retried without counting a failure,
	// after those tasks run again); the files a commit task published.
	Layout []byte   `json:"layout,omitempty"`
	Stages []Stage  `json:"stages,omitempty"`
	Lost   []string `json:"lost,omitempty"`
	Output []string `json:"output,omitempty"`
	Bytes  int64    `json:"bytes,omitempty"`

	// Batch holds the commands of an OpBatch; each keeps its own request
	// id, and takes the batch's At when it has none.
	Batch []Command `json:"batch,omitempty"`
	// Assign, on an OpBatch, assigns pending tasks after the batch's
	// commands applied, as Decide would at At (its assignments only: no
	// expiry, no schedules), in the same entry: a report batch that frees
	// a worker's slots fills them without waiting for the leader's next
	// decision to commit. Decide is a function of the state and the time,
	// so every replica assigns alike.
	Assign bool `json:"assign,omitempty"`
}

// MaxTasks is the most tasks one job may have.
const MaxTasks = 1_000_000

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
		if c.Assign && !c.At.IsZero() {
			for _, a := range s.assign(c.At, nil, nil) {
				s.Apply(a)
			}
		}
		return out
	}
	if c.RequestID != "" {
		if r, ok := s.Requests[c.RequestID]; ok {
			return Result{Value: r.Value}
		}
	}
	report := c.RequestID != "" && (c.Op == OpStart || c.Op == OpFinish)
	if report {
		// A worker's report is remembered on its task, not in Requests
		// (two entries per task, kept a day, were most of the state).
		if t := s.Tasks[c.ID]; t != nil && t.reported(c) {
			return Result{Value: t.ID}
		}
	}
	v, err := s.apply(c)
	switch {
	case err != nil:
	case report:
		if t, w := s.Tasks[c.ID], s.Workers[c.Worker]; t != nil && w != nil {
			t.Reported, t.ReportedBy = c.Attempt*4+reportRank(c.Op), w.ID // w.ID: one string for all its tasks
		}
	case c.RequestID != "":
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

// handlers holds the handler of each command, in the style of a Raft FSM:
// apply dispatches on the op, each handler changes the state for its one
// command and answers the id it made or touched.
var handlers = map[Op]func(*State, Command) (string, error){
	OpSubmit:     (*State).applySubmit,
	OpSchedule:   (*State).applySchedule,
	OpUnschedule: (*State).applyUnschedule,
	OpFire:       (*State).applyFire,
	OpSkip:       (*State).applyFire,
	OpCancel:     (*State).applyCancel,
	OpRegister:   (*State).applyRegister,
	OpHeartbeat:  (*State).applyHeartbeat,
	OpExpire:     (*State).applyExpire,
	OpAssign:     (*State).applyAssign,
	OpStart:      (*State).applyReport,
	OpFinish:     (*State).applyReport,
	OpNode:       (*State).applyNode,
	OpRemove:     (*State).applyRemove,
	OpExperiment: (*State).applyExperiment,
}

func (s *State) apply(c Command) (string, error) {
	h := handlers[c.Op]
	if h == nil {
		return "", fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
	}
	return h(s, c)
}

// applySubmit makes a job of its planning task.
func (s *State) applySubmit(c Command) (string, error) {
	if c.Job == nil {
		return "", fmt.Errorf("%w: submit without a job", ErrBadCommand)
	}
	return s.submit(*c.Job, c.Needs, c.Locality, c.At), nil
}

// applySchedule registers a scheduled plan.
func (s *State) applySchedule(c Command) (string, error) {
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
}

// applyUnschedule removes a schedule; its jobs stay.
func (s *State) applyUnschedule(c Command) (string, error) {
	if s.Schedules[c.ID] == nil {
		return "", fmt.Errorf("%w: no schedule %s", ErrBadCommand, c.ID)
	}
	delete(s.Schedules, c.ID)
	return c.ID, nil
}

// applyFire makes the job of one scheduled time (OpFire) or only moves
// the schedule past it (OpSkip); once per scheduled time.
func (s *State) applyFire(c Command) (string, error) {
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
	return s.submit(Job{Name: sc.Name, File: sc.File, Plan: sc.Plan, Params: sc.Params,
		ScheduledTime: c.Time, Schedule: sc.ID, MaxRetries: sc.MaxRetries}, sc.Needs, sc.Locality, c.At), nil
}

// applyCancel stops a job; a job with a commit stage is cancelled once
// its commit task has removed what it staged.
func (s *State) applyCancel(c Command) (string, error) {
	j := s.Jobs[c.ID]
	if j == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownJob, c.ID)
	}
	if j.State.Done() || j.Cancelled {
		return j.ID, nil
	}
	cs := j.commitStage()
	if cs < 0 {
		s.stopAllBut(j, -1, "cancelled", c.At)
		j.State, j.Error, j.Finished = JobCancelled, "cancelled", c.At
		return j.ID, nil
	}
	// The commit task removes what the job staged; the job is cancelled
	// when it is done. Once it publishes, it is too late.
	if ct := s.Tasks[j.TaskAt(cs, 0)]; ct.isLive() && !j.Failing {
		return "", fmt.Errorf("%w: job %s is publishing its output and can no longer be cancelled", ErrFinished, j.ID)
	}
	j.Cancelled = true
	if !j.Failing {
		j.Failing, j.Error = true, "cancelled"
		s.stopAllBut(j, cs, "cancelled", c.At)
	}
	return j.ID, nil
}

// applyRegister adds a worker, or renews one that registers again.
func (s *State) applyRegister(c Command) (string, error) {
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
}

// applyHeartbeat marks a worker alive at c.At.
func (s *State) applyHeartbeat(c Command) (string, error) {
	w := s.Workers[c.ID]
	if w == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownWorker, c.ID)
	}
	w.Alive, w.LastHeartbeat = true, c.At
	return w.ID, nil
}

// applyExpire declares a worker dead: its tasks go back to pending (or
// fail past MaxDeaths), and the tasks whose kept output it held run again.
func (s *State) applyExpire(c Command) (string, error) {
	w := s.Workers[c.ID]
	if w == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownWorker, c.ID)
	}
	if !w.Alive {
		return w.ID, nil
	}
	w.Alive = false
	for _, t := range s.TasksOf(w.ID) {
		// A death is not the attempt's failure, unless the task keeps
		// taking its workers with it (out of memory, a crash in user
		// code): past MaxDeaths it fails.
		t.Deaths++
		t.Error, t.Updated = "worker "+w.ID+" died", c.At
		if t.Deaths > MaxDeaths {
			s.setTask(t, TaskFailed, "")
			t.Error = fmt.Sprintf("%d workers died running it, the last %s", t.Deaths, w.ID)
			s.settle(s.Jobs[t.Job], t, c.At)
			continue
		}
		s.setTask(t, TaskPending, "")
	}
	// Lineage: the blocks the dead worker kept for tasks still to run
	// are gone; the tasks that made them run again. Only the running
	// jobs with a stage that keeps blocks are walked (not every task of
	// the state), in job and task order, so every replica redoes alike.
	for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
		j := s.Jobs[id]
		if j.State.Done() || !slices.ContainsFunc(j.Stages, func(st Stage) bool { return st.Blocks }) {
			continue
		}
		for _, tid := range j.Tasks {
			if t := s.Tasks[tid]; t.Worker == w.ID && t.State == TaskSucceeded && s.needed(j, t) {
				s.redo(j, t, "output lost with worker "+w.ID, c.At)
			}
		}
	}
	return w.ID, nil
}

// applyAssign gives a pending task to a live worker with room for it.
func (s *State) applyAssign(c Command) (string, error) {
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
}

// applyReport takes a worker's start or finish of the attempt it runs;
// a report of another attempt or worker is stale.
func (s *State) applyReport(c Command) (string, error) {
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
	s.finish(s.Jobs[t.Job], t, c)
	return t.ID, nil
}

// finish ends task t's attempt as c reports: succeeded (laying out the
// job's stages if t planned it), retried after a lost input, or failed.
func (s *State) finish(j *Job, t *Task, c Command) {
	if c.OK && len(c.Stages) > 0 {
		if err := s.expand(j, t, c.Stages, c.Layout, c.At); err != nil {
			c.OK, c.Error = false, err.Error()
		}
	}
	switch {
	case c.OK:
		s.setTask(t, TaskSucceeded, t.Worker)
		t.Rows, t.Bytes, t.Error = c.Rows, c.Bytes, ""
		j.Succeeded++
		if t.Stage == j.commitStage() && !j.Failing {
			j.Output = c.Output
		}
	case len(c.Lost) > 0 && t.Lost < MaxLost:
		// An input was lost: not this attempt's fault. Its producers
		// run again, then this task.
		t.Lost++
		t.Error = c.Error
		s.setTask(t, TaskPending, "")
		for _, id := range c.Lost {
			if p := s.Tasks[id]; p != nil && p.Job == j.ID && p.State == TaskSucceeded {
				s.redo(j, p, "output lost: "+c.Error, c.At)
			}
		}
	default:
		t.Failures++
		t.Error = c.Error
		if t.Failures > j.maxRetries(t) {
			s.setTask(t, TaskFailed, "")
		} else {
			s.setTask(t, TaskPending, "")
		}
	}
	s.settle(j, t, c.At)
}

// applyNode records a coordinator's addresses.
func (s *State) applyNode(c Command) (string, error) {
	if c.Node == nil || c.Node.ID == "" {
		return "", fmt.Errorf("%w: node without an id", ErrBadCommand)
	}
	n := *c.Node
	s.Nodes[n.ID] = &n
	return n.ID, nil
}

// applyRemove forgets a coordinator.
func (s *State) applyRemove(c Command) (string, error) {
	delete(s.Nodes, c.ID)
	return c.ID, nil
}

// stopAllBut fails every task of j that is not done, except those of stage
// keep (-1: none).
func (s *State) stopAllBut(j *Job, keep int, why string, at time.Time) {
	for _, id := range j.Tasks {
		t := s.Tasks[id]
		if t.Stage != keep && t.State != TaskSucceeded && t.State != TaskFailed {
			s.setTask(t, TaskFailed, t.Worker)
			t.Error, t.Updated = why, at
		}
	}
}

// MaxDeaths is how many of a task's workers may die while running it
// before the task fails.
const MaxDeaths = 4

// MaxLost is how many attempts of a task may end with a lost input before
// the next one counts as a failure.
const MaxLost = 20

// redo sends a succeeded task back to pending, to make its output again.
func (s *State) redo(j *Job, t *Task, why string, at time.Time) {
	s.setTask(t, TaskPending, "")
	j.Succeeded--
	t.Error, t.Updated = why, at
}

// needed reports whether task t's kept output is still to be read: its
// stage keeps blocks and a task of a stage reading it has not succeeded.
func (s *State) needed(j *Job, t *Task) bool {
	if t.Stage >= len(j.Stages) || !j.Stages[t.Stage].Blocks {
		return false
	}
	for ci, c := range j.Stages {
		for _, in := range c.Inputs {
			if in.Stage != t.Stage {
				continue
			}
			for i := range c.Tasks {
				if !in.All && i != t.Index {
					continue
				}
				if ct := s.Tasks[j.TaskAt(ci, i)]; ct.State != TaskSucceeded {
					return true
				}
			}
		}
	}
	return false
}

// expand appends the stages a planning task laid out, and a commit stage.
func (s *State) expand(j *Job, t *Task, stages []Stage, layout []byte, at time.Time) error {
	if len(j.Stages) != 1 || t.Stage != 0 {
		return fmt.Errorf("%w: job %s is laid out already", ErrBadCommand, j.ID)
	}
	n := len(j.Tasks)
	for i, st := range stages {
		if st.Tasks < 1 {
			return fmt.Errorf("%w: stage %d of job %s has %d tasks", ErrBadCommand, i, j.ID, st.Tasks)
		}
		n += st.Tasks
		for _, in := range st.Inputs {
			if in.Stage < 0 || in.Stage >= i {
				return fmt.Errorf("%w: stage %d of job %s reads stage %d", ErrBadCommand, i, j.ID, in.Stage)
			}
		}
	}
	if n+1 > MaxTasks {
		return fmt.Errorf("%w: the layout has %d tasks (at most %d)", ErrBadCommand, n, MaxTasks)
	}
	plan := j.Stages[0]
	j.Layout = layout
	for _, st := range append(stages, Stage{Name: "commit", Tasks: 1, Kind: StageCommit,
		Inputs: []StageInput{{Stage: len(stages) - 1, All: true}}}) {
		if st.Kind == "" {
			st.Kind = StageExec
		}
		st.Inputs = slices.Clone(st.Inputs)
		for i := range st.Inputs {
			st.Inputs[i].Stage = JobStage(st.Inputs[i].Stage)
		}
		st.MaxRetries = plan.MaxRetries
		gpu := st.Needs.GPU
		st.Needs = plan.Needs
		if gpu > 0 {
			st.Needs.GPU = gpu
		}
		st.First = len(j.Tasks)
		// The stage's tasks are one allocation, and their ids one string:
		// a million-task job is then a few objects for the garbage
		// collector to mark rather than two million (tasks are never
		// removed from the state, so none is kept alive by another).
		tasks := make([]Task, st.Tasks)
		ids := taskIDs(j.ID, st.First, st.Tasks)
		for i := range tasks {
			nt := &tasks[i]
			*nt = Task{ID: ids[i], Job: j.ID, State: TaskPending, Needs: st.Needs,
				Stage: len(j.Stages), Index: i, Updated: at, Submitted: at}
			j.Tasks = append(j.Tasks, nt.ID)
			s.addTask(nt)
		}
		j.Stages = append(j.Stages, st)
	}
	delete(s.hint, j.ID)
	return nil
}

// taskIDs are the ids job-tFIRST to job-tFIRST+N-1, substrings of one
// string.
func taskIDs(job string, first, n int) []string {
	var buf []byte
	ends := make([]int, n)
	for i := range n {
		buf = strconv.AppendInt(append(append(buf, job...), "-t"...), int64(first+i), 10)
		ends[i] = len(buf)
	}
	all := string(buf)
	out := make([]string, n)
	from := 0
	for i, e := range ends {
		out[i], from = all[from:e], e
	}
	return out
}

// submit makes a job of one planning task, j-ID-t0; the layout it
// reports adds the others.
func (s *State) submit(j Job, needs Resources, locality string, at time.Time) string {
	j.ID = s.newID("j")
	j.State, j.Submitted, j.Error, j.Succeeded = JobPending, at, "", 0
	j.Finished = time.Time{}
	j.Stages = []Stage{{Name: "plan", Tasks: 1, Kind: StagePlan, MaxRetries: j.MaxRetries, Needs: needs}}
	t := &Task{ID: j.ID + "-t0", Job: j.ID, State: TaskPending, Needs: needs, Locality: locality,
		Updated: at, Submitted: at}
	j.Tasks = []string{t.ID}
	s.addTask(t)
	s.Jobs[j.ID] = &j
	return j.ID
}

// settle derives a job's state after its task t finished.
func (s *State) settle(j *Job, t *Task, at time.Time) {
	if j.State.Done() {
		return
	}
	commit := j.commitStage()
	switch {
	case commit >= 0 && t.Stage == commit && (j.Failing || t.State == TaskFailed):
		if !j.Failing {
			j.Error = fmt.Sprintf("task %s: %s", t.ID, t.Error)
		} else if t.State == TaskFailed {
			j.Error += fmt.Sprintf("; removing the staged output failed too (task %s: %s)", t.ID, t.Error)
		}
		j.State, j.Finished = JobFailed, at
		if j.Cancelled {
			j.State = JobCancelled
		}
	case t.State == TaskFailed && commit >= 0:
		// The commit task removes what the job staged; the job fails
		// when it is done. Nothing else of the job runs.
		j.Failing, j.Error = true, fmt.Sprintf("task %s: %s", t.ID, t.Error)
		s.stopAllBut(j, commit, "job failed", at)
	case t.State == TaskFailed:
		j.State, j.Error, j.Finished = JobFailed, fmt.Sprintf("task %s: %s", t.ID, t.Error), at
	case j.Succeeded == len(j.Tasks):
		j.State, j.Finished = JobSucceeded, at
	}
}
