package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

var pol = Policy{WorkerTimeout: 5 * time.Second, OnTime: time.Minute}

// trace is the state in one line per task and worker, sorted.
func trace(s *State) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
		j := s.Jobs[id]
		fmt.Fprintf(&b, "%s %s", j.ID, j.State)
		for _, tid := range j.Tasks {
			t := s.Tasks[tid]
			fmt.Fprintf(&b, " [%s %s a%d f%d %s]", t.ID, t.State, t.Attempt, t.Failures, t.Worker)
		}
		b.WriteString("\n")
	}
	for _, id := range slices.Sorted(maps.Keys(s.Workers)) {
		w := s.Workers[id]
		fmt.Fprintf(&b, "%s alive=%v free=%+v\n", w.ID, w.Alive, s.Free(id))
		// The derived Used is what a walk of the live tasks finds.
		var walked Resources
		for _, t := range s.Tasks {
			if t.isLive() && t.Worker == id {
				walked = walked.add(t.Needs)
			}
		}
		if u := s.Used(id); u != walked {
			fmt.Fprintf(&b, "BAD INDEX: %s uses %+v, its live tasks %+v\n", id, u, walked)
		}
	}
	return b.String()
}

func mustApply(t *testing.T, s *State, c Command) string {
	t.Helper()
	r := s.Apply(c)
	if r.Err != nil {
		t.Fatalf("%s %s: %v", c.Op, c.ID, r.Err)
	}
	return r.Value
}

// step runs the leader's decisions at now and applies them.
func step(t *testing.T, s *State, now time.Time) {
	t.Helper()
	for _, c := range s.Decide(now, pol) {
		mustApply(t, s, c)
	}
}

func register(t *testing.T, s *State, id string, cpu int, now time.Time) {
	mustApply(t, s, Command{Op: OpRegister, At: now, Register: &Worker{ID: id, Addr: id + ":1", Resources: Resources{CPU: cpu, Memory: 1 << 30}}})
}

func submit(t *testing.T, s *State, req string, retries int, now time.Time) string {
	return mustApply(t, s, Command{Op: OpSubmit, RequestID: req, At: now,
		Job: &Job{Name: "p", Plan: []byte("name: p"), MaxRetries: retries}, Needs: Resources{CPU: 1}})
}

func TestLifecycle(t *testing.T) {
	s := New()
	register(t, s, "w1", 1, at(0))
	id := submit(t, s, "r1", 1, at(0))
	if again := submit(t, s, "r1", 1, at(1)); again != id || len(s.Jobs) != 1 {
		t.Fatalf("duplicate submit: %s, %d jobs", again, len(s.Jobs))
	}
	id2 := submit(t, s, "r2", 0, at(1))
	step(t, s, at(1))
	want := "j-000001 running [j-000001-t0 assigned a1 f0 w1]\nj-000002 pending [j-000002-t0 pending a0 f0 ]\nw1 alive=true free={CPU:0 GPU:0 Memory:1073741824}\n"
	if got := trace(s); got != want {
		t.Fatalf("after assign:\n%s\nwant:\n%s", got, want)
	}
	tid := id + "-t0"
	mustApply(t, s, Command{Op: OpStart, ID: tid, Worker: "w1", Attempt: 1, At: at(2)})
	// A failure with a retry left goes back to pending, then runs again.
	mustApply(t, s, Command{Op: OpFinish, ID: tid, Worker: "w1", Attempt: 1, Error: "boom", At: at(3)})
	step(t, s, at(3))
	if tk := s.Tasks[tid]; tk.State != TaskAssigned || tk.Attempt != 2 || tk.Failures != 1 {
		t.Fatalf("retry: %+v", tk)
	}
	// A result of the old attempt is stale.
	if r := s.Apply(Command{Op: OpFinish, ID: tid, Worker: "w1", Attempt: 1, OK: true, At: at(4)}); !errors.Is(r.Err, ErrStale) {
		t.Fatalf("stale finish: %v", r.Err)
	}
	mustApply(t, s, Command{Op: OpFinish, ID: tid, Worker: "w1", Attempt: 2, OK: true, Rows: 7, At: at(4)})
	if j := s.Jobs[id]; j.State != JobSucceeded {
		t.Fatalf("job: %s", j.State)
	}
	step(t, s, at(4))
	t2 := id2 + "-t0"
	mustApply(t, s, Command{Op: OpFinish, ID: t2, Worker: "w1", Attempt: 1, Error: "bad", At: at(5)})
	if j := s.Jobs[id2]; j.State != JobFailed || !strings.Contains(j.Error, "bad") {
		t.Fatalf("no retries left: %+v", j)
	}
}

