package coordinator

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

func stat(t *testing.T, c *Coordinator, key string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(c.Raft().Stats()[key], 10, 64)
	if err != nil {
		t.Fatalf("raft stats %s: %v", key, err)
	}
	return n
}

// A process without the cluster secret that speaks hashicorp/raft's own
// protocol (its NetworkTransport) is refused before Raft reads a byte: a
// forged AppendEntries does not make a follower commit an entry, and a
// forged high-term RPC does not make the leader step down.
func TestForgedRaftRPCRefused(t *testing.T) {
	h := start(t, 3)
	l := h.leader()
	var f *Coordinator
	for _, c := range h.nodes {
		if c != l {
			f = c
		}
	}
	h.waitFor("three voters, the follower caught up", func() bool {
		cf := l.Raft().GetConfiguration()
		if cf.Error() != nil {
			return false
		}
		voters := 0
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		return voters == 3 && f.Raft().AppliedIndex() >= l.Raft().AppliedIndex()
	})
	forger, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	leaderAddr := raft.ServerAddress(l.trans.LocalAddr())
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(l.cfg.NodeID), Addr: []byte(leaderAddr)}

	// As the leader, in its own term: one entry that registers a worker,
	// committed at once.
	term, last, lastTerm := stat(t, f, "term"), stat(t, f, "last_log_index"), stat(t, f, "last_log_term")
	fake := state.Command{Op: state.OpRegister, At: time.Now().UTC(),
		Register: &state.Worker{ID: "w-forged", Addr: "127.0.0.1:1", Resources: state.Resources{CPU: 64}}}
	req := &raft.AppendEntriesRequest{RPCHeader: hdr, Term: term, Leader: []byte(leaderAddr),
		PrevLogEntry: last, PrevLogTerm: lastTerm, LeaderCommitIndex: last + 1,
		Entries: []*raft.Log{{Index: last + 1, Term: term, Type: raft.LogCommand, Data: fake.Encode()}}}
	var resp raft.AppendEntriesResponse
	err = forger.AppendEntries(raft.ServerID(f.cfg.NodeID), raft.ServerAddress(f.trans.LocalAddr()), req, &resp)
	if err == nil {
		t.Errorf("forged AppendEntries answered: success=%v term=%d", resp.Success, resp.Term)
	}
	// The leader may append entries of its own meanwhile (a voter
	// promoted), so look at what came after last rather than count it.
	forged := fake.Encode()
	for i, end := last+1, stat(t, f, "last_log_index"); i <= end; i++ {
		var e raft.Log
		if err := f.store.GetLog(i, &e); err != nil {
			t.Fatalf("follower's log entry %d: %v", i, err)
		}
		if string(e.Data) == string(forged) {
			t.Errorf("the forged entry is the follower's log entry %d", i)
		}
	}
	f.Read(func(s *state.State) {
		if s.Workers["w-forged"] != nil {
			t.Error("the forged worker is in the follower's state")
		}
	})

	// A far higher term to the leader, as AppendEntries and as RequestVote.
	lterm := stat(t, l, "term")
	high := &raft.AppendEntriesRequest{RPCHeader: hdr, Term: lterm + 100, Leader: []byte(leaderAddr)}
	if err := forger.AppendEntries(raft.ServerID(l.cfg.NodeID), leaderAddr, high, &resp); err == nil {
		t.Errorf("forged high-term AppendEntries answered: term=%d", resp.Term)
	}
	var vresp raft.RequestVoteResponse
	vote := &raft.RequestVoteRequest{RPCHeader: hdr, Term: lterm + 200, LastLogIndex: 1 << 40, LastLogTerm: lterm + 200}
	if err := forger.RequestVote(raft.ServerID(l.cfg.NodeID), leaderAddr, vote, &vresp); err == nil {
		t.Errorf("forged RequestVote answered: granted=%v", vresp.Granted)
	}
	if !l.IsLeader() || stat(t, l, "term") != lterm {
		t.Errorf("leader after forged RPCs: leading %v, term %d (was %d)", l.IsLeader(), stat(t, l, "term"), lterm)
	}

	// The cluster still replicates among its own nodes.
	if _, err := l.apply(state.Command{Op: state.OpNode, Node: &state.Node{ID: "probe", RaftAddr: "x", APIAddr: "y"}}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("replication after the forgeries", func() bool {
		ok := true
		for _, c := range h.nodes {
			c.Read(func(s *state.State) { ok = ok && s.Nodes["probe"] != nil })
		}
		return ok
	})
}

// The handshake refuses a wrong key in either direction and a replayed
// proof.
func TestRaftHandshake(t *testing.T) {
	pair := func() (net.Conn, net.Conn) { return net.Pipe() }
	run := func(ks, kc []byte) (serr, cerr error) {
		s, c := pair()
		done := make(chan error, 1)
		go func() { done <- serverHandshake(s, ks); s.Close() }()
		cerr = clientHandshake(c, kc)
		c.Close()
		return <-done, cerr
	}
	a, b := raftKey("secret-a"), raftKey("secret-b")
	if serr, cerr := run(a, a); serr != nil || cerr != nil {
		t.Fatalf("same key: server %v, client %v", serr, cerr)
	}
	if serr, cerr := run(a, b); serr == nil || cerr == nil {
		t.Fatalf("different keys: server %v, client %v", serr, cerr)
	}
	// Record an honest client's answer to one challenge, then replay it
	// to a fresh server: its nonce differs, so the proof fails.
	s1, c1 := pair()
	go func() {
		clientHandshake(c1, a)
		c1.Close()
	}()
	hello := make([]byte, len(raftMagic)+raftNonceLen)
	copy(hello, raftMagic)
	s1.Write(hello)
	recorded := make([]byte, raftNonceLen+32)
	if _, err := io.ReadFull(s1, recorded); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	s2, c2 := pair()
	done := make(chan error, 1)
	go func() { done <- serverHandshake(s2, a); s2.Close() }()
	io.ReadFull(c2, make([]byte, len(raftMagic)+raftNonceLen))
	c2.Write(recorded)
	if err := <-done; err == nil {
		t.Fatal("a replayed proof passed the handshake")
	}
	c2.Close()
}
