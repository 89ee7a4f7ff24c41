package deploy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
	"github.com/sluicehq/sluice/infer/serve/deploy"
	"github.com/sluicehq/sluice/infer/serve/router"
	"github.com/sluicehq/sluice/internal/clustertest"
)

// TestController drives a controller reading by reading against a real
// coordinator and an in-process worker whose tasks announce replicas
// (worker.Announce) with the queue the test sets: the router gets the
// serving replica; a queue adds a second replica job, which serves; idle
// readings remove one; and once the worker is gone (its replica no longer
// reported, its job still live) the router keeps the replica it had.
func TestController(t *testing.T) {
	const token = "deploy-token"
	c := clustertest.Start(t, clustertest.Config(t, "n1", token))
	urls := []string{c.URL()}
	cl := api.NewClient(urls, token)

	backend := httptest.NewServer(http.NotFoundHandler()) // the replicas' URL: never called here
	defer backend.Close()
	var mu sync.Mutex
	loads := map[string]func(int, int){} // by replica (job) id
	w, err := worker.New(worker.Config{Coordinators: urls, DataDir: t.TempDir(), Token: token, Heartbeat: 50 * time.Millisecond,
		Resources: state.Resources{CPU: 4, Memory: 1 << 30}, Logger: clustertest.Logger(t),
		Run: func(ctx context.Context, a api.Assignment) (worker.Outcome, error) {
			load, done, err := worker.Announce(ctx, "tiny", backend.URL+"/"+a.Task.Job)
			if err != nil {
				return worker.Outcome{}, err
			}
			defer done()
			mu.Lock()
			loads[a.Task.Job] = load
			mu.Unlock()
			<-ctx.Done()
			return worker.Outcome{}, ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx) }()
	defer func() { stopWorker(); <-wdone }()

	ctx := context.Background()
	spec := deploy.Spec{Name: "tiny", Model: "/models/tiny", MinReplicas: 1, MaxReplicas: 2}
	if _, err := deploy.Create(ctx, cl, spec, t.TempDir(), 1, state.Resources{CPU: 1}); err != nil {
		t.Fatal(err)
	}
	rcfg := router.DefaultConfig()
	rcfg.Dynamic = true
	r, err := router.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := deploy.DefaultControllerConfig()
	cfg.API, cfg.Deployment, cfg.UpQueue, cfg.UpAfter, cfg.DownAfter = cl, "tiny", 1, 2, 3
	ctl, err := deploy.NewController(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	// step reads until ok holds of the stats.
	step := func(what string, ok func(deploy.Stats) bool) deploy.Stats {
		t.Helper()
		var s deploy.Stats
		clustertest.Poll(t, what, func() bool {
			if err := ctl.Step(ctx); err != nil {
				t.Fatal(err)
			}
			s = ctl.Stats()
			return ok(s)
		})
		return s
	}
	setLoad := func(running, waiting int) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range loads {
			f(running, waiting)
		}
	}
	step("one replica serving", func(s deploy.Stats) bool { return s.Serving == 1 })
	if n := len(r.Served()); n != 1 {
		t.Fatalf("the router has %d replicas, want 1", n)
	}
	setLoad(1, 5) // 5 waiting > 1 per replica
	s := step("a second replica serving", func(s deploy.Stats) bool { return s.Jobs == 2 && s.Serving == 2 })
	if s.ScaleUps != 1 || len(r.Served()) != 2 {
		t.Errorf("stats %+v, router over %d replicas; want one scale-up and 2 replicas", s, len(r.Served()))
	}
	setLoad(0, 0)
	s = step("back to one replica", func(s deploy.Stats) bool { return s.Jobs == 1 && s.Serving == 1 })
	if s.ScaleDowns != 1 || s.ScaleUps != 1 || len(r.Served()) != 1 {
		t.Errorf("stats %+v, router over %d replicas; want one scale-down and 1 replica", s, len(r.Served()))
	}

	// The worker stops: its replica goes from the coordinator's answer
	// with the worker, while its job stays (pending again).
	stopWorker()
	<-wdone
	step("no replica reported", func(s deploy.Stats) bool { return s.Serving == 0 })
	if s := ctl.Stats(); s.Jobs != 1 || s.ScaleDowns != 1 || s.ScaleUps != 1 {
		t.Errorf("stats %+v: want the one job, no more scaling", s)
	}
	if n := len(r.Served()); n != 1 {
		t.Errorf("the router has %d replicas while none is reported, want the 1 it had", n)
	}
}
