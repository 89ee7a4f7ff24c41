package coordinator

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Reliability with a corrupted follower store: a follower whose raft.db is
// garbled while it is down refuses to start (never empty over it); the
// other two keep the cluster running jobs; the documented recovery
// (remove the old id, join with a new one) brings back three voters, and
// every node then holds the same jobs.
func TestCorruptedFollowerStore(t *testing.T) {
	if testing.Short() {
		t.Skip("three coordinators, a restart and a rejoin")
	}
	if *logStoreKind != "bolt" {
		t.Skip("the bolt store's file is damaged here")
	}
	h := start(t, 3)
	g := newGate()
	close(g.release)
	startWorker(t, h.urls(), g.run)
	cl := h.client()
	h.waitJob(cl, submitNoop(t, cl, "r1"), state.JobSucceeded)

	l := h.leader()
	fi := slices.IndexFunc(h.nodes, func(c *Coordinator) bool { return c != l })
	cfg := h.cfgs[fi]
	h.nodes[fi].Shutdown()
	h.nodes[fi] = nil
	file := filepath.Join(cfg.DataDir, "raft.db")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		if i%5 == 0 {
			data[i] ^= 0xa5
		}
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Start(context.Background(), cfg); !errors.Is(err, ErrDamagedStore) {
		if err == nil {
			c.Shutdown()
		}
		t.Fatalf("restart over a garbled raft.db: %v, want ErrDamagedStore", err)
	}

	// Two of three: the cluster goes on.
	cl = h.client()
	h.waitJob(cl, submitNoop(t, cl, "r2"), state.JobSucceeded)

	// The recovery the README gives: remove the old id, join a new one.
	if err := api.NewClient(h.urls(), secret).Do(context.Background(), http.MethodPost, "/v1/cluster/remove", api.JoinRequest{ID: cfg.NodeID}, nil); err != nil {
		t.Fatal(err)
	}
	nc := newConfig(t, cfg.NodeID+"b")
	nc.Join = h.leader().URL()
	c, err := Start(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes[fi], h.cfgs[fi] = c, nc
	h.waitFor("three voters again", func() bool { return h.leader().Status().Voters() == 3 })
	h.waitJob(h.client(), submitNoop(t, h.client(), "r3"), state.JobSucceeded)

	// No divergence: every node answers the same jobs, in the same states.
	var want []string
	for i, c := range h.nodes {
		var got []string
		h.waitFor("the jobs on "+c.cfg.NodeID, func() bool {
			var jobs []state.Job
			if err := api.NewClient([]string{c.URL()}, token).Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &jobs); err != nil {
				return false
			}
			got = got[:0]
			for _, j := range jobs {
				got = append(got, j.ID+"="+string(j.State))
			}
			slices.Sort(got)
			return len(got) == 3 && (i == 0 || slices.Equal(got, want))
		})
		if i == 0 {
			want = slices.Clone(got)
		}
	}
}
