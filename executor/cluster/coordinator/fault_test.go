package coordinator

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/testcert"
)

func TestPartitionedMinority(t *testing.T) {
	h := start(t, 3)
	old := h.leader()
	old.Isolate()
	// The majority elects a new leader and keeps taking writes.
	var nl *Coordinator
	h.waitFor("a leader in the majority", func() bool {
		for _, c := range h.nodes {
			if c != old && c.IsLeader() {
				nl = c
				return true
			}
		}
		return false
	})
	var majority []string
	for _, c := range h.nodes {
		if c != old {
			majority = append(majority, c.URL())
		}
	}
	id := submitNoop(t, api.NewClient(majority, token), "during-partition")
	// The isolated node cannot commit: it steps down, and writes sent to it
	// fail rather than apply.
	h.waitFor("the old leader steps down", func() bool { return !old.IsLeader() })
	minority := api.NewClient([]string{old.URL()}, token)
	minority.Retry = 0
	err := minority.Do(context.Background(), http.MethodPost, "/v1/jobs",
		api.SubmitRequest{RequestID: "to-minority", Plan: "name: m\nread: {parquet: a/}\nwrite: {parquet: b/}\n"}, nil)
	if err == nil {
		t.Fatal("the isolated minority took a write")
	}
	old.Heal()
	// Healed, it follows the new leader and catches up; the refused write
	// is nowhere.
	h.waitFor("the old leader catches up", func() bool {
		var has, extra bool
		old.Read(func(s *state.State) {
			has = s.Jobs[id] != nil
			_, extra = s.Requests["to-minority"]
		})
		return has && !extra && old.Status().Leader == nl.cfg.NodeID
	})
}

func TestCancelStopsRunningTask(t *testing.T) {
	h := start(t, 1)
	g := newGate()
	stopped := make(chan struct{})
	startWorker(t, h.urls(), func(ctx context.Context, a api.Assignment) (int64, error) {
		n, err := g.run(ctx, a)
		close(stopped)
		return n, err
	})
	cl := h.client()
	id := submitNoop(t, cl, "r")
	h.waitFor("running", func() bool { return h.job(cl, id).Tasks[0].State == state.TaskRunning })
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs/"+id+"/cancel", nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker kept running a cancelled task")
	}
	if st := h.job(cl, id); st.Job.State != state.JobCancelled {
		t.Fatalf("job %s", st.Job.State)
	}
}

func TestMetricsAndRemove(t *testing.T) {
	h := start(t, 3)
	cl := h.client()
	submitNoop(t, cl, "r")
	req, _ := http.NewRequest(http.MethodGet, h.leader().URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sluice_jobs{state="pending"} 1`, `sluice_tasks{state="pending"} 1`, "sluice_leader 1", "sluice_leader_changes_total 1", "sluice_raft_commit_seconds_count"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// Remove a follower while running; two voters remain and still commit.
	var gone *Coordinator
	for _, c := range h.nodes {
		if !c.IsLeader() {
			gone = c
		}
	}
	if err := api.NewClient(h.urls(), secret).Do(context.Background(), http.MethodPost, "/v1/cluster/remove", api.JoinRequest{ID: gone.cfg.NodeID}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("two voters", func() bool { return len(h.leader().Status().Nodes) == 2 })
	var rest []string
	for i, c := range h.nodes {
		if c == gone {
			c.Shutdown()
			h.nodes[i] = nil
		} else {
			rest = append(rest, c.URL())
		}
	}
	submitNoop(t, api.NewClient(rest, token), "after-remove")
}

func TestTLS(t *testing.T) {
	cert, pool := testcert.SelfSigned(t)
	server := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	client := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	h := startWith(t, 2, func(c *Config) { c.TLS, c.ClientTLS = server, client })
	if !strings.HasPrefix(h.nodes[0].URL(), "https://") {
		t.Fatal(h.nodes[0].URL())
	}
	cl := api.NewClient(h.urls(), token)
	cl.SetTLS(client)
	id := submitNoop(t, cl, "r")
	h.waitFor("replicated over TLS", func() bool {
		ok := false
		h.nodes[1].Read(func(s *state.State) { ok = s.Jobs[id] != nil })
		return ok
	})
	// A write sent to the follower is forwarded to the leader over TLS.
	var follower *Coordinator
	for _, n := range h.nodes {
		if n != h.leader() {
			follower = n
		}
	}
	fcl := api.NewClient([]string{follower.URL()}, token)
	fcl.SetTLS(client)
	if id2 := submitNoop(t, fcl, "via-follower"); id2 == "" || id2 == id {
		t.Fatalf("submit through the follower: %q", id2)
	}
	// The Raft port refuses a peer without a certificate of the cluster's CA.
	conn, err := tls.Dial("tcp", h.cfgs[0].RaftAddr, client)
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte{0}) // TLS 1.3: the server judges the certificate after the client's handshake ends
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Raft port without a client certificate: %v", err)
	}
	// Plain HTTP is refused.
	if err := api.NewClient([]string{strings.Replace(h.nodes[0].URL(), "https", "http", 1)}, token).Do(
		context.Background(), http.MethodGet, "/v1/jobs", nil, nil); err == nil {
		t.Fatal("plain HTTP answered")
	}
}
