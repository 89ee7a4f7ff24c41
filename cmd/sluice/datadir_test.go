package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
)

// A second coordinator process on a data directory in use exits at once
// naming the pid that holds it; the first still answers, and stops on
// SIGTERM.
func TestCoordinatorDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("dd-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "n1")
	args := func(apiAddr string) []string {
		return []string{"coordinator", "--node-id", "n1", "--data-dir", data, "--raft-addr", loopback(t),
			"--api-addr", apiAddr, "--token-file", tokenFile, "--bootstrap"}
	}
	first := loopback(t)
	p := spawn(t, args(first)...)
	cl := api.NewClient([]string{first}, "dd-token")
	poll(t, "n1 leads", func() bool {
		var st api.ClusterStatus
		return cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
	})
	second := spawn(t, args(loopback(t))...)
	err := second.cmd.Wait() // returns: the second does not wait on the lock
	want := fmt.Sprintf("data dir in use by pid %d", p.cmd.Process.Pid)
	if err == nil || !strings.Contains(second.out.String(), want) {
		t.Fatalf("second coordinator: %v, output:\n%s\nwant %q", err, second.out, want)
	}
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, nil); err != nil {
		t.Fatalf("the first coordinator after the second's attempt: %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("first coordinator after SIGTERM: %v\n%s", err, p.out)
	}
}
