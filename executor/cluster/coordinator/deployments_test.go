package coordinator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
)

// TestDeploymentsFromHeartbeats: a task that announces a serving replica
// (worker.Announce) is listed, with its load and its worker, by GET
// /v1/deployments/{name} on every coordinator (followers forward to the
// leader, which alone hears the heartbeats) and on a new leader after the
// old one shuts down; cancelling its job takes it out; a stopped worker's
// replicas go with the worker.
func TestDeploymentsFromHeartbeats(t *testing.T) {
	h := start(t, 3)
	announced := make(chan struct{}, 2)
	run := func(ctx context.Context, a api.Assignment) (int64, error) {
		load, done, err := worker.Announce(ctx, "tiny", "http://127.0.0.1:1/"+a.Task.Job)
		if err != nil {
			return 0, err
		}
		defer done()
		load(2, 3)
		announced <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	w, stop := startWorker(t, h.urls(), run)
	cl := h.client()
	id := submitNoop(t, cl, "r1")
	<-announced
	get := func(url string) (api.Deployment, error) {
		var d api.Deployment
		err := api.NewClient([]string{url}, token).Do(context.Background(), http.MethodGet, "/v1/deployments/tiny", nil, &d)
		return d, err
	}
	for _, c := range h.nodes {
		if c == nil {
			continue
		}
		var d api.Deployment
		h.waitFor("the replica on "+c.cfg.NodeID, func() bool {
			var err error
			d, err = get(c.URL())
			return err == nil && len(d.Replicas) == 1
		})
		if len(d.Jobs) != 0 {
			t.Errorf("%s lists jobs %+v: the noop job is no replica job", c.cfg.NodeID, d.Jobs)
		}
		r := d.Replicas[0]
		if r.ID != id || r.URL != "http://127.0.0.1:1/"+id || r.Running != 2 || r.Waiting != 3 || r.Worker != w.ID() || r.Deployment != "tiny" {
			t.Errorf("%s answered %+v, want replica %s of worker %s, running 2, waiting 3", c.cfg.NodeID, r, id, w.ID())
		}
	}
	// The leader's /metrics has the deployment's series.
	req, _ := http.NewRequest(http.MethodGet, h.leader().URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`sluice_deployment_replicas{deployment="tiny"} 1`, `sluice_deployment_requests_running{deployment="tiny"} 2`, `sluice_deployment_requests_waiting{deployment="tiny"} 3`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("the leader's metrics lack %s:\n%s", want, body)
			}
		}
	}
	var all []api.Deployment
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/deployments", nil, &all); err != nil || len(all) != 1 || all[0].Name != "tiny" {
		t.Errorf("GET /v1/deployments: %+v %v", all, err)
	}
	// The leader goes: the new one hears the replica with the worker's
	// next heartbeats (it was never in the log).
	old := h.leader()
	for i, c := range h.nodes {
		if c == old {
			c.Shutdown()
			h.nodes[i] = nil
		}
	}
	nl := h.leader()
	h.waitFor("the replica on the new leader "+nl.cfg.NodeID, func() bool {
		d, err := get(nl.URL())
		return err == nil && len(d.Replicas) == 1 && d.Replicas[0].ID == id && d.Replicas[0].Waiting == 3
	})
	cl = h.client()
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs/"+id+"/cancel", nil, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the cancelled replica out", func() bool {
		_, err := get(h.leader().URL())
		return errors.Is(err, api.ErrNotFound)
	})

	// A second replica, then its worker stops: the replica goes once the
	// worker is dead.
	id2 := submitNoop(t, cl, "r2")
	<-announced
	h.waitFor("the second replica", func() bool {
		d, err := get(h.leader().URL())
		return err == nil && len(d.Replicas) == 1 && d.Replicas[0].ID == id2
	})
	stop()
	h.waitFor("the stopped worker's replica out", func() bool {
		_, err := get(h.leader().URL())
		return errors.Is(err, api.ErrNotFound)
	})

	// A replica job no worker runs yet: the deployment is its job alone.
	var r api.IDResponse
	plan := "name: serve-queued\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: "q", Plan: plan}, &r); err != nil {
		t.Fatal(err)
	}
	var d api.Deployment
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/deployments/queued", nil, &d); err != nil ||
		len(d.Replicas) != 0 || len(d.Jobs) != 1 || d.Jobs[0].ID != r.ID || d.Jobs[0].State != state.JobPending {
		t.Errorf("deployment queued: %+v %v, want its one pending job %s and no replica", d, err, r.ID)
	}
}

