package state

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestData runs the scripts under testdata: each command applies one
// command (or the leader's decisions, "step") and prints what happened;
// "state" prints every job, task and worker. Regenerate the expected
// output with -rewrite.
func TestData(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := New()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				if a, ok := d.Arg(key); ok && len(a.Vals) > 0 {
					return a.Vals[0]
				}
				return def
			}
			num := func(key string) int {
				var n int
				fmt.Sscan(arg(key, "0"), &n)
				return n
			}
			now := t0.Add(time.Duration(num("at")) * time.Second)
			res := func(r Result) string {
				if r.Err != nil {
					return "error: " + r.Err.Error() + "\n"
				}
				return "ok " + r.Value + "\n"
			}
			switch d.Cmd {
			case "register":
				return res(s.Apply(Command{Op: OpRegister, At: now, Register: &Worker{ID: arg("id", ""), Addr: arg("addr", ""),
					Resources: Resources{CPU: num("cpu"), GPU: num("gpu"), Memory: int64(num("mem"))}}}))
			case "submit":
				return res(s.Apply(Command{Op: OpSubmit, At: now, RequestID: arg("req", ""), Locality: arg("locality", ""),
					Job:   &Job{Name: arg("name", "p"), MaxRetries: num("retries")},
					Needs: Resources{CPU: num("cpu"), GPU: num("gpu"), Memory: int64(num("mem"))}}))
			case "heartbeat", "expire", "cancel":
				return res(s.Apply(Command{Op: Op(d.Cmd), At: now, ID: arg("id", "")}))
			case "start", "finish":
				return res(s.Apply(Command{Op: Op(d.Cmd), At: now, ID: arg("task", ""), Worker: arg("worker", ""),
					Attempt: num("attempt"), OK: d.HasArg("ok"), Error: arg("error", ""), Rows: int64(num("rows"))}))
			case "step":
				p := Policy{WorkerTimeout: time.Duration(num("timeout")) * time.Second, OnTime: time.Minute}
				if p.WorkerTimeout == 0 {
					p.WorkerTimeout = 5 * time.Second
				}
				var b strings.Builder
				for _, c := range s.Decide(now, p) {
					fmt.Fprintf(&b, "%s %s", c.Op, c.ID)
					if c.Worker != "" {
						fmt.Fprintf(&b, " -> %s", c.Worker)
					}
					fmt.Fprintf(&b, ": %s", res(s.Apply(c)))
				}
				if b.Len() == 0 {
					return "nothing to do\n"
				}
				return b.String()
			case "state":
				return trace(s)
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}
