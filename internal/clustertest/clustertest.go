// Package clustertest starts Sluice coordinators on loopback for the tests
// of the packages above the cluster (the commands, the examples): real
// coordinators (Raft over TCP, logs and snapshots on the test's temporary
// directories) with the short timings tests want, torn down when the test
// ends, and a deadline poll to wait on them. It is for tests only.
//
// The coordinator's and the worker's own tests keep their in-package
// harnesses: they reach unexported state, and the coordinator's cannot
// import this package (it imports the coordinator).
package clustertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
)

// Timeout is how long Poll waits before it fails the test.
const Timeout = 30 * time.Second

// Addr is a free loopback TCP address (127.0.0.1:port).
func Addr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Poll calls ok until it returns true, failing the test naming what after
// Timeout.
func Poll(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogWriter writes each line written to it to the test's log.
func LogWriter(t testing.TB) io.Writer { return tlog{t} }

// Logger logs to the test's log.
func Logger(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(tlog{t}, nil)) }

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Secret is the cluster secret of the coordinators Config makes.
const Secret = "clustertest-cluster-secret"

// SecretOf is the cluster secret that the coordinator which bootstrapped
// with no secret given generated into its data directory dataDir.
func SecretOf(t testing.TB, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, coordinator.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Config is a coordinator's config for node id that bootstraps a
// one-node cluster: a data directory under the test's temporary
// directory, free loopback addresses, token, the cluster secret Secret (so
// the nodes it makes join each other), and Raft timings short enough
// that a test waits well under a second for a leader. Logs go to the
// test's log. Set Join (and clear Bootstrap) to join another node.
func Config(t testing.TB, id, token string) coordinator.Config {
	cfg := coordinator.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.APIAddr = id, filepath.Join(t.TempDir(), id), Addr(t), Addr(t)
	cfg.Bootstrap, cfg.Token, cfg.Secret = true, token, Secret
	cfg.Tick = 50 * time.Millisecond
	cfg.RaftHeartbeat, cfg.RaftElection, cfg.RaftLeaderLease = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	cfg.Logger, cfg.RaftLog = Logger(t), LogWriter(t)
	return cfg
}

// Start starts a coordinator and shuts it down when the test ends.
func Start(t testing.TB, cfg coordinator.Config) *coordinator.Coordinator {
	t.Helper()
	c, err := coordinator.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// WaitReady polls the cluster's status through cl until it has a leader
// and exactly workers live workers. A worker the coordinator declared dead
// (a heartbeat late on a loaded machine) stays listed as not alive beside
// its registration again, so only live ones count. A timeout reports the
// last status seen.
func WaitReady(t testing.TB, cl *api.Client, workers int) {
	t.Helper()
	var last string
	deadline := time.Now().Add(Timeout)
	for {
		var cs api.ClusterStatus
		err := cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &cs)
		alive := 0
		for _, w := range cs.Workers {
			if w.Alive {
				alive++
			}
		}
		if err == nil && cs.Leader != "" && alive == workers {
			return
		}
		last = fmt.Sprintf("error %v, leader %q, %d workers listed, %d alive", err, cs.Leader, len(cs.Workers), alive)
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for a leader and %d workers: last status: %s", workers, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
