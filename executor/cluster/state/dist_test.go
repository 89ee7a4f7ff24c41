package state

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// finish reports task id's current attempt on its worker.
func finish(t *testing.T, s *State, id string, ok bool, now time.Time, mod func(*Command)) {
	t.Helper()
	tk := s.Tasks[id]
	c := Command{Op: OpFinish, ID: id, Worker: tk.Worker, Attempt: tk.Attempt, OK: ok, At: now}
	if !ok {
		c.Error = "boom"
	}
	if mod != nil {
		mod(&c)
	}
	mustApply(t, s, c)
}

// laidOut submits a job and finishes its planning task with a layout of
// scan (3 tasks, blocks) → reduce (2 tasks, reads all, blocks) → sink (2
// tasks, one-to-one), so the job has 1 + 3 + 2 + 2 + 1 (commit) tasks.
func laidOut(t *testing.T, s *State, retries int) *Job {
	t.Helper()
	id := submit(t, s, "", retries, at(0))
	step(t, s, at(0))
	finish(t, s, id+"-t0", true, at(1), func(c *Command) {
		c.Layout = []byte(`{"x":1}`)
		c.Stages = []Stage{
			{Name: "scan", Tasks: 3, Blocks: true},
			{Name: "reduce", Tasks: 2, Blocks: true, Inputs: []StageInput{{Stage: 0, All: true}}},
			{Name: "sink", Tasks: 2, Inputs: []StageInput{{Stage: 1}}},
		}
	})
	return s.Jobs[id]
}

// beat heartbeats every live worker, then runs the leader's decisions.
func beat(t *testing.T, s *State, now time.Time) {
	t.Helper()
	for id, w := range s.Workers {
		if w.Alive {
			mustApply(t, s, Command{Op: OpHeartbeat, ID: id, At: now})
		}
	}
	step(t, s, now)
}

// states are the states of a job's tasks, in order, as one string.
func states(s *State, j *Job) string {
	var b strings.Builder
	for _, id := range j.Tasks {
		b.WriteString(string(s.Tasks[id].State)[:2] + " ")
	}
	return strings.TrimSpace(b.String())
}

func TestLayoutRunsStagesInOrder(t *testing.T) {
	s := New()
	register(t, s, "w1", 8, at(0))
	register(t, s, "w2", 8, at(0))
	j := laidOut(t, s, 0)
	if len(j.Tasks) != 9 || len(j.Stages) != 5 || j.Stages[4].Kind != StageCommit || string(j.Layout) != `{"x":1}` {
		t.Fatalf("layout: %d tasks, stages %+v", len(j.Tasks), j.Stages)
	}
	beat(t, s, at(1))
	// Only the scan runs: the reduce reads all of it, the sink the reduce.
	if got, want := states(s, j), "su as as as pe pe pe pe pe"; got != want {
		t.Fatalf("after planning: %s, want %s", got, want)
	}
	finish(t, s, j.TaskAt(1, 0), true, at(2), nil)
	finish(t, s, j.TaskAt(1, 1), true, at(2), nil)
	beat(t, s, at(2))
	if got, want := states(s, j), "su su su as pe pe pe pe pe"; got != want {
		t.Fatalf("two of three scans done: %s, want %s", got, want)
	}
	finish(t, s, j.TaskAt(1, 2), true, at(3), nil)
	beat(t, s, at(3))
	finish(t, s, j.TaskAt(2, 1), true, at(4), nil)
	beat(t, s, at(4))
	// Sink task 1 reads reduce task 1 only: it starts, on the same worker.
	if got, want := states(s, j), "su su su su as su pe as pe"; got != want {
		t.Fatalf("streaming: %s, want %s", got, want)
	}
	if a, b := s.Tasks[j.TaskAt(3, 1)].Worker, s.Tasks[j.TaskAt(2, 1)].Worker; a != b {
		t.Fatalf("sink task on %s, its input on %s", a, b)
	}
	finish(t, s, j.TaskAt(2, 0), true, at(5), nil)
	beat(t, s, at(5))
	finish(t, s, j.TaskAt(3, 0), true, at(6), nil)
	finish(t, s, j.TaskAt(3, 1), true, at(6), nil)
	beat(t, s, at(6))
	if got := s.Tasks[j.TaskAt(4, 0)].State; got != TaskAssigned || j.State.Done() {
		t.Fatalf("commit task %s, job %s", got, j.State)
	}
	finish(t, s, j.TaskAt(4, 0), true, at(7), func(c *Command) { c.Output = []string{"out/part-0"} })
	if j.State != JobSucceeded || len(j.Output) != 1 {
		t.Fatalf("job %s, output %v", j.State, j.Output)
	}
}

