package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// TestOldJSONLogOnDisk: a Raft log holding entries of before the binary
// format (JSON, state.Command.EncodeJSON), on disk with both stores, is
// read back and applied by a restarted coordinator, beside binary ones.
func TestOldJSONLogOnDisk(t *testing.T) {
	for _, kind := range []string{"bolt", "wal"} {
		t.Run(kind, func(t *testing.T) { oldJSONLogOnDisk(t, kind) })
	}
}

func oldJSONLogOnDisk(t *testing.T, kind string) {
	// A worker timeout longer than the test: the old worker is not expired.
	h := startWith(t, 1, func(c *Config) { c.LogStore, c.WorkerTimeout = kind, time.Hour })
	l := h.leader()
	at := time.Now().UTC().Truncate(time.Second)
	entries := [][]byte{
		state.Command{Op: state.OpRegister, At: at, Register: &state.Worker{ID: "w-old", Addr: "w:1",
			Resources: state.Resources{CPU: 2, Memory: 1 << 30}}}.EncodeJSON(),
		state.Command{Op: state.OpSubmit, RequestID: "old", At: at, Job: &state.Job{Name: "old", Plan: []byte("name: old\n")},
			Needs: state.Resources{CPU: 1}}.EncodeJSON(),
		state.Command{Op: state.OpBatch, At: at.Add(time.Second), Batch: []state.Command{
			{Op: state.OpAssign, ID: "j-000001-t0", Worker: "w-old"}}}.EncodeJSON(),
		state.Command{Op: state.OpBatch, At: at.Add(2 * time.Second), Batch: []state.Command{
			{Op: state.OpStart, RequestID: "s", ID: "j-000001-t0", Worker: "w-old", Attempt: 1}}}.Encode(), // binary
	}
	for i, e := range entries {
		f := l.raft.Apply(e, 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		if res := f.Response().(state.Result); res.Err != nil || len(res.Batch) > 0 && res.Batch[0].Err != nil {
			t.Fatalf("entry %d: %+v", i, res)
		}
	}
	cfg := h.cfgs[0]
	h.nodes[0].Shutdown()
	h.nodes[0] = nil
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes[0] = c
	h.leader()
	var task *state.Task
	h.waitFor("the log applied", func() bool {
		c.Read(func(s *state.State) {
			if tk := s.Tasks["j-000001-t0"]; tk != nil && tk.State == state.TaskRunning {
				cp := *tk
				task = &cp
			}
		})
		return task != nil
	})
	if task.Worker != "w-old" || task.Attempt != 1 || !task.Assigned.Equal(at.Add(time.Second)) {
		t.Fatalf("task after restart: %+v", task)
	}
}
