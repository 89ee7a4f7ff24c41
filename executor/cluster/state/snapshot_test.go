package state

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// midJob drives a laid-out job on three workers, tick by tick: each tick
// heartbeats the live workers (but w3 after tick 6 and w4 after tick 2,
// which then die), runs
// the leader's decisions, and reports every live task: started, then
// finished the next tick, some attempts failing, one reporting a lost
// input. Every command goes to each state in ss, whose answers must
// agree; it stops after ticks, or when the job is done.
func midJob(t *testing.T, ss []*State, job string, from, ticks int) {
	t.Helper()
	s := ss[0]
	apply := func(c Command) {
		t.Helper()
		var first Result
		for i, x := range ss {
			r := x.Apply(c)
			if i == 0 {
				first = r
				continue
			}
			if fmt.Sprint(r) != fmt.Sprint(first) {
				t.Fatalf("%s %s: state %d answers %+v, state 0 %+v", c.Op, c.ID, i, r, first)
			}
		}
	}
	for k := from; k < from+ticks && !s.Jobs[job].State.Done(); k++ {
		now := at(10 * k)
		for w, last := range map[string]int{"w1": 1 << 30, "w2": 1 << 30, "w3": 6, "w4": 2} {
			if k <= last {
				apply(Command{Op: OpHeartbeat, ID: w, At: now})
			}
		}
		d := s.Decide(now, pol)
		for i, x := range ss[1:] {
			if got := x.Decide(now, pol); !reflect.DeepEqual(got, d) {
				t.Fatalf("tick %d: state %d decides\n%+v\nstate 0\n%+v", k, i+1, got, d)
			}
		}
		apply(Command{Op: OpBatch, At: now, Batch: d})
		var batch []Command
		for _, tk := range s.Jobs[job].Tasks {
			task := s.Tasks[tk]
			c := Command{ID: tk, Worker: task.Worker, Attempt: task.Attempt, At: now.Add(time.Second),
				RequestID: fmt.Sprintf("%s/%s/%d", task.Worker, tk, task.Attempt)}
			switch {
			case task.State == TaskAssigned:
				c.Op, c.RequestID = OpStart, c.RequestID+"/start"
			case task.State == TaskRunning:
				c.Op, c.OK, c.Rows, c.Bytes, c.RequestID = OpFinish, true, int64(task.Index+1), 10, c.RequestID+"/finish"
				switch {
				case task.Stage == 1 && task.Index%5 == 2 && task.Attempt == 1:
					c.OK, c.Error = false, "boom"
				case task.Stage == 2 && task.Index == 1 && task.Lost == 0:
					c.OK, c.Error, c.Lost = false, "fetch failed", []string{s.Jobs[job].TaskAt(1, 0)}
				case task.Stage == 4:
					c.Output = []string{"out/a.parquet"}
				}
			default:
				continue
			}
			batch = append(batch, c)
		}
		apply(Command{Op: OpBatch, At: now.Add(time.Second), Batch: batch, Assign: true})
	}
}