func TestDeadWorkerRequeues(t *testing.T) {
	s := New()
	register(t, s, "w1", 2, at(0))
	id := submit(t, s, "", 0, at(0))
	step(t, s, at(0))
	register(t, s, "w2", 2, at(1))
	// w1 stops; w2 keeps beating.
	for i := 2; i <= 7; i++ {
		mustApply(t, s, Command{Op: OpHeartbeat, ID: "w2", At: at(i)})
		step(t, s, at(i))
	}
	want := "j-000001 running [j-000001-t0 assigned a2 f0 w2]\nw1 alive=false free={CPU:2 GPU:0 Memory:1073741824}\nw2 alive=true free={CPU:1 GPU:0 Memory:1073741824}\n"
	if got := trace(s); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// The dead worker's late result is ignored.
	if r := s.Apply(Command{Op: OpFinish, ID: id + "-t0", Worker: "w1", Attempt: 1, OK: true, At: at(8)}); !errors.Is(r.Err, ErrStale) {
		t.Fatalf("dead worker's result: %v", r.Err)
	}
}

func TestNewLeaderWaitsBeforeExpiring(t *testing.T) {
	s := New()
	register(t, s, "w1", 1, at(0))
	p := pol
	p.LeaderSince = at(20)
	for _, c := range s.Decide(at(21), p) {
		if c.Op == OpExpire {
			t.Fatalf("expired %s right after an election", c.ID)
		}
	}
}

func TestCancel(t *testing.T) {
	s := New()
	register(t, s, "w1", 1, at(0))
	id := submit(t, s, "", 0, at(0))
	step(t, s, at(0))
	mustApply(t, s, Command{Op: OpCancel, ID: id, At: at(1)})
	if got := trace(s); got != "j-000001 cancelled [j-000001-t0 failed a1 f0 w1]\nw1 alive=true free={CPU:1 GPU:0 Memory:1073741824}\n" {
		t.Fatalf("got:\n%s", got)
	}
	if len(s.TasksOf("w1")) != 0 {
		t.Fatal("cancelled task still on the worker")
	}
}

func TestResourcesAndLocality(t *testing.T) {
	s := New()
	register(t, s, "a", 4, at(0))
	register(t, s, "b", 8, at(0))
	mustApply(t, s, Command{Op: OpSubmit, At: at(0), Job: &Job{}, Needs: Resources{CPU: 2}, Locality: "a:1"})
	mustApply(t, s, Command{Op: OpSubmit, At: at(1), Job: &Job{}, Needs: Resources{CPU: 8}})
	mustApply(t, s, Command{Op: OpSubmit, At: at(2), Job: &Job{}, Needs: Resources{GPU: 1}})
	step(t, s, at(2))
	got := []string{s.Tasks["j-000001-t0"].Worker, s.Tasks["j-000002-t0"].Worker, string(s.Tasks["j-000003-t0"].State)}
	if want := []string{"a", "b", "pending"}; !slices.Equal(got, want) {
		t.Fatalf("placement %v, want %v", got, want)
	}
}

