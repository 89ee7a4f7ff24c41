package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/executor/cluster/worker"
	"github.com/sluicehq/sluice/plans"
)

// Stderr gets the replica servers' output on the worker, each line after
// "[serve NAME REPLICA] " (the worker's own
// standard error by default).
var Stderr io.Writer = os.Stderr

// PollEvery is how often a replica reads its server's queue for the
// heartbeats.
var PollEvery = 200 * time.Millisecond

// ShutdownTimeout is how long a cancelled replica's server drains its
// requests (SIGTERM) before it is killed.
var ShutdownTimeout = 30 * time.Second

var outSchema = arrow.NewSchema([]arrow.Field{
	{Name: "deployment", Type: arrow.BinaryTypes.String},
	{Name: "replica", Type: arrow.BinaryTypes.String},
}, nil)

// Register registers ReplicaFunc with plans (once per program; a second
// call is an error). self gives the command line that serves, before its
// flags: this executable and "serve" in the sluice command.
func Register(self func() ([]string, error)) error {
	return plans.Register(ReplicaFunc, plans.SpecFunc(ReplicaFunc, "a deploy.Spec", outSchema,
		func(ctx context.Context, s Spec, b *array.RecordBuilder) error {
			prog, err := self()
			if err != nil {
				return fmt.Errorf("%s: deployment %s: %w", ReplicaFunc, s.Name, err)
			}
			id, err := Serve(ctx, s, prog)
			if err != nil {
				return err
			}
			b.Field(0).(*array.StringBuilder).Append(s.Name)
			b.Field(1).(*array.StringBuilder).Append(id)
			return nil
		}))
}

// addrRE finds the address `sluice serve` prints once it listens.
var addrRE = regexp.MustCompile(`on (https?://[^ ]+) `)

// Serve runs one replica of s until ctx ends (its job cancelled, or moved
// off this worker): prog (`sluice serve`) with the spec's flags on the
// worker's host and a free port, announced in the worker's heartbeats
// with its queue, read from the server's /metrics every PollEvery. At the
// end the server drains (SIGTERM) for up to ShutdownTimeout. A server that
// exits by itself is an error (the job fails, or is retried). It returns
// the replica's id.
func Serve(ctx context.Context, s Spec, prog []string) (string, error) {
	t, ok := worker.TaskOf(ctx)
	if !ok {
		return "", fmt.Errorf("%s: %w", ReplicaFunc, worker.ErrNoWorker)
	}
	if len(prog) == 0 {
		return "", fmt.Errorf("%s: no program to serve with", ReplicaFunc)
	}
	host := "127.0.0.1"
	if h, _, err := net.SplitHostPort(t.Addr); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
		host = h
	}
	args := slices.Concat(prog[1:], []string{"--model", s.Model}, s.Args, []string{"--host", host, "--port", "0"})
	cmd := exec.Command(prog[0], args...)
	if n := t.Needs.GPU; n > 0 {
		// The GPUs the coordinator counted for this replica, by index.
		idx, release, err := gpus.take(t.Worker, t.GPUs, n)
		if err != nil {
			return "", fmt.Errorf("%s: deployment %s: %w", ReplicaFunc, s.Name, err)
		}
		defer release()
		cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES="+visibleDevices(idx, os.Getenv("CUDA_VISIBLE_DEVICES")))
	}
	// The kernel kills the server when the worker dies, so that a killed
	// worker leaves no replica serving while its job runs again elsewhere.
	dieWithParent(cmd)
	tag := fmt.Sprintf("[serve %s %s] ", s.Name, t.Job)
	urlc := make(chan string, 1) // the address the server prints once it listens
	found := false
	cmd.Stdout = &lineWriter{tag: tag, line: func(l string) {
		if m := addrRE.FindStringSubmatch(l); !found && m != nil {
			found = true
			urlc <- m[1]
		}
	}}
	cmd.Stderr = &lineWriter{tag: tag}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: deployment %s: starting %s: %w", ReplicaFunc, s.Name, prog[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(ShutdownTimeout):
			cmd.Process.Kill()
			<-exited
		}
		return ctx.Err()
	}
	var url string
	select {
	case <-ctx.Done():
		return "", stop()
	case err := <-exited:
		return "", fmt.Errorf("%s: deployment %s: the server exited before it listened: %v", ReplicaFunc, s.Name, err)
	case url = <-urlc:
	}
	load, done, err := worker.Announce(ctx, s.Name, url)
	if err != nil {
		return "", errors.Join(err, stop())
	}
	defer done()
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return t.Job, stop()
		case err := <-exited:
			return "", fmt.Errorf("%s: deployment %s: replica %s at %s exited: %v", ReplicaFunc, s.Name, t.Job, url, err)
		case <-tick.C:
			if running, waiting, err := queue(ctx, client, url); err == nil {
				load(running, waiting)
			}
		}
	}
}

// lineWriter writes each line to Stderr after tag, and gives it to line
// (when set) first. exec calls Write from one goroutine.
type lineWriter struct {
	tag  string
	line func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		l := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if w.line != nil {
			w.line(l)
		}
		fmt.Fprintln(Stderr, w.tag+l)
	}
	if len(w.buf) > 64<<10 { // a line that long: out as it is
		fmt.Fprintln(Stderr, w.tag+string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

var parsers = sync.Pool{New: func() any { p := expfmt.NewTextParser(model.UTF8Validation); return &p }}

// queue reads a server's requests running and waiting from its /metrics.
func queue(ctx context.Context, client *http.Client, url string) (running, waiting int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s/metrics: %s", url, resp.Status)
	}
	p := parsers.Get().(*expfmt.TextParser)
	defer parsers.Put(p)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	gauge := func(name string) int {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return 0
		}
		return int(f.GetMetric()[0].GetGauge().GetValue())
	}
	if fams["sluice:num_requests_running"] == nil {
		return 0, 0, fmt.Errorf("%s/metrics has no sluice:num_requests_running", url)
	}
	return gauge("sluice:num_requests_running"), gauge("sluice:num_requests_waiting"), nil
}