// jsonState is the state's replicated fields as JSON (map keys sorted).
func jsonState(t *testing.T, s *State) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.SnapshotJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSnapshotMidJobFinishesAlike: a state snapshotted in the middle of a
// job (tasks pending, assigned, running, succeeded, failed and retried,
// a worker about to die) restores to one that decides and answers as the
// original did, command by command, to the job's end, and ends the same.
// The old JSON snapshot of the same state restores to it too.
func TestSnapshotMidJobFinishesAlike(t *testing.T) {
	s := New()
	for _, w := range []string{"w1", "w2", "w3", "w4"} {
		register(t, s, w, 4, at(0))
	}
	mustApply(t, s, Command{Op: OpSchedule, At: t0, Schedule: &Schedule{Name: "n", Cron: "0 * * * *"}})
	id := submit(t, s, "r1", 2, at(0))
	step(t, s, at(0))
	finish(t, s, id+"-t0", true, at(1), func(c *Command) {
		c.Layout = []byte(`{"x":1}`)
		c.Stages = []Stage{
			{Name: "scan", Tasks: 40, Blocks: true},
			{Name: "map", Tasks: 40, Blocks: true, Inputs: []StageInput{{Stage: 0}}},
			{Name: "sink", Tasks: 3, Inputs: []StageInput{{Stage: 1, All: true}}},
		}
	})
	midJob(t, []*State{s}, id, 1, 5)
	counts := s.Counts()
	if s.Workers["w4"].Alive || !s.Workers["w3"].Alive {
		t.Fatal("w4 (only) should be dead at the snapshot")
	}
	if counts[TaskSucceeded] == 0 || counts[TaskPending] == 0 || counts[TaskRunning]+counts[TaskAssigned] == 0 {
		t.Fatalf("not mid-job: %v", counts)
	}

	var bin, old bytes.Buffer
	if err := s.Snapshot(&bin); err != nil {
		t.Fatal(err)
	}
	if err := s.SnapshotJSON(&old); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tasks: binary snapshot %d bytes, JSON %d", len(s.Tasks), bin.Len(), old.Len())
	if bin.Len()*3 > old.Len() {
		t.Errorf("binary snapshot %d bytes, JSON %d: want at most a third", bin.Len(), old.Len())
	}
	r, err := Restore(&bin)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Restore(&old)
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*State{"binary": r, "JSON": o} {
		if got, want := jsonState(t, x), jsonState(t, s); got != want {
			t.Fatalf("%s snapshot restores\n%s\nwant\n%s", name, got, want)
		}
		if got, want := trace(x), trace(s); got != want {
			t.Fatalf("%s snapshot restores\n%s\nwant\n%s", name, got, want)
		}
	}

	midJob(t, []*State{s, r, o}, id, 6, 40)
	if j := s.Jobs[id]; j.State != JobSucceeded || j.Succeeded != len(j.Tasks) {
		t.Fatalf("job %s after 40 ticks: %s, %d of %d tasks\n%s", id, j.State, j.Succeeded, len(j.Tasks), trace(s))
	}
	if s.Workers["w3"].Alive || s.Workers["w4"].Alive {
		t.Fatal("w3 or w4 did not die: the test lost its expiries")
	}
	for name, x := range map[string]*State{"binary": r, "JSON": o} {
		if got, want := jsonState(t, x), jsonState(t, s); got != want {
			t.Fatalf("%s-restored state ends\n%s\nwant\n%s", name, got, want)
		}
	}
}

// TestSnapshotOddTasks: tasks that no job lists, a job whose task list is
// not its own ids, an unknown task state and strings shared across tasks
// survive a snapshot.
func TestSnapshotOddTasks(t *testing.T) {
	s := New()
	register(t, s, "w1", 2, at(0))
	id := submit(t, s, "", 0, at(0))
	s.Jobs[id].Tasks = append(s.Jobs[id].Tasks, "other")
	s.Tasks["other"] = &Task{ID: "other", Job: id, State: "odd", Worker: "w1", Error: "e", Updated: at(3)}
	s.Tasks["orphan"] = &Task{ID: "orphan", Job: "gone", State: TaskSucceeded, Locality: "h:1", Submitted: at(2)}
	s.Jobs["j-x"] = &Job{ID: "j-x", Tasks: []string{"missing"}, Stages: []Stage{{Tasks: 1}}}
	s.counts, s.live, s.done = nil, nil, nil
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonState(t, r), jsonState(t, s); got != want {
		t.Fatalf("restores\n%s\nwant\n%s", got, want)
	}
}

// TestRestoreMalformed: a cut or garbled snapshot is an error, never a
// panic.
func TestRestoreMalformed(t *testing.T) {
	s := New()
	register(t, s, "w1", 2, at(0))
	submit(t, s, "", 0, at(0))
	good := []byte(snapshotOf(t, s))
	for name, b := range map[string][]byte{
		"empty":     nil,
		"unknown":   {0x07, 1, 2},
		"cut short": good[:len(good)-2],
		"trailing":  append(append([]byte(nil), good...), 0),
		"bad JSON":  append(append([]byte(nil), snapV1...), 3, '{', '"', '}'),
	} {
		_, err := Restore(bytes.NewReader(b))
		if err == nil {
			t.Errorf("%s: restored", name)
			continue
		}
		if name == "empty" || name == "unknown" {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
			}
		}
		t.Logf("%s: %v", name, err)
	}
}
