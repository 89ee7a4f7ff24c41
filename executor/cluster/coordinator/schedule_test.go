package coordinator

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// clock is a settable clock shared by the nodes of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// startWith is start with each coordinator's Config changed by edit first.
func startWith(t testing.TB, n int, edit func(*Config)) *harness {
	h := &harness{t: t}
	for i := range n {
		cfg := newConfig(t, fmt.Sprintf("n%d", i+1))
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = h.nodes[0].URL()
		}
		edit(&cfg)
		h.cfgs = append(h.cfgs, cfg)
		c, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		h.nodes = append(h.nodes, c)
		if i == 0 {
			h.leader()
		}
	}
	t.Cleanup(h.shutdown)
	h.waitFor("all voters", func() bool { return h.leader().Status().Voters() == n })
	return h
}

// scheduledTimes are the scheduled times of the jobs the schedule made,
// as the leader sees them.
func scheduledTimes(h *harness) []string {
	var out []string
	h.leader().Read(func(s *state.State) {
		for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
			out = append(out, s.Jobs[id].ScheduledTime.UTC().Format("15:04"))
		}
	})
	return out
}

func TestScheduleFiresOnceAcrossLeaderChange(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 25, 5, 59, 30, 0, time.UTC)}
	h := startWith(t, 3, func(c *Config) { c.Now = clk.Now; c.WorkerTimeout = 24 * time.Hour })
	g := newGate()
	close(g.release)
	startWorker(t, h.urls(), g.run)
	cl := h.client()
	plan := "name: hourly\nschedule: {cron: \"0 * * * *\", catch_up: all}\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
	var r api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{Plan: plan}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != "schedule" {
		t.Fatalf("submit of a scheduled plan: %+v", r)
	}
	want := func(times ...string) {
		t.Helper()
		h.waitFor(fmt.Sprint("jobs at ", times), func() bool { return slices.Equal(scheduledTimes(h), times) })
	}
	clk.Set(time.Date(2026, 11, 25, 6, 0, 1, 0, time.UTC))
	want("06:00")
	// A new leader does not fire 06:00 again.
	for i, c := range h.nodes {
		if c.IsLeader() {
			c.Shutdown()
			h.nodes[i] = nil
		}
	}
	h.leader()
	clk.Set(time.Date(2026, 11, 25, 7, 0, 1, 0, time.UTC))
	want("06:00", "07:00")
	// Down for three hours: catch_up all runs each missed time once.
	clk.Set(time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC))
	want("06:00", "07:00", "08:00", "09:00", "10:00")
	cl = h.client()
	h.waitFor("every scheduled job done", func() bool {
		var jobs []state.Job
		if cl.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &jobs) != nil {
			return false
		}
		for _, j := range jobs {
			if j.State != state.JobSucceeded {
				return false
			}
		}
		return len(jobs) == 5
	})
}

func TestSnapshotInstallAndRestore(t *testing.T) {
	h := startWith(t, 1, func(c *Config) { c.TrailingLogs = 2; c.SnapshotThreshold = 1 << 20 })
	cl := h.client()
	var ids []string
	for i := range 10 {
		ids = append(ids, submitNoop(t, cl, fmt.Sprint("r", i)))
	}
	if err := h.nodes[0].Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	// A node that joins now gets the state from the snapshot, the log
	// before it being gone.
	cfg := newConfig(t, "n2")
	cfg.Join = h.nodes[0].URL()
	c2, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes, h.cfgs = append(h.nodes, c2), append(h.cfgs, cfg)
	h.waitFor("n2 caught up", func() bool {
		n := 0
		c2.Read(func(s *state.State) { n = len(s.Jobs) })
		return n == 10
	})
	// Restarted, n2 restores its snapshot and replays the rest of its log.
	c2.Shutdown()
	cfg.Join = ""
	c2, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes[1] = c2
	h.waitFor("n2 restored", func() bool {
		n := 0
		c2.Read(func(s *state.State) { n = len(s.Jobs) })
		return n == 10
	})
	if again := submitNoop(t, h.client(), "r3"); again != ids[3] {
		t.Fatalf("request r3 applied again after snapshot install: %s vs %s", again, ids[3])
	}
}
