package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/sluicehq/sluice/schedule"
)

// Policy tunes the leader's decisions.
type Policy struct {
	// WorkerTimeout is how long a worker may go without a heartbeat before
	// it is declared dead.
	WorkerTimeout time.Duration
	// LeaderSince is when this leader took over: no worker is declared dead
	// before it has led for WorkerTimeout, since heartbeats cannot commit
	// while there is no leader.
	LeaderSince time.Time
	// OnTime is how late a scheduled time may fire as a normal run rather
	// than as a missed one, which the plan's catch_up policy decides.
	OnTime time.Duration
	// Reserved are the tasks (by id, with their worker) of decisions
	// proposed and not yet applied: while a task is still pending in s,
	// Decide does not place it again and counts its needs as taken on its
	// worker, so the leader can decide again while a decision commits.
	Reserved map[string]string
}

// Decide is what the leader proposes at now: dead workers to expire,
// pending tasks to assign, scheduled times to fire. It changes no
// replicated field of s (only its scan hints, which are derived and never
// serialized), so one goroutine, the leader's loop, may call it under the
// state's read lock while Apply waits for the write lock; each command is
// checked again when applied, so deciding on a state that is a little old
// is safe.
func (s *State) Decide(now time.Time, p Policy) []Command {
	var out []Command
	dead := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(s.Workers)) {
		w := s.Workers[id]
		if w.Alive && now.Sub(w.LastHeartbeat) > p.WorkerTimeout && now.Sub(p.LeaderSince) > p.WorkerTimeout {
			out = append(out, Command{Op: OpExpire, ID: id, At: now})
			dead[id] = true
		}
	}
	out = append(out, s.assign(now, dead, p.Reserved)...)
	out = append(out, s.fire(now, p)...)
	return out
}

