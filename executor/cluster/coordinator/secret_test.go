package coordinator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Without a configured secret, the cluster secret is not the token: the
// bootstrapping node generates one into its data directory (0600), a
// token holder can neither forge Raft traffic (its handshake keyed on the
// token is refused), nor join a node, nor heartbeat as a worker with a
// credential computed from the token; a joining node without the secret
// fails at start naming --cluster-secret-file, one given the generated
// file joins, and workers need only the token.
func TestNoSecretConfigured(t *testing.T) {
	cfg := newConfig(t, "n1")
	cfg.Secret, cfg.Bootstrap = "", true
	h := &harness{t: t, cfgs: []Config{cfg}}
	n1, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes = []*Coordinator{n1}
	t.Cleanup(h.shutdown)
	l := h.leader()

	file := filepath.Join(cfg.DataDir, SecretFile)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("the bootstrapping node wrote no secret: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	gen := strings.TrimSpace(string(b))
	if len(gen) < minSecret || gen == token || l.cfg.Secret != gen {
		t.Fatalf("generated secret %q (node uses %q), token %q", gen, l.cfg.Secret, token)
	}

	// A forger holding the token speaks Raft with a handshake keyed on it.
	forgerLayer, err := newStreamLayer("127.0.0.1:0", nil, nil, nil, raftKey(token), nil)
	if err != nil {
		t.Fatal(err)
	}
	forger := raft.NewNetworkTransport(forgerLayer, 1, 2*time.Second, io.Discard)
	defer forger.Close()
	leaderAddr := raft.ServerAddress(l.trans.LocalAddr())
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n1"), Addr: []byte(leaderAddr)}
	lterm := stat(t, l, "term")
	var resp raft.AppendEntriesResponse
	if err := forger.AppendEntries("n1", leaderAddr, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: lterm + 100, Leader: []byte(leaderAddr)}, &resp); err == nil {
		t.Errorf("a token holder's AppendEntries answered: term %d", resp.Term)
	}
	if !l.IsLeader() || stat(t, l, "term") != lterm {
		t.Errorf("leader after the forged RPC: leading %v, term %d (was %d)", l.IsLeader(), stat(t, l, "term"), lterm)
	}

	// The token cannot join a node, even one that proves the token.
	cl := api.NewClient(h.urls(), token)
	cl.Retry = 0
	err = cl.Do(context.Background(), http.MethodPost, "/v1/cluster/join",
		api.JoinRequest{ID: "rogue", RaftAddr: forgerLayer.Addr().String(), APIAddr: "127.0.0.1:1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("join with the token: %v", err)
	}
	if s := servers(t, l); len(s) != 1 {
		t.Errorf("servers after the token's join: %v", s)
	}

	// Workers need only the token; a credential computed from the token
	// is no worker's.
	startWorker(t, h.urls(), nil)
	h.waitFor("the worker registered", func() bool {
		n := 0
		l.Read(func(s *state.State) { n = len(s.Workers) })
		return n == 1
	})
	var id string
	l.Read(func(s *state.State) {
		for w := range s.Workers {
			id = w
		}
	})
	forged := api.NewClient(h.urls(), WorkerCredential(token, id))
	forged.Retry = 0
	if err := forged.Do(context.Background(), http.MethodPost, "/v1/workers/"+id+"/heartbeat", nil, nil); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("heartbeat with a credential computed from the token: %v", err)
	}

	// A joining node without the secret fails at start, naming the flag;
	// the token as the secret is refused; the generated file joins.
	jc := newConfig(t, "n2")
	jc.Secret, jc.Join = "", l.URL()
	if c, err := Start(context.Background(), jc); !errors.Is(err, ErrNoSecret) || !strings.Contains(err.Error(), "--cluster-secret-file") {
		if err == nil {
			c.Shutdown()
		}
		t.Fatalf("join without the secret: %v, want ErrNoSecret naming --cluster-secret-file", err)
	}
	jc.Secret = token
	if c, err := Start(context.Background(), jc); err == nil || !strings.Contains(err.Error(), "differ") {
		if err == nil {
			c.Shutdown()
		}
		t.Fatalf("the token as the cluster secret: %v", err)
	}
	jc.Secret = gen
	n2, err := Start(context.Background(), jc)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes, h.cfgs = append(h.nodes, n2), append(h.cfgs, jc)
	h.waitFor("two voters", func() bool { return h.leader().Status().Voters() == 2 })

	// The bootstrapping node restarts without a secret given: it reads
	// its file back, so its worker's credential still holds.
	n1.Shutdown()
	h.nodes[0] = nil
	cfg.Bootstrap = false
	if h.nodes[0], err = Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if h.nodes[0].cfg.Secret != gen {
		t.Fatal("the restarted node did not read its secret back")
	}
	h.waitFor("two voters after the restart", func() bool { return h.leader().Status().Voters() == 2 })

	// A joined node keeps no copy of the secret: it restarts only with it
	// given (as a cluster that used the token as its secret must).
	n2.Shutdown()
	h.nodes[1] = nil
	jc.Secret, jc.Join = "", ""
	if c, err := Start(context.Background(), jc); !errors.Is(err, ErrNoSecret) || !strings.Contains(err.Error(), "holds Raft state") {
		if err == nil {
			c.Shutdown()
		}
		t.Fatalf("restart of a joined node without the secret: %v", err)
	}
}