// TestMetricsScrapeParses: GET /metrics parses as Prometheus text (the
// client library's parser), every family with its HELP and TYPE, and the
// values are the cluster's.
func TestMetricsScrapeParses(t *testing.T) {
	h := start(t, 1)
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
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, body)
	}
	want := map[string]dto.MetricType{
		"sluice_leader": dto.MetricType_GAUGE, "sluice_leader_changes_total": dto.MetricType_COUNTER,
		"sluice_raft_commit_seconds": dto.MetricType_SUMMARY, "sluice_scheduling_latency_seconds": dto.MetricType_SUMMARY,
		"sluice_jobs": dto.MetricType_GAUGE, "sluice_tasks": dto.MetricType_GAUGE, "sluice_workers_alive": dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		f := fams[name]
		switch {
		case f == nil:
			t.Errorf("no %s in the scrape", name)
		case f.GetType() != typ:
			t.Errorf("%s is a %s, want %s", name, f.GetType(), typ)
		case f.GetHelp() == "":
			t.Errorf("%s has no HELP", name)
		}
	}
	if len(fams) != len(want) {
		t.Errorf("%d families, want %d: %s", len(fams), len(want), body)
	}
	value := func(name, st string) float64 {
		for _, m := range fams[name].GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == st {
				return m.GetGauge().GetValue()
			}
		}
		t.Errorf("no %s{state=%q}", name, st)
		return -1
	}
	if v := value("sluice_jobs", string(state.JobPending)); v != 1 {
		t.Errorf("sluice_jobs{state=pending} %g, want 1", v)
	}
	if v := value("sluice_tasks", string(state.TaskPending)); v != 1 {
		t.Errorf("sluice_tasks{state=pending} %g, want 1", v)
	}
	if v := fams["sluice_leader"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("sluice_leader %g", v)
	}
	if n := fams["sluice_raft_commit_seconds"].GetMetric()[0].GetSummary().GetSampleCount(); n == 0 {
		t.Errorf("no commit timed")
	}
}

// TestRouteDeployment: any coordinator routes /v1/deployments/{name}/v1/...
// to a replica of the deployment as /v1/... (a follower through the
// leader), with the body and the answer passed through and the caller's
// cluster token not passed on; a deployment with no replica answers 503,
// and a call without the token 401.
func TestRouteDeployment(t *testing.T) {
	h := start(t, 3)
	type seen struct{ path, auth, body string }
	calls := make(chan seen, 4)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- seen{r.URL.Path, r.Header.Get("Authorization"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"answer": 42}`)
	}))
	defer replica.Close()
	startWorker(t, h.urls(), func(ctx context.Context, a api.Assignment) (int64, error) {
		_, done, err := worker.Announce(ctx, "tiny", replica.URL)
		if err != nil {
			return 0, err
		}
		defer done()
		<-ctx.Done()
		return 0, ctx.Err()
	})
	submitNoop(t, h.client(), "r")
	var follower *Coordinator
	leader := h.leader()
	for _, c := range h.nodes {
		if c != leader {
			follower = c
		}
	}
	call := func(url, name, tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/deployments/"+name+"/v1/completions", strings.NewReader(`{"prompt": "hi"}`))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	h.waitFor("the replica reported", func() bool {
		var d api.Deployment
		err := api.NewClient([]string{leader.URL()}, token).Do(context.Background(), http.MethodGet, "/v1/deployments/tiny", nil, &d)
		return err == nil && len(d.Replicas) == 1
	})
	if code, b := call(follower.URL(), "tiny", token); code != 200 || b != `{"answer": 42}` {
		t.Errorf("through follower %s: %d %s", follower.cfg.NodeID, code, b)
	}
	if got := <-calls; got.path != "/v1/completions" || got.auth != "" || got.body != `{"prompt": "hi"}` {
		t.Errorf("the replica got %+v, want /v1/completions, no Authorization, the body", got)
	}
	if code, b := call(leader.URL(), "other", token); code != http.StatusServiceUnavailable {
		t.Errorf("a deployment with no replica: %d %s, want 503", code, b)
	}
	if code, _ := call(leader.URL(), "tiny", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	if len(calls) != 0 {
		t.Errorf("the replica got %d more calls", len(calls))
	}
}
