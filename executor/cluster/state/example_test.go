package state_test

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// The leader's loop in miniature: apply commands, let Decide place the
// work, and apply its decisions.
func Example() {
	s := state.New()
	at := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	s.Apply(state.Command{Op: state.OpRegister, At: at,
		Register: &state.Worker{ID: "w1", Resources: state.Resources{CPU: 4, Memory: 8 << 30}}})
	job := s.Apply(state.Command{Op: state.OpSubmit, RequestID: "req-1", At: at,
		Job: &state.Job{Name: "nightly", MaxRetries: 2}, Needs: state.Resources{CPU: 1}}).Value
	for _, c := range s.Decide(at, state.Policy{WorkerTimeout: 5 * time.Second}) {
		fmt.Println(c.Op, c.ID, "->", c.Worker, s.Apply(c).Err)
	}
	task := s.Jobs[job].Tasks[0]
	s.Apply(state.Command{Op: state.OpFinish, ID: task, Worker: "w1", Attempt: 1, OK: true, At: at})
	fmt.Println(job, s.Jobs[job].State)
	// Output:
	// assign j-000001-t0 -> w1 <nil>
	// j-000001 succeeded
}
