package harness

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// child is a sluice process of a benchmark's cluster.
type child struct {
	cmd  *exec.Cmd
	log  string
	dir  string // its --data-dir
	done chan struct{}
}

func startChild(self, dir, log string, extraEnv []string, args ...string) (*child, error) {
	lf, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	c := &child{cmd: exec.Command(self, args...), log: log, dir: dir, done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), extraEnv...)
	c.cmd.Stdout, c.cmd.Stderr = lf, lf
	if err := c.cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	go func() { c.cmd.Wait(); lf.Close(); close(c.done) }()
	return c, nil
}

// stop ends the child with SIGTERM (a clean shutdown), then SIGKILL.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// kill9 kills the child with SIGKILL: no shutdown, nothing flushed.
func (c *child) kill9() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// tail is the end of the child's log, for errors.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// cluster is coordinators and workers started from this binary on loopback.
type cluster struct {
	coords  []*child
	ids     []string // the coordinators' node ids
	workers []*child
	cl      *api.Client
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startCluster starts coords coordinators and workers workers of cpu CPUs
// under a fresh dir and waits until the first leads and every worker is
// registered.
func startCluster(ctx context.Context, stderr io.Writer, self, dir string, coords, workers, cpu int, workerTimeout time.Duration, splitBytes int64) (c *cluster, err error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	token := fmt.Sprintf("%x", key)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	c = &cluster{}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	var urls []string
	for i := range coords {
		id := fmt.Sprint("n", i+1)
		raft, err1 := freeAddr()
		apiAddr, err2 := freeAddr()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		a := []string{"coordinator", "--node-id", id, "--data-dir", filepath.Join(dir, id), "--raft-addr", raft,
			"--api-addr", apiAddr, "--token-file", tokenFile, "--worker-timeout", workerTimeout.String()}
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			// n1 generated the cluster secret into its data directory.
			a = append(a, "--join", "http://"+urls[0], "--cluster-secret-file", filepath.Join(dir, "n1", "cluster-secret"))
		}
		p, err := startChild(self, filepath.Join(dir, id), filepath.Join(dir, id+".log"), nil, a...)
		if err != nil {
			return nil, err
		}
		c.coords, c.ids, urls = append(c.coords, p), append(c.ids, id), append(urls, apiAddr)
		if i == 0 {
			one := api.NewClient(urls, token)
			if err := c.wait(ctx, "n1 to lead", func() bool {
				var st api.ClusterStatus
				return one.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
			}); err != nil {
				return nil, err
			}
		}
	}
	c.cl = api.NewClient(urls, token)
	if err := c.wait(ctx, fmt.Sprintf("%d coordinators", coords), func() bool { return c.status(ctx).Voters() == coords }); err != nil {
		return nil, err
	}
	for i := range workers {
		wdir := filepath.Join(dir, fmt.Sprint("worker", i+1))
		a := []string{"worker", "--coordinators", strings.Join(urls, ","), "--data-dir", wdir, "--addr", "127.0.0.1:0",
			"--resources", fmt.Sprintf("cpu=%d,memory=4GiB", cpu), "--token-file", tokenFile, "--heartbeat", "100ms"}
		if splitBytes > 0 {
			a = append(a, "--split-bytes", strconv.FormatInt(splitBytes, 10))
		}
		p, err := startChild(self, wdir, wdir+".log", []string{"GOMAXPROCS=" + strconv.Itoa(cpu)}, a...)
		if err != nil {
			return nil, err
		}
		c.workers = append(c.workers, p)
	}
	if err := c.wait(ctx, fmt.Sprintf("%d workers", workers), func() bool {
		alive := 0
		for _, w := range c.status(ctx).Workers {
			if w.Alive {
				alive++
			}
		}
		return alive == workers
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "cluster: %d coordinators, %d workers of %d CPUs under %s\n", coords, workers, cpu, dir)
	return c, nil
}

func (c *cluster) status(ctx context.Context) (st api.ClusterStatus) {
	_ = c.cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
	return st
}

// wait polls ok every 20 ms for up to a minute; a child that exits fails it.
func (c *cluster) wait(ctx context.Context, what string, ok func() bool) error {
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		for _, p := range append(slices.Clone(c.coords), c.workers...) {
			if p.exited() && p.cmd.ProcessState.ExitCode() != -1 {
				return fmt.Errorf("waiting for %s: %s exited: %s\n%s", what, p.log, p.cmd.ProcessState, p.tail())
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out after a minute (logs under %s)", what, filepath.Dir(c.coords[0].log))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (c *cluster) stop() {
	for _, p := range c.workers {
		p.stop()
	}
	for _, p := range c.coords {
		p.stop()
	}
}

// submit submits a plan and returns the job's id.
func (c *cluster) submit(ctx context.Context, requestID, file, plan string) (string, error) {
	var sub api.IDResponse
	err := c.cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: requestID, File: file, Plan: plan,
		MaxRetries: 3, Needs: state.Resources{CPU: 1}}, &sub)
	return sub.ID, err
}

func (c *cluster) job(ctx context.Context, id string) (st api.JobStatus, err error) {
	err = c.cl.Do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &st)
	return st, err
}

// runJob submits a plan and polls it every 50 ms until it is done: the wall
// time is from the submit to the poll that saw it succeed.
func (c *cluster) runJob(ctx context.Context, requestID, file, plan string) (api.JobStatus, time.Duration, error) {
	start := time.Now()
	id, err := c.submit(ctx, requestID, file, plan)
	if err != nil {
		return api.JobStatus{}, 0, err
	}
	st, err := c.await(ctx, id, 10*time.Minute)
	return st, time.Since(start), err
}

// await polls a job every 50 ms until it is done and fails unless it succeeded.
func (c *cluster) await(ctx context.Context, id string, limit time.Duration) (api.JobStatus, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := c.job(ctx, id)
		if err == nil && st.Job.State.Done() {
			if st.Job.State != state.JobSucceeded {
				return st, fmt.Errorf("job %s %s: %s", id, st.Job.State, st.Job.Error)
			}
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("job %s not done after %s (state %s)", id, limit, st.Job.State)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
