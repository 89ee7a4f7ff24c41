package state

import (
	"bytes"
	"runtime"
	"testing"
)

// TestReportBatchAssigns: a report batch with Assign fills the slots its
// finishes free in the same entry, the tasks Decide would have assigned,
// and two replicas applying the same entries hold the same state.
func TestReportBatchAssigns(t *testing.T) {
	var log []Command
	s := New()
	do := func(c Command) Result {
		t.Helper()
		log = append(log, c)
		return s.Apply(c)
	}
	do(Command{Op: OpRegister, At: at(0), Register: &Worker{ID: "w1", Addr: "w1:1", Resources: Resources{CPU: 2, Memory: 1 << 30}}})
	do(Command{Op: OpSubmit, At: at(0), Job: &Job{Name: "p", Plan: []byte("name: p")}, Needs: Resources{CPU: 1}})
	do(Command{Op: OpBatch, At: at(0), Batch: s.Decide(at(0), pol)})
	plan := s.Tasks["j-000001-t0"]
	if plan == nil || plan.State != TaskAssigned {
		t.Fatalf("%s", trace(s))
	}
	// The planning task's finish lays out 5 tasks; with Assign the same
	// entry gives two of them to w1 (2 CPUs).
	r := do(Command{Op: OpBatch, At: at(1), Assign: true, Batch: []Command{{Op: OpFinish, ID: plan.ID, Worker: "w1", Attempt: 1, OK: true,
		Layout: []byte(`{}`), Stages: []Stage{{Name: "x", Tasks: 5}}}}})
	if len(r.Batch) != 1 || r.Batch[0].Err != nil {
		t.Fatalf("results %+v", r)
	}
	j := s.Jobs["j-000001"]
	if got := states(s, j); got != "su as as pe pe pe pe" {
		t.Fatalf("after the finish with Assign: %s", got)
	}
	// Without Assign the finish frees a slot and nothing fills it.
	t1 := s.Tasks[j.Tasks[1]]
	do(Command{Op: OpBatch, At: at(2), Batch: []Command{{Op: OpFinish, ID: t1.ID, Worker: "w1", Attempt: 1, OK: true}}})
	if got := states(s, j); got != "su su as pe pe pe pe" {
		t.Fatalf("after a finish without Assign: %s", got)
	}
	// Finishing both live tasks with Assign assigns the next two.
	t2 := s.Tasks[j.Tasks[2]]
	do(Command{Op: OpBatch, At: at(3), Assign: true, Batch: []Command{{Op: OpFinish, ID: t2.ID, Worker: "w1", Attempt: 1, OK: true}}})
	if got := states(s, j); got != "su su su as as pe pe" {
		t.Fatalf("after the second finish with Assign: %s", got)
	}
	// A replica applying the same log holds the same state.
	r2 := New()
	for _, c := range log {
		r2.Apply(Command{}.withJSON(t, c))
	}
	var a, b bytes.Buffer
	if err := s.Snapshot(&a); err != nil {
		t.Fatal(err)
	}
	if err := r2.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatalf("replicas differ:\n%s\n%s", trace(s), trace(r2))
	}
}

// withJSON is c through the log's encoding.
func (Command) withJSON(t *testing.T, c Command) Command {
	d, err := Decode(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDecideSkipsReserved: the tasks of a decision in flight are not
// placed again, and hold their worker's resources until they apply.
func TestDecideSkipsReserved(t *testing.T) {
	s := New()
	register(t, s, "w1", 2, at(0))
	register(t, s, "w2", 1, at(0))
	var ids []string
	for i := range 4 {
		ids = append(ids, submit(t, s, "", 0, at(i)))
	}
	first := s.Decide(at(5), pol)
	if len(first) != 3 {
		t.Fatalf("first decision %+v", first)
	}
	reserved := map[string]string{}
	for _, c := range first[:2] {
		reserved[c.ID] = c.Worker
	}
	p := pol
	p.Reserved = reserved
	second := s.Decide(at(5), p)
	// Two tasks reserved (taking two of the three CPUs): one more fits.
	if len(second) != 1 || reserved[second[0].ID] != "" {
		t.Fatalf("second decision %+v (reserved %v)", second, reserved)
	}
	if second[0].ID != ids[2]+"-t0" {
		t.Fatalf("placed %s, want the oldest unreserved %s", second[0].ID, ids[2]+"-t0")
	}
}

// BenchmarkQueuedTaskMemory is the leader's memory per queued task: the
// heap a replica's state holds for a job laid out as -test.benchtime
// tasks, all pending (the three coordinators each hold one such state).
//
//	go test ./executor/cluster/state -run '^$' -bench QueuedTaskMemory -benchtime 100000x
func BenchmarkQueuedTaskMemory(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := New()
	s.Apply(Command{Op: OpRegister, At: at(0), Register: &Worker{ID: "w1", Resources: Resources{CPU: 1}}})
	s.Apply(Command{Op: OpSubmit, At: at(0), Job: &Job{Name: "p", Plan: []byte("name: p")}, Needs: Resources{CPU: 1}})
	s.Apply(Command{Op: OpBatch, At: at(0), Batch: s.Decide(at(0), pol)})
	r := s.Apply(Command{Op: OpFinish, At: at(1), ID: "j-000001-t0", Worker: "w1", Attempt: 1, OK: true, Layout: []byte(`{}`),
		Stages: []Stage{{Name: "x", Tasks: b.N}}})
	if j := s.Jobs["j-000001"]; r.Err != nil || len(j.Tasks) != b.N+2 {
		b.Fatalf("laying out %d tasks: %v, %s", b.N, r.Err, s.Tasks["j-000001-t0"].Error)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "B/task")
	runtime.KeepAlive(s)
}