func TestScheduleFiresOncePerTime(t *testing.T) {
	tests := []struct {
		catchUp string
		off     time.Duration // how long the cluster was away
		want    []string
	}{
		{"latest", 0, []string{"06:01"}},
		{"all", 3*time.Minute + 30*time.Second, []string{"06:01", "06:02", "06:03"}},
		{"latest", 3*time.Minute + 30*time.Second, []string{"06:03"}},
		{"none", 3*time.Minute + 30*time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.catchUp, tt.off), func(t *testing.T) {
			s := New()
			p := Policy{WorkerTimeout: time.Minute, OnTime: 10 * time.Second}
			mustApply(t, s, Command{Op: OpSchedule, At: t0, Schedule: &Schedule{Name: "n", Cron: "* * * * *", CatchUp: tt.catchUp}})
			now := t0.Add(time.Minute + time.Second)
			if tt.off > 0 {
				now = t0.Add(tt.off)
			}
			// Two leaders deciding on the same state fire each time once.
			c1, c2 := s.Decide(now, p), s.Decide(now, p)
			for _, c := range append(c1, c2...) {
				mustApply(t, s, c)
			}
			var got []string
			for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
				got = append(got, s.Jobs[id].ScheduledTime.Format("15:04"))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("fired %v, want %v", got, tt.want)
			}
			for _, c := range s.Decide(now, p) {
				t.Fatalf("still due: %+v", c)
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := New()
	register(t, s, "w1", 2, at(0))
	submit(t, s, "r1", 2, at(0))
	submit(t, s, "r2", 2, at(1))
	mustApply(t, s, Command{Op: OpSchedule, At: t0, Schedule: &Schedule{Name: "n", Cron: "0 * * * *"}})
	mustApply(t, s, Command{Op: OpNode, Node: &Node{ID: "n1", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"}})
	step(t, s, at(1))
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&buf)
	if err != nil {
		t.Fatal(err)
	}
	s.live, r.live, s.hint, r.hint, s.counts, r.counts, s.done, r.done = nil, nil, nil, nil, nil, nil, nil, nil // derived, not replicated
	if !reflect.DeepEqual(s, r) {
		t.Fatalf("restored state differs:\n%s\nvs\n%s", trace(s), trace(r))
	}
	// The restored state still knows the applied requests.
	if id := submit(t, r, "r1", 2, at(5)); id != "j-000001" || len(r.Jobs) != 2 {
		t.Fatalf("request replayed after restore: %s", id)
	}
	// Applying the same log to two states gives the same state.
	a, b := New(), New()
	cmds := []Command{
		{Op: OpRegister, At: at(0), Register: &Worker{ID: "w", Resources: Resources{CPU: 1}}},
		{Op: OpSubmit, At: at(0), Job: &Job{}, Needs: Resources{CPU: 1}},
		{Op: OpAssign, ID: "j-000001-t0", Worker: "w", At: at(1)},
	}
	for _, c := range cmds {
		dec, err := Decode(c.Encode())
		if err != nil {
			t.Fatal(err)
		}
		a.Apply(c)
		b.Apply(dec)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("replicas diverge")
	}
}

func TestRequestsExpire(t *testing.T) {
	s := New()
	id := submit(t, s, "r1", 0, at(0))
	if again := submit(t, s, "r1", 0, at(3600)); again != id {
		t.Fatalf("retry within the TTL applied again: %s", again)
	}
	later := t0.Add(RequestTTL + 2*time.Hour)
	mustApply(t, s, Command{Op: OpRegister, At: later, Register: &Worker{ID: "w"}})
	if _, ok := s.Requests["r1"]; ok {
		t.Fatal("request r1 outlived RequestTTL")
	}
}

// A job of many tasks runs through batched decisions and batched reports:
// each batch is one log entry, each report in it applies once, and a
// worker's death re-queues tasks behind the scan hint.
func TestManyTasksInBatches(t *testing.T) {
	s := New()
	register(t, s, "w1", 2, at(0))
	register(t, s, "w2", 2, at(0))
	id := mustApply(t, s, Command{Op: OpSubmit, At: at(0),
		Job: &Job{Name: "p", Plan: []byte("name: p")}, Needs: Resources{CPU: 1}})
	// The planning task lays the job out into one stage of 10 tasks (and
	// the commit task); at the end, a layout past MaxTasks fails its job.
	if cmds := s.Decide(at(0), pol); len(cmds) != 1 {
		t.Fatalf("decisions %+v, want the planning task's assignment", cmds)
	} else {
		mustApply(t, s, cmds[0])
	}
	plan := s.Tasks[s.Jobs[id].Tasks[0]]
	mustApply(t, s, Command{Op: OpFinish, At: at(0), ID: plan.ID, Worker: plan.Worker, Attempt: plan.Attempt, OK: true,
		Stages: []Stage{{Name: "noop", Tasks: 10}}})
	if n := len(s.Jobs[id].Tasks); n != 12 {
		t.Fatalf("%d tasks, want 12 (plan, 10, commit)", n)
	}
	finishAll := func(now time.Time) int {
		var batch []Command
		for _, w := range []string{"w1", "w2"} {
			for _, tk := range s.TasksOf(w) {
				batch = append(batch, Command{Op: OpFinish, RequestID: fmt.Sprint(tk.ID, "/", tk.Attempt), ID: tk.ID, Worker: w, Attempt: tk.Attempt, OK: true})
			}
		}
		r := s.Apply(Command{Op: OpBatch, At: now, Batch: batch})
		for i, b := range r.Batch {
			if b.Err != nil {
				t.Fatalf("report %d: %v", i, b.Err)
			}
		}
		// The same batch again (a retried request) changes nothing.
		before := s.Jobs[id].Succeeded
		s.Apply(Command{Op: OpBatch, At: now, Batch: batch})
		if s.Jobs[id].Succeeded != before {
			t.Fatal("a retried batch applied twice")
		}
		return len(batch)
	}
	decide := func(now time.Time) int {
		cmds := s.Decide(now, pol)
		r := s.Apply(Command{Op: OpBatch, At: now, Batch: cmds})
		for i, b := range r.Batch {
			if b.Err != nil {
				t.Fatalf("decision %d: %v", i, b.Err)
			}
		}
		return len(cmds)
	}
	if n := decide(at(1)); n != 4 {
		t.Fatalf("assigned %d, want 4 (two workers of 2 cpu)", n)
	}
	if n := finishAll(at(1)); n != 4 {
		t.Fatalf("finished %d", n)
	}
	decide(at(2))
	// w2 dies holding two tasks: they are assigned again, to w1.
	mustApply(t, s, Command{Op: OpHeartbeat, ID: "w1", At: at(2)})
	mustApply(t, s, Command{Op: OpExpire, ID: "w2", At: at(2)})
	if got := s.Counts()[TaskPending]; got != 5 {
		t.Fatalf("pending %d after the death, want 5 (4 and the commit)", got)
	}
	for now := 3; s.Jobs[id].State != JobSucceeded; now++ {
		if now > 20 {
			t.Fatalf("job %s after 20 rounds: %v", s.Jobs[id].State, s.Counts())
		}
		mustApply(t, s, Command{Op: OpHeartbeat, ID: "w1", At: at(now)})
		decide(at(now))
		finishAll(at(now))
	}
	if s.Jobs[id].Succeeded != 12 || len(s.TasksOf("w1")) != 0 {
		t.Fatalf("succeeded %d, live %d", s.Jobs[id].Succeeded, len(s.TasksOf("w1")))
	}
	// The counts kept as tasks change state are a recount's.
	recount := map[TaskState]int{}
	for _, tk := range s.Tasks {
		recount[tk.State]++
	}
	if got := s.Counts(); !maps.Equal(got, recount) {
		t.Fatalf("counts %v, recount %v", got, recount)
	}
	// So are the succeeded tasks per stage that Decide's gate reads.
	perStage := make([]int, len(s.Jobs[id].Stages))
	for _, tid := range s.Jobs[id].Tasks {
		if tk := s.Tasks[tid]; tk.State == TaskSucceeded {
			perStage[tk.Stage]++
		}
	}
	if got := s.done[id]; !slices.Equal(got, perStage) {
		t.Fatalf("succeeded per stage %v, recount %v", got, perStage)
	}
	big := mustApply(t, s, Command{Op: OpSubmit, At: at(30), Job: &Job{}})
	mustApply(t, s, Command{Op: OpHeartbeat, ID: "w1", At: at(30)})
	s.Apply(Command{Op: OpBatch, At: at(30), Batch: s.Decide(at(30), pol)})
	bt := s.Tasks[s.Jobs[big].Tasks[0]]
	mustApply(t, s, Command{Op: OpFinish, At: at(30), ID: bt.ID, Worker: bt.Worker, Attempt: bt.Attempt, OK: true,
		Stages: []Stage{{Name: "noop", Tasks: MaxTasks}}})
	if j := s.Jobs[big]; j.State != JobFailed || !strings.Contains(j.Error, "at most") {
		t.Fatalf("too many tasks: job %s: %s", j.State, j.Error)
	}
}

// A job's stage carries the retry budget; a schedule's jobs get the
// schedule's needs, so they take a worker's resources like any job.
func TestStagesAndScheduleNeeds(t *testing.T) {
	s := New()
	register(t, s, "w1", 4, at(0))
	id := submit(t, s, "r", 2, at(0))
	j := s.Jobs[id]
	if len(j.Stages) != 1 || j.Stages[0].MaxRetries != 2 || j.Stages[0].Tasks != 1 || j.Stages[0].Needs.CPU != 1 {
		t.Fatalf("stages %+v", j.Stages)
	}
	j.Stages[0].MaxRetries = 0 // the stage's budget, not the job's default, bounds retries
	step(t, s, at(1))
	task := s.Tasks[j.Tasks[0]]
	mustApply(t, s, Command{Op: OpFinish, ID: task.ID, Worker: "w1", Attempt: task.Attempt, Error: "boom", At: at(2)})
	if j.State != JobFailed {
		t.Fatalf("job %s after one failure with a stage budget of 0", j.State)
	}

	sid := mustApply(t, s, Command{Op: OpSchedule, At: at(0), Schedule: &Schedule{Name: "n", Cron: "* * * * *",
		Needs: Resources{CPU: 3}}})
	mustApply(t, s, Command{Op: OpHeartbeat, ID: "w1", At: t0.Add(time.Minute)})
	step(t, s, t0.Add(time.Minute)) // fires
	var fired *Job
	for _, j := range s.Jobs {
		if j.Schedule == sid {
			fired = j
		}
	}
	if fired == nil {
		t.Fatal("schedule did not fire")
	}
	step(t, s, t0.Add(time.Minute+time.Second))
	ft := s.Tasks[fired.Tasks[0]]
	if ft.Needs.CPU != 3 || ft.State != TaskAssigned || s.Free("w1").CPU != 1 {
		t.Fatalf("fired task %+v, free %+v", ft, s.Free("w1"))
	}
}

// TestReportsNotRetainedAsRequests runs a job of many tasks whose workers
// report with request ids: the state keeps no per-report entry (so what it
// retains per finished task stays bounded), and a retried report still
// answers the same and applies once.
func TestReportsNotRetainedAsRequests(t *testing.T) {
	s := New()
	register(t, s, "w1", 8, at(0))
	id := submit(t, s, "sub", 0, at(0))
	rep := func(op Op, task string, attempt int, ok bool, now time.Time) Command {
		return Command{Op: op, RequestID: fmt.Sprintf("w1/%s/%d/%s", task, attempt, op), ID: task, Worker: "w1",
			Attempt: attempt, OK: ok, At: now}
	}
	step(t, s, at(1))
	plan := rep(OpFinish, id+"-t0", 1, true, at(1))
	plan.Stages = []Stage{{Name: "tasks", Tasks: 200}}
	mustApply(t, s, rep(OpStart, id+"-t0", 1, false, at(1)))
	mustApply(t, s, plan)
	for i := 0; s.Jobs[id].State != JobSucceeded; i++ {
		if i > 1000 {
			t.Fatalf("job did not finish: %+v", s.Jobs[id])
		}
		step(t, s, at(2))
		for _, tk := range s.TasksOf("w1") {
			mustApply(t, s, rep(OpStart, tk.ID, tk.Attempt, false, at(2)))
			mustApply(t, s, rep(OpFinish, tk.ID, tk.Attempt, true, at(2)))
		}
	}
	if j := s.Jobs[id]; j.Succeeded != 202 {
		t.Fatalf("succeeded %d, want 202", j.Succeeded)
	}
	// Only the submit's request is kept, whatever the number of tasks.
	if len(s.Requests) != 1 {
		t.Fatalf("%d requests retained after 202 tasks, want 1 (the submit)", len(s.Requests))
	}
	// Retries of applied reports (finish, and a start after its finish)
	// answer the task's id and change nothing.
	tid := id + "-t5"
	for _, op := range []Op{OpFinish, OpStart} {
		if r := s.Apply(rep(op, tid, 1, true, at(3))); r.Err != nil || r.Value != tid {
			t.Fatalf("retried %s: %+v", op, r)
		}
	}
	if j := s.Jobs[id]; j.Succeeded != 202 {
		t.Fatalf("a retried finish counted again: %d", j.Succeeded)
	}
	// A report of an attempt that never ran is still stale.
	if r := s.Apply(rep(OpFinish, tid, 2, true, at(3))); !errors.Is(r.Err, ErrStale) {
		t.Fatalf("finish of attempt 2: %+v", r)
	}
	// The record survives a snapshot.
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&b)
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Apply(rep(OpFinish, tid, 1, true, at(3))); res.Err != nil || res.Value != tid {
		t.Fatalf("retried finish after restore: %+v", res)
	}
}