// assign is the assignments of pending tasks at now, oldest job first, to
// the live worker that fits with the preferred address first, then with
// the most free CPU (ties by id); dead are workers about to be expired,
// reserved the tasks of decisions in flight (see Policy.Reserved).
func (s *State) assign(now time.Time, dead map[string]bool, reserved map[string]string) []Command {
	var out []Command
	free := map[string]Resources{}
	var live []string
	for _, id := range slices.Sorted(maps.Keys(s.Workers)) {
		if s.Workers[id].Alive && !dead[id] {
			free[id] = s.Free(id)
			live = append(live, id)
		}
	}
	for id, wk := range reserved {
		if t := s.Tasks[id]; t != nil && t.State == TaskPending {
			if f, ok := free[wk]; ok {
				free[wk] = f.sub(t.Needs)
			}
		}
	}
	// Pending tasks in order: jobs by submit time (ties by id), each job's
	// tasks in its order.
	var jobs []*Job
	for _, j := range s.Jobs {
		if !j.State.Done() {
			jobs = append(jobs, j)
		}
	}
	slices.SortFunc(jobs, func(a, b *Job) int {
		if c := a.Submitted.Compare(b.Submitted); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	for _, j := range jobs {
		if len(live) == 0 {
			break
		}
		// Tasks before the job's hint are not pending (none of a dead
		// worker's are, though: with a death the scan starts over).
		from := s.hint[j.ID]
		if len(dead) > 0 {
			from = 0
		}
		leading := true
		g := s.newGate(j, dead)
		for i := from; i < len(j.Tasks); i++ {
			t := s.Tasks[j.Tasks[i]]
			if t == nil {
				continue
			}
			requeued := dead[t.Worker] && t.isLive()
			if t.State != TaskPending && !requeued {
				if leading && len(dead) == 0 {
					s.setHint(j.ID, i+1)
				}
				continue
			}
			leading = false
			if _, ok := reserved[t.ID]; ok && t.State == TaskPending {
				g.placed(t) // proposed already
				continue
			}
			if !g.ready(t) {
				continue
			}
			if !s.place(t, live, free, &out, now, g.prefer(t)) {
				// A stage's tasks all need the same: none later in it fits.
				st := j.Stages[min(t.Stage, len(j.Stages)-1)]
				i = max(i, st.First+st.Tasks-1)
				if len(j.Stages) == 1 {
					break
				}
				continue
			}
			g.placed(t)
		}
	}
	return out
}

// gate knows, for one job in one Decide, which of its pending tasks may
// start: those whose inputs exist, within their stage's in-flight bound
// (the commit task: when every other task succeeded, or the job failed).
type gate struct {
	s        *State
	j        *Job
	done     []int          // succeeded tasks per stage
	inFlight []int          // per stage: live tasks, and succeeded ones whose one-to-one consumer has not
	ran      map[int]string // stateful stage → a worker that ran one of its tasks
	dead     map[string]bool
}

// have reports whether task t's output exists: it succeeded, and did not
// keep its blocks on a worker found dead in this Decide.
func (g *gate) have(t *Task) bool {
	return t.State == TaskSucceeded && !(g.dead[t.Worker] && g.j.Stages[t.Stage].Blocks)
}

func (s *State) newGate(j *Job, dead map[string]bool) *gate {
	g := &gate{s: s, j: j, dead: dead}
	if len(j.Stages) < 2 {
		return g
	}
	g.done = make([]int, len(j.Stages))
	g.inFlight = make([]int, len(j.Stages))
	g.ran = map[int]string{}
	if len(dead) == 0 && !slices.ContainsFunc(j.Stages, func(st Stage) bool { return st.MaxInFlight > 0 || st.Stateful }) {
		// Without deaths, in-flight bounds or stateful stages, the gate
		// needs only the succeeded tasks per stage, kept as tasks change
		// state: no walk over the job's tasks (O(stages), not O(tasks)).
		copy(g.done, s.stageDone()[j.ID])
		return g
	}
	consumer := make([]int, len(j.Stages)) // the stage reading each one-to-one, or -1
	for i := range consumer {
		consumer[i] = -1
	}
	for ci, c := range j.Stages {
		for _, in := range c.Inputs {
			if !in.All {
				consumer[in.Stage] = ci
			}
		}
	}
	for _, id := range j.Tasks {
		t := s.Tasks[id]
		switch {
		case g.have(t):
			g.done[t.Stage]++
			if c := consumer[t.Stage]; c >= 0 && !g.have(s.Tasks[j.TaskAt(c, t.Index)]) {
				g.inFlight[t.Stage]++
			}
		case t.isLive() && !dead[t.Worker]:
			g.inFlight[t.Stage]++
		}
		if j.Stages[t.Stage].Stateful && t.Worker != "" && !dead[t.Worker] && g.ran[t.Stage] == "" {
			g.ran[t.Stage] = t.Worker
		}
	}
	return g
}

func (g *gate) ready(t *Task) bool {
	j := g.j
	if g.done == nil {
		return true
	}
	st := j.Stages[t.Stage]
	if st.Kind == StageCommit {
		n := 0
		for _, d := range g.done {
			n += d
		}
		return j.Failing || n == len(j.Tasks)-1
	}
	if j.Failing {
		return false
	}
	if st.MaxInFlight > 0 && g.inFlight[t.Stage] >= st.MaxInFlight {
		return false
	}
	for _, in := range st.Inputs {
		if in.All {
			if g.done[in.Stage] < j.Stages[in.Stage].Tasks {
				return false
			}
		} else if !g.have(g.s.Tasks[j.TaskAt(in.Stage, t.Index)]) {
			return false
		}
	}
	return true
}

func (g *gate) placed(t *Task) {
	if g.inFlight != nil {
		g.inFlight[t.Stage]++
	}
}

// prefer is the worker t would best run on: the one holding its
// one-to-one input, or one that ran its stateful stage before.
func (g *gate) prefer(t *Task) string {
	if g.done == nil {
		return ""
	}
	st := g.j.Stages[t.Stage]
	for _, in := range st.Inputs {
		if !in.All {
			return g.s.Tasks[g.j.TaskAt(in.Stage, t.Index)].Worker
		}
	}
	if st.Stateful {
		return g.ran[t.Stage]
	}
	return ""
}

// place assigns t to the best live worker it fits, if any: the preferred
// worker if it fits, else by locality and free CPU.
func (s *State) place(t *Task, live []string, free map[string]Resources, out *[]Command, now time.Time, prefer string) bool {
	best := ""
	if prefer != "" && s.Workers[prefer] != nil && slices.Contains(live, prefer) && t.Needs.Fits(free[prefer]) {
		best = prefer
	}
	for _, id := range live {
		if best == prefer && best != "" {
			break
		}
		if !t.Needs.Fits(free[id]) {
			continue
		}
		if best == "" || better(s.Workers[id], s.Workers[best], free[id], free[best], t.Locality) {
			best = id
		}
	}
	if best != "" {
		free[best] = free[best].sub(t.Needs)
		*out = append(*out, Command{Op: OpAssign, ID: t.ID, Worker: best, At: now})
	}
	return best != ""
}

func better(w, than *Worker, free, thanFree Resources, locality string) bool {
	if locality != "" && (w.Addr == locality) != (than.Addr == locality) {
		return w.Addr == locality
	}
	return free.CPU > thanFree.CPU
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fire is the commands for the scheduled times due at now.
func (s *State) fire(now time.Time, p Policy) []Command {
	var out []Command
	for _, id := range slices.Sorted(maps.Keys(s.Schedules)) {
		sc := s.Schedules[id]
		sched, err := schedule.New(sc.Cron, sc.TimeZone, sc.CatchUp)
		if err != nil {
			continue // checked at submit
		}
		next := sched.Next(sc.LastFired)
		if next.IsZero() || next.After(now) {
			continue
		}
		if now.Sub(next) <= p.OnTime {
			out = append(out, Command{Op: OpFire, ID: id, Time: next, At: now})
			continue
		}
		// Late: the plan's catch_up policy picks the missed times to run;
		// then the schedule moves past every time due by now.
		for _, t := range sched.Missed(sc.LastFired, now) {
			out = append(out, Command{Op: OpFire, ID: id, Time: t, At: now})
		}
		out = append(out, Command{Op: OpSkip, ID: id, Time: latestDue(sched, sc.LastFired, now), At: now})
	}
	return out
}

// latestDue is the latest scheduled time in (last, now], or last.
func latestDue(s *schedule.Schedule, last, now time.Time) time.Time {
	all, _ := schedule.New(s.Cron, s.TimeZone, schedule.CatchUpLatest)
	if m := all.Missed(last, now); len(m) > 0 {
		return m[len(m)-1]
	}
	return last
}

// SnapshotJSON writes the state as JSON, the snapshot format before
// format 1 (Snapshot), which Restore still reads.
func (s *State) SnapshotJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(s)
}

// Restore reads a state that Snapshot (or, before format 1, SnapshotJSON)
// wrote.
func Restore(r io.Reader) (*State, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("state: restore: %w", err)
	}
	var s *State
	switch {
	case bytes.HasPrefix(data, snapV1):
		if s, err = restoreBinary(data[len(snapV1):]); err != nil {
			return nil, err
		}
	case isJSON(data):
		s = New()
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("state: restore: %w", err)
		}
	default:
		return nil, fmt.Errorf("%w (first bytes % x)", ErrBadSnapshot, data[:min(len(data), 4)])
	}
	n := New()
	if s.Jobs == nil {
		s.Jobs = n.Jobs
	}
	if s.Tasks == nil {
		s.Tasks = n.Tasks
	}
	if s.Workers == nil {
		s.Workers = n.Workers
	}
	if s.Schedules == nil {
		s.Schedules = n.Schedules
	}
	if s.Nodes == nil {
		s.Nodes = n.Nodes
	}
	if s.Requests == nil {
		s.Requests = n.Requests
	}
	if s.Experiments == nil {
		s.Experiments = n.Experiments
	}
	// Built here, so readers sharing the state never write it.
	s.live, s.counts, s.done = nil, nil, nil
	s.index()
	s.count()
	s.stageDone()
	for _, j := range s.Jobs { // snapshots before the count had none
		j.Succeeded = 0
		for _, id := range j.Tasks {
			if t := s.Tasks[id]; t != nil && t.State == TaskSucceeded {
				j.Succeeded++
			}
		}
	}
	return s, nil
}