func TestLostBlocksRunAgain(t *testing.T) {
	s := New()
	register(t, s, "w1", 8, at(0))
	j := laidOut(t, s, 0)
	beat(t, s, at(1))
	for i := range 3 {
		finish(t, s, j.TaskAt(1, i), true, at(2), nil)
	}
	beat(t, s, at(2))
	// w2 joins; w1 dies with the scan's blocks and the running reduces.
	for i := 3; i <= 9; i++ {
		register(t, s, "w2", 8, at(i))
		step(t, s, at(i))
	}
	if got, want := states(s, j), "su as as as pe pe pe pe pe"; got != want {
		t.Fatalf("after w1 died: %s, want %s", got, want)
	}
	for i := range 3 {
		if tk := s.Tasks[j.TaskAt(1, i)]; tk.Worker != "w2" || tk.Attempt != 2 || tk.Failures != 0 {
			t.Fatalf("scan task %d: %+v", i, tk)
		}
	}
	if j.Succeeded != 1 {
		t.Fatalf("succeeded %d, want 1 (the planning task)", j.Succeeded)
	}
	// A reduce that cannot fetch scan task 0's block sends it back to
	// run again, and waits for it, without a failure.
	for i := range 3 {
		finish(t, s, j.TaskAt(1, i), true, at(10), nil)
	}
	beat(t, s, at(10))
	r0 := j.TaskAt(2, 0)
	finish(t, s, r0, false, at(11), func(c *Command) { c.Lost = []string{j.TaskAt(1, 0)} })
	beat(t, s, at(11))
	if tk := s.Tasks[r0]; tk.State != TaskPending || tk.Failures != 0 || tk.Lost != 1 {
		t.Fatalf("reduce after a lost input: %+v", tk)
	}
	if tk := s.Tasks[j.TaskAt(1, 0)]; tk.State != TaskAssigned || tk.Attempt != 3 {
		t.Fatalf("lost producer: %+v", tk)
	}
}

func TestFailedJobRemovesItsOutput(t *testing.T) {
	s := New()
	register(t, s, "w1", 8, at(0))
	j := laidOut(t, s, 0)
	beat(t, s, at(1))
	finish(t, s, j.TaskAt(1, 0), false, at(2), nil)
	if j.State.Done() || !j.Failing || !strings.Contains(j.Error, "boom") {
		t.Fatalf("job %s failing=%v error %q", j.State, j.Failing, j.Error)
	}
	beat(t, s, at(2))
	// Every other task stopped; the commit task runs to remove the staging.
	if got, want := states(s, j), "su fa fa fa fa fa fa fa as"; got != want {
		t.Fatalf("failing: %s, want %s", got, want)
	}
	finish(t, s, j.TaskAt(4, 0), true, at(3), func(c *Command) { c.Output = []string{"ignored"} })
	if j.State != JobFailed || j.Output != nil {
		t.Fatalf("job %s output %v", j.State, j.Output)
	}
}

func TestBadLayoutFailsThePlanningTask(t *testing.T) {
	s := New()
	register(t, s, "w1", 8, at(0))
	id := submit(t, s, "", 0, at(0))
	beat(t, s, at(0))
	finish(t, s, id+"-t0", true, at(1), func(c *Command) {
		c.Stages = []Stage{{Name: "a", Tasks: 1, Inputs: []StageInput{{Stage: 0}}}}
	})
	if j := s.Jobs[id]; j.State != JobFailed || !strings.Contains(j.Error, "reads stage 0") {
		t.Fatalf("job %s: %s", j.State, j.Error)
	}
}

