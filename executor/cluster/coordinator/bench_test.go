package coordinator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
)

// BenchmarkNoopTasks runs b.N no-op jobs (one task each) on three
// coordinators and four workers over loopback, with fsync'd Raft logs:
// the control plane's end-to-end throughput.
func BenchmarkNoopTasks(b *testing.B) {
	b.StopTimer()
	h := startWith(b, 3, func(c *Config) { c.Logger, c.RaftLog = quiet(), io.Discard })
	urls := h.urls()
	cl := api.NewClient(urls, token)
	noop := func(ctx context.Context, a api.Assignment) (int64, error) { return 0, nil }
	for i := range 4 {
		w, err := worker.New(worker.Config{Coordinators: urls, DataDir: b.TempDir(), Addr: fmt.Sprint("w", i),
			Resources: state.Resources{CPU: 16, Memory: 1 << 30}, Token: token, Heartbeat: 20 * time.Millisecond, Run: noop,
			Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		b.Cleanup(func() { cancel(); <-done })
	}
	plan := "name: noop\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
	b.StartTimer()
	start := time.Now()
	for i := range b.N {
		if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: fmt.Sprint("b", i), Plan: plan, Needs: state.Resources{CPU: 1}}, nil); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var st api.ClusterStatus
		if err := cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st); err == nil && st.Tasks["succeeded"] == b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
