package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
	"github.com/sluicehq/sluice/infer/serve/deploy"
	"github.com/sluicehq/sluice/internal/clustertest"
)

type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeGPUs: replicas that need a GPU each, on a worker of two, serve
// on different GPUs (CUDA_VISIBLE_DEVICES of their server process); the
// third waits for a free one and gets the GPU of the replica cancelled.
// The servers are a shell script that prints its CUDA_VISIBLE_DEVICES and
// the line `sluice serve` prints when it listens.
func TestServeGPUs(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "")
	out := &lines{}
	old := deploy.Stderr
	deploy.Stderr = out
	t.Cleanup(func() { deploy.Stderr = old })

	const token = "gpu-token"
	c := clustertest.Start(t, clustertest.Config(t, "n1", token))
	urls := []string{c.URL()}
	cl := api.NewClient(urls, token)
	spec := deploy.Spec{Name: "tiny", Model: "/models/tiny", MinReplicas: 1, MaxReplicas: 3}
	w, err := worker.New(worker.Config{Coordinators: urls, DataDir: t.TempDir(), Token: token, Heartbeat: 50 * time.Millisecond,
		Resources: state.Resources{CPU: 8, GPU: 2, Memory: 1 << 30}, Logger: clustertest.Logger(t),
		Run: func(ctx context.Context, a api.Assignment) (worker.Outcome, error) {
			script := fmt.Sprintf(`echo "job=%s dev=$CUDA_VISIBLE_DEVICES"; echo "sluice serve: m on http://127.0.0.1:1 (model)"; exec sleep 600`, a.Task.Job)
			_, err := deploy.Serve(ctx, spec, []string{"/bin/sh", "-c", script, "sh"})
			return worker.Outcome{}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-wdone })

	ids, err := deploy.Create(context.Background(), cl, spec, t.TempDir(), 3, state.Resources{CPU: 1, GPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`job=(\S+) dev=(\S*)`)
	devs := func() map[string]string {
		m := map[string]string{}
		for _, s := range re.FindAllStringSubmatch(out.String(), -1) {
			m[s[1]] = s[2]
		}
		return m
	}
	clustertest.Poll(t, "two replicas started", func() bool { return len(devs()) == 2 })
	first := devs()
	seen := map[string]bool{}
	for _, d := range first {
		seen[d] = true
	}
	if !seen["0"] || !seen["1"] {
		t.Fatalf("the two replicas serve on %v, want GPUs 0 and 1", first)
	}
	var victim string
	for _, id := range ids {
		if first[id] != "" {
			victim = id
			break
		}
	}
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs/"+victim+"/cancel", nil, nil); err != nil {
		t.Fatal(err)
	}
	clustertest.Poll(t, "the third replica started", func() bool { return len(devs()) == 3 })
	for id, d := range devs() {
		if first[id] == "" && d != first[victim] {
			t.Errorf("the third replica %s serves on GPU %q, want %q, freed by %s", id, d, first[victim], victim)
		}
	}
}