func TestInFlightBound(t *testing.T) {
	s := New()
	register(t, s, "w1", 16, at(0))
	id := submit(t, s, "", 0, at(0))
	beat(t, s, at(0))
	finish(t, s, id+"-t0", true, at(1), func(c *Command) {
		c.Stages = []Stage{
			{Name: "map", Tasks: 6, Blocks: true, MaxInFlight: 2},
			{Name: "sink", Tasks: 6, Inputs: []StageInput{{Stage: 0}}, Needs: Resources{GPU: 0}},
		}
	})
	j := s.Jobs[id]
	beat(t, s, at(1))
	if got, want := states(s, j), "su as as pe pe pe pe pe pe pe pe pe pe pe"; got != want {
		t.Fatalf("bounded: %s, want %s", got, want)
	}
	finish(t, s, j.TaskAt(1, 0), true, at(2), nil)
	beat(t, s, at(2))
	// Map task 0's block is still unread: still two in flight.
	if got, want := states(s, j), "su su as pe pe pe pe as pe pe pe pe pe pe"; got != want {
		t.Fatalf("one done: %s, want %s", got, want)
	}
	finish(t, s, j.TaskAt(2, 0), true, at(3), nil)
	beat(t, s, at(3))
	if got, want := states(s, j), "su su as as pe pe pe su pe pe pe pe pe pe"; got != want {
		t.Fatalf("consumed: %s, want %s", got, want)
	}
}

func TestCancelRemovesStagedOutput(t *testing.T) {
	s := New()
	register(t, s, "w1", 8, at(0))
	j := laidOut(t, s, 0)
	beat(t, s, at(1))
	mustApply(t, s, Command{Op: OpCancel, ID: j.ID, At: at(2)})
	if j.State.Done() || !j.Failing {
		t.Fatalf("cancelled job %s failing=%v", j.State, j.Failing)
	}
	beat(t, s, at(2))
	if got, want := states(s, j), "su fa fa fa fa fa fa fa as"; got != want {
		t.Fatalf("cancelling: %s, want %s", got, want)
	}
	finish(t, s, j.TaskAt(4, 0), true, at(3), nil)
	if j.State != JobCancelled {
		t.Fatalf("job %s", j.State)
	}

	// A job whose commit task publishes can no longer be cancelled.
	j2 := laidOut(t, s, 0)
	for st := 1; st <= 3; st++ {
		beat(t, s, at(4))
		for i := range j2.Stages[st].Tasks {
			finish(t, s, j2.TaskAt(st, i), true, at(4), nil)
		}
	}
	beat(t, s, at(5))
	if r := s.Apply(Command{Op: OpCancel, ID: j2.ID, At: at(5)}); !errors.Is(r.Err, ErrFinished) {
		t.Fatalf("cancel while publishing: %v", r.Err)
	}
}

// A task whose workers keep dying while they run it fails after MaxDeaths.
func TestTaskThatKillsItsWorkers(t *testing.T) {
	s := New()
	id := submit(t, s, "", 0, at(0))
	now := 0
	for i := range MaxDeaths + 1 {
		w := fmt.Sprint("w", i)
		register(t, s, w, 1, at(now))
		step(t, s, at(now))
		if tk := s.Tasks[id+"-t0"]; tk.Worker != w {
			t.Fatalf("death %d: task on %q, want %s", i, tk.Worker, w)
		}
		now += 10 // past the worker timeout: w dies with the task
		step(t, s, at(now))
	}
	tk, j := s.Tasks[id+"-t0"], s.Jobs[id]
	if tk.State != TaskFailed || tk.Failures != 0 || j.State != JobFailed || !strings.Contains(j.Error, "workers died running it") {
		t.Fatalf("task %+v, job %s %q", tk, j.State, j.Error)
	}
}
