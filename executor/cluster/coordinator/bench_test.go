package coordinator

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
)

// BenchmarkNoopTasks runs b.N no-op jobs (one planning task each, laying
// out nothing) on three
// coordinators and four workers over loopback, with fsync'd Raft logs:
// the control plane's end-to-end throughput.
func BenchmarkNoopTasks(b *testing.B) {
	b.StopTimer()
	h := startWith(b, 3, func(c *Config) { c.Logger, c.RaftLog = quiet(), io.Discard })
	urls := h.urls()
	cl := api.NewClient(urls, token)
	noop := func(ctx context.Context, a api.Assignment) (worker.Outcome, error) { return worker.Outcome{}, nil }
	for i := range 4 {
		_, stop := benchWorker(b, urls, i, 16, noop)
		b.Cleanup(stop)
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

var (
	noopTasks   = flag.Int("noop.tasks", 100_000, "tasks in BenchmarkNoopJob's job")
	noopWorkers = flag.Int("noop.workers", 4, "in-process workers of BenchmarkNoopJob (16 slots each)")
	noopHeap    = flag.String("noop.heap", "", "BenchmarkNoopJob writes heap profiles (after a GC) to this path + .half and .end: at half the job's tasks succeeded, and at its end")
	noopProfile = flag.String("noop.profile", "", "BenchmarkNoopJob writes a CPU profile of each -noop.every of the run to this path + .cpu.N, a heap profile at each window's end (+ .heap.N), and a progress line to stderr: for runs that may not finish")
	noopEvery   = flag.Duration("noop.every", time.Minute, "the window of -noop.profile")
	noopWarn    = flag.Bool("noop.warn", false, "BenchmarkNoopJob logs the coordinators' warnings (workers found dead, ...) to stderr")
)

// benchLogger is the coordinators' logger of BenchmarkNoopJob.
func benchLogger() *slog.Logger {
	if *noopWarn {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return quiet()
}

// profileWindows writes -noop.profile's windows until stop is closed;
// progress reads the succeeded tasks so far.
func profileWindows(b *testing.B, stop <-chan struct{}, progress func() int) {
	start := time.Now()
	for n := 0; ; n++ {
		f, err := os.Create(fmt.Sprintf("%s.cpu.%d", *noopProfile, n))
		if err != nil {
			b.Error(err)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Error(err)
			f.Close()
			return
		}
		var stopped bool
		select {
		case <-stop:
			stopped = true
		case <-time.After(*noopEvery):
		}
		pprof.StopCPUProfile()
		f.Close()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "noop.profile %d: %.0f s, %d tasks succeeded, heap in use %d MB, sys %d MB, GCs %d\n",
			n, time.Since(start).Seconds(), progress(), ms.HeapInuse>>20, ms.Sys>>20, ms.NumGC)
		if h, err := os.Create(fmt.Sprintf("%s.heap.%d", *noopProfile, n)); err == nil {
			pprof.Lookup("heap").WriteTo(h, 0)
			h.Close()
		}
		if stopped {
			return
		}
	}
}

// writeHeap writes a heap profile to path after a GC, for -noop.heap.
func writeHeap(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNoopJob is cluster/noop-100k (../shared/WORKLOADS.md): one job of
// -noop.tasks no-op tasks (default 100,000; its planning task lays them out
// as one stage, then a no-op commit task runs) on three coordinators and four
// workers over loopback with fsync'd Raft logs, from submit to the job's
// success, b.N times:
//
//	go test ./executor/cluster/coordinator -run '^$' -bench NoopJob -benchtime 1x
func BenchmarkNoopJob(b *testing.B) {
	b.StopTimer()
	h := startWith(b, 3, func(c *Config) { c.Logger, c.RaftLog = benchLogger(), io.Discard })
	urls := h.urls()
	cl := api.NewClient(urls, token)
	noop := layout(*noopTasks, func(ctx context.Context, a api.Assignment) (int64, error) { return 1, nil })
	for i := range *noopWorkers {
		_, stop := benchWorker(b, urls, i, 16, noop)
		b.Cleanup(stop)
	}
	plan := "name: noop\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
	var total time.Duration
	for i := range b.N {
		b.StartTimer()
		start := time.Now()
		var res api.IDResponse
		if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: fmt.Sprint("job", i),
			Plan: plan, Needs: state.Resources{CPU: 1}}, &res); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Minute)
		half := *noopHeap == "" || i > 0
		var succeeded atomic.Int64
		stopProfile := make(chan struct{})
		profiled := make(chan struct{})
		if *noopProfile != "" && i == 0 {
			go func() {
				defer close(profiled)
				profileWindows(b, stopProfile, func() int { return int(succeeded.Load()) })
			}()
		} else {
			close(profiled)
		}
		for {
			var st api.ClusterStatus
			err := cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st)
			if err == nil {
				succeeded.Store(int64(st.Tasks["succeeded"]))
			}
			if err == nil && st.Tasks["succeeded"] >= (i+1)*(*noopTasks+2) {
				break
			}
			if err == nil && !half && st.Tasks["succeeded"] >= *noopTasks/2 {
				half = true
				writeHeap(b, *noopHeap+".half")
			}
			if time.Now().After(deadline) {
				b.Fatal("timed out")
			}
			time.Sleep(50 * time.Millisecond) // polling the status (no signal to wait on over HTTP)
		}
		total += time.Since(start)
		b.StopTimer()
		close(stopProfile)
		<-profiled
		if *noopHeap != "" && i == 0 {
			writeHeap(b, *noopHeap+".end")
		}
		var js []state.Job
		if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &js); err != nil {
			b.Fatal(err)
		}
		if k := slices.IndexFunc(js, func(j state.Job) bool { return j.ID == res.ID }); k < 0 || js[k].State != state.JobSucceeded || js[k].Succeeded != *noopTasks+2 {
			b.Fatalf("job %s: %+v", res.ID, js)
		}
	}
	b.ReportMetric(float64(b.N**noopTasks)/total.Seconds(), "tasks/s")
	l := h.leader()
	commits, secs := l.met.commitStats()
	b.ReportMetric(float64(l.raft.LastIndex())/float64(b.N), "raft-entries/job")
	b.ReportMetric(1000*secs/float64(max(commits, 1)), "commit-ms")
}

// benchWorker starts worker i with cpu slots running run; stop ends it
// (once, whatever the number of calls).
func benchWorker(b *testing.B, urls []string, i, cpu int, run func(context.Context, api.Assignment) (worker.Outcome, error)) (*worker.Worker, func()) {
	w, err := worker.New(worker.Config{Coordinators: urls, DataDir: b.TempDir(), Addr: "127.0.0.1:0",
		Resources: state.Resources{CPU: cpu, Memory: 1 << 30}, Token: token, Heartbeat: 20 * time.Millisecond, Run: run,
		Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	return w, sync.OnceFunc(func() { cancel(); <-done })
}

// layout is a worker's Run for jobs of n tasks: the planning task lays
// the job out as one stage of n tasks, each running run; the commit task
// does nothing.
func layout(n int, run func(context.Context, api.Assignment) (int64, error)) func(context.Context, api.Assignment) (worker.Outcome, error) {
	return func(ctx context.Context, a api.Assignment) (worker.Outcome, error) {
		switch a.Kind {
		case state.StagePlan:
			return worker.Outcome{Stages: []state.Stage{{Name: "tasks", Tasks: n}}}, nil
		case state.StageCommit:
			return worker.Outcome{}, nil
		}
		rows, err := run(ctx, a)
		return worker.Outcome{Rows: rows}, err
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
