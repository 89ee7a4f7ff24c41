// Package coordinator is a Sluice coordinator: a hashicorp/raft node (TCP
// transport, a raft-boltdb (or raft-wal) log and stable store, file snapshots under the
// data directory) that replicates the cluster state, serves the HTTP/JSON
// API, and, while it leads, assigns tasks, expires silent workers and fires
// schedules. This package is unstable.
package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/raftlog"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Errors.
var (
	ErrNotLeader = errors.New("coordinator: not the leader")
	ErrNoLeader  = errors.New("coordinator: no leader")
)

// Config configures a coordinator.
type Config struct {
	NodeID    string
	DataDir   string
	RaftAddr  string // host:port the Raft transport listens on (and advertises)
	APIAddr   string // host:port of the HTTP API
	Bootstrap bool   // start a new cluster with this node as its only voter
	Join      string // or join the cluster whose coordinator API is at this URL
	Token     string // the bearer token of clients and of workers' registration
	// Secret is the cluster secret, known to coordinators only: it
	// authenticates Raft connections (without TLS) and coordinator joins,
	// and derives each worker's credential; it must differ from Token.
	// Empty: a bootstrapping node generates one into DataDir (SecretFile)
	// and a restart reads it back; a joining node must be given it.
	Secret string

	WorkerTimeout time.Duration // a worker silent this long is dead (default 5 s)
	Tick          time.Duration // how often the leader decides (default 200 ms)
	ApplyTimeout  time.Duration // how long a write may wait for Raft (default 10 s)

	// Raft timing; zero keeps raft's defaults (tests make them short).
	RaftHeartbeat, RaftElection, RaftLeaderLease time.Duration
	SnapshotThreshold                            uint64

	// Now is the clock that stamps commands (default time.Now); tests
	// move it to fire schedules.
	Now func() time.Time

	TrailingLogs uint64 // log entries kept after a snapshot (0: raft's default)

	// LogStore is the durable Raft log and stable store under DataDir:
	// "bolt" (raft-boltdb, the default: see BENCHMARKS.md), "raftlog"
	// (executor/cluster/raftlog: one write and one fdatasync per batch) or "wal"
	// (raft-wal). A data directory keeps the store it was made with.
	LogStore string

	// TLS, when set, serves the API and the Raft transport over TLS with
	// this server config; ClientTLS is then what dials other coordinators
	// (Raft and join).
	TLS, ClientTLS *tls.Config

	Logger    *slog.Logger // default: slog.Default()
	RaftLog   io.Writer    // raft's own log (default: stderr, warnings and up)
	listenAPI net.Listener // set by tests that pick the port first
}

// DefaultConfig is a config with the defaults filled in.
func DefaultConfig() Config {
	return Config{WorkerTimeout: 5 * time.Second, Tick: 200 * time.Millisecond, ApplyTimeout: 10 * time.Second}
}

// Validate checks the config and names the field at fault.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("coordinator: NodeID (--node-id) is empty")
	case c.DataDir == "":
		return errors.New("coordinator: DataDir (--data-dir) is empty")
	case c.RaftAddr == "":
		return errors.New("coordinator: RaftAddr (--raft-addr) is empty")
	case c.APIAddr == "":
		return errors.New("coordinator: APIAddr (--api-addr) is empty")
	case c.Bootstrap && c.Join != "":
		return fmt.Errorf("coordinator: Bootstrap (true) and Join (%q) exclude each other", c.Join)
	case c.Token == "":
		return errors.New("coordinator: Token (--token-file) is empty")
	case c.TLS != nil && (c.ClientTLS == nil || c.ClientTLS.RootCAs == nil):
		return errors.New("coordinator: TLS (--tls-cert) needs ClientTLS.RootCAs (--tls-ca): the cluster's CA, which coordinators verify each other's certificates against (the system's roots would accept any publicly signed certificate)")
	case c.WorkerTimeout <= 0:
		return fmt.Errorf("coordinator: WorkerTimeout (%s) must be positive", c.WorkerTimeout)
	case c.LogStore != "" && c.LogStore != "bolt" && c.LogStore != "wal" && c.LogStore != "raftlog":
		return fmt.Errorf("coordinator: LogStore (--log-store) %q: want bolt, raftlog or wal", c.LogStore)
	case c.Tick <= 0 || c.Tick > c.WorkerTimeout:
		return fmt.Errorf("coordinator: Tick (%s) must be positive and at most WorkerTimeout (%s)", c.Tick, c.WorkerTimeout)
	}
	return nil
}

// Coordinator is one running node.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	fsm   *fsm
	raft  *raft.Raft
	trans *raft.NetworkTransport
	layer *streamLayer
	store logStore
	lock  *os.File // the data directory's LOCK (lock.go)
	srv   *http.Server
	ln    net.Listener
	met   *metrics
	specs specCache // each job's spec hash, for heartbeats

	wake chan struct{} // kicks the leader loop to decide now

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	hasState bool // the data directory held Raft state at start
	// bootIndex is the last log index on disk at start: until the state
	// machine has applied it, a restarted follower's state is older than
	// what it had before, and reads go to the leader.
	bootIndex uint64
	started   time.Time   // when Raft started, for stale (no leader heard from yet)
	marked    atomic.Bool // InitFile is written (storecheck.go)
}

// Start opens the stores, starts Raft and the API, and bootstraps or joins
// when the data directory holds no state yet. It returns once the API
// listens; Shutdown stops everything.
func Start(ctx context.Context, cfg Config) (*Coordinator, error) {
	d := DefaultConfig()
	if cfg.WorkerTimeout == 0 {
		cfg.WorkerTimeout = d.WorkerTimeout
	}
	if cfg.Tick == 0 {
		cfg.Tick = d.Tick
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = d.ApplyTimeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RaftLog == nil {
		cfg.RaftLog = os.Stderr
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), fsm: &fsm{s: state.New(), stallMin: cfg.WorkerTimeout / 4, now: cfg.Now}, met: newMetrics(),
		wake: make(chan struct{}, 1)}
	if err := c.startRaft(); err != nil {
		c.closeStores()
		return nil, err
	}
	ln := cfg.listenAPI
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.APIAddr); err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("coordinator: api: %w", err)
		}
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	c.ln = ln
	c.srv = &http.Server{Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("api stopped", "err", err)
		}
	}()
	go func() { defer c.wg.Done(); c.lead(ctx) }()
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.promoteSelf(ctx) }()
	if cfg.Join != "" && !c.hasState {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.join(ctx) }()
	}
	return c, nil
}

func (c *Coordinator) startRaft() error {
	cfg := c.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	var err error
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: cfg.RaftLog, Level: hclog.Warn})
	if cfg.RaftHeartbeat > 0 {
		rc.HeartbeatTimeout = cfg.RaftHeartbeat
	}
	if cfg.RaftElection > 0 {
		rc.ElectionTimeout = cfg.RaftElection
	}
	if cfg.RaftLeaderLease > 0 {
		rc.LeaderLeaseTimeout = cfg.RaftLeaderLease
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
		rc.SnapshotInterval = time.Second
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	// Commands proposed while the log writes wait in a buffer and go to
	// disk together (the leader proposes decisions and report batches
	// without waiting for the one before).
	rc.BatchApplyCh = true
	if c.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return err
	}
	if err := checkStore(cfg.DataDir, cfg.LogStore); err != nil {
		return err
	}
	if err := c.resolveSecret(); err != nil {
		return err
	}
	cfg = c.cfg
	store, err := openLogStore(cfg.DataDir, cfg.LogStore)
	if err != nil {
		return fmt.Errorf("coordinator: log store: %w", err)
	}
	c.store = store
	snaps, err := raft.NewFileSnapshotStore(cfg.DataDir, 2, cfg.RaftLog)
	if err != nil {
		return fmt.Errorf("coordinator: snapshots: %w", err)
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("coordinator: --raft-addr %q: %w", cfg.RaftAddr, err)
	}
	layer, err := newStreamLayer(cfg.RaftAddr, addr, cfg.TLS, cfg.ClientTLS, raftKey(cfg.secret()),
		func(err error) { c.log.Warn("raft connection refused", "err", err) })
	if err != nil {
		return fmt.Errorf("coordinator: raft transport: %w", err)
	}
	c.layer = layer
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: layer, MaxPool: 3,
		Timeout: 10 * time.Second, Logger: hclog.New(&hclog.LoggerOptions{Name: "raft-net", Output: cfg.RaftLog, Level: hclog.Warn})})
	c.trans = trans
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	c.hasState = has
	var logs raft.LogStore = store
	if _, ok := store.(*raftlog.Store); ok {
		// The replication goroutines read each entry soon after it is
		// stored: from memory, not with a pread and a decode per entry.
		if logs, err = raft.NewLogCache(1024, store); err != nil {
			return fmt.Errorf("coordinator: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, c.fsm, logs, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("coordinator: raft: %w", err)
	}
	c.raft = r
	c.bootIndex = r.LastIndex()
	c.started = time.Now()
	if cfg.Bootstrap && !has {
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("coordinator: bootstrap: %w", err)
		}
	}
	c.markInitialized()
	return nil
}

// shutdownWait bounds how long Shutdown waits for the leader loops once
// Raft is shut down.
const shutdownWait = 10 * time.Second

// Shutdown stops the API, the leader loop and Raft, and closes the stores.
func (c *Coordinator) Shutdown() error {
	var err error
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		if c.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c.srv.Shutdown(ctx)
			cancel()
			c.srv.Close()
		} else if c.ln != nil {
			c.ln.Close()
		}
		if c.raft != nil {
			err = c.raft.Shutdown().Error()
		}
		// hashicorp/raft can leave an apply future unanswered when it shuts
		// down with the command handed to the FSM but not applied: a leader
		// loop waiting on it would hold Shutdown forever (seen once under
		// -race in TestRestartKeepsState). Give the loops a bound; a loop
		// still waiting then is left behind, on a Raft that is shut down.
		done := make(chan struct{})
		go func() { c.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(shutdownWait):
			c.log.Warn("shutdown: a leader loop is still waiting on Raft; going on without it", "node", c.cfg.NodeID)
		}
		c.closeStores()
	})
	return err
}

func (c *Coordinator) closeStores() {
	if c.trans != nil {
		c.trans.Close()
	}
	if c.store != nil {
		c.store.Close()
	}
	if c.lock != nil {
		c.lock.Close()
	}
}

// logStore is Raft's durable log and stable store.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

var (
	_ logStore = (*raftboltdb.BoltStore)(nil)
	_ logStore = walStore{}
	_ logStore = (*raftlog.Store)(nil)
)

// walStore closes the WAL, then its meta store.
type walStore struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

func (w walStore) Close() error {
	return errors.Join(w.WAL.Close(), w.meta.Close())
}

// HasState reports whether dir holds a coordinator's log store of either
// kind (or its marker, InitFile), so a restart needs neither --bootstrap
// nor --join.
func HasState(dir string) bool {
	if dir == "" {
		return false
	}
	for _, f := range []string{"raft.db", "wal", "raftlog", InitFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// openLogStore opens the store of the given kind under dir. A directory
// made with one kind refuses the other, so a restart never starts from an
// empty log beside a full one.
func openLogStore(dir, kind string) (logStore, error) {
	bolt, wal, rl := filepath.Join(dir, "raft.db"), filepath.Join(dir, "wal"), filepath.Join(dir, "raftlog")
	if kind == "" {
		kind = "bolt"
	}
	for k, other := range map[string]string{"bolt": bolt, "wal": wal, "raftlog": rl} {
		if _, err := os.Stat(other); err == nil && k != kind {
			return nil, fmt.Errorf("%s holds the other log store than --log-store %s", other, kind)
		}
	}
	if kind == "raftlog" {
		return raftlog.Open(rl, raftlog.Options{})
	}
	if kind == "wal" {
		if err := os.MkdirAll(wal, 0o700); err != nil {
			return nil, err
		}
		// raft-wal v0.4.0's Close leaves its meta store (a bolt file with
		// an exclusive lock) open, so a node restarted in the same process
		// would wait on the lock forever: the store is ours to close.
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(wal, raftwal.WithMetaStore(meta))
		if err != nil {
			return nil, err
		}
		return walStore{w, meta}, nil
	}
	return raftboltdb.NewBoltStore(bolt)
}

// Raft is the node's Raft, for status and tests.
func (c *Coordinator) Raft() *raft.Raft { return c.raft }

// URL is the API's base URL.
func (c *Coordinator) URL() string { return c.scheme() + "://" + c.ln.Addr().String() }

func (c *Coordinator) scheme() string {
	if c.cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// Isolate cuts the node's Raft connections, as a network partition would,
// until Heal; its API keeps answering. For tests and drills.
func (c *Coordinator) Isolate() { c.layer.Isolate() }

// Heal ends Isolate.
func (c *Coordinator) Heal() { c.layer.Heal() }

// IsLeader reports whether this node leads.
func (c *Coordinator) IsLeader() bool { return c.raft.State() == raft.Leader }

// Read runs fn on the node's state (which a follower may hold a little
// behind the leader's).
func (c *Coordinator) Read(fn func(s *state.State)) { c.fsm.read(fn) }

// apply proposes a command on the leader and waits for it to commit and
// apply.
func (c *Coordinator) apply(cmd state.Command) (state.Result, error) {
	start := time.Now()
	f, err := c.proposeAsync(cmd)
	if err != nil {
		return state.Result{}, err
	}
	return c.await(f, cmd.Op, start)
}

// proposeAsync hands a command to Raft on the leader without waiting for it
// (Raft writes the commands proposed meanwhile in one batch).
func (c *Coordinator) proposeAsync(cmd state.Command) (raft.ApplyFuture, error) {
	if c.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	if cmd.At.IsZero() {
		cmd.At = c.cfg.Now().UTC()
	}
	return c.raft.Apply(cmd.Encode(), c.cfg.ApplyTimeout), nil
}

// await waits for a proposed command to commit and apply.
func (c *Coordinator) await(f raft.ApplyFuture, op state.Op, start time.Time) (state.Result, error) {
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return state.Result{}, ErrNotLeader
		}
		return state.Result{}, fmt.Errorf("coordinator: apply %s: %w", op, err)
	}
	c.met.commit(time.Since(start))
	r, _ := f.Response().(state.Result)
	return r, nil
}

// kick asks the leader loop to decide again at once (tasks finished: their
// resources are free).
func (c *Coordinator) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// maxDecisions is how many decisions the leader keeps proposed and not
// yet applied: it decides again while earlier ones commit (their tasks
// reserved, see state.Policy.Reserved), so assignment does not wait a
// commit round trip per decision.
const maxDecisions = 4

// decisions are the leader's decisions in flight.
type decisions struct {
	mu       sync.Mutex
	n        int               // proposed, not applied
	other    bool              // one of them holds more than assignments: decide again once it applied
	reserved map[string]string // their assigned tasks → worker
}

// lead runs the leader's decisions every tick, and at once when kicked,
// while this node leads.
func (c *Coordinator) lead(ctx context.Context) {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	var since time.Time
	leading := false
	var d decisions
	defer func() { // wait for the decisions in flight
		for {
			d.mu.Lock()
			n := d.n
			d.mu.Unlock()
			if n == 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
		if c.raft.State() != raft.Leader {
			leading = false
			continue
		}
		if !leading {
			// A new leader first applies a barrier, so it decides on every
			// entry the old leader committed.
			if err := c.raft.Barrier(c.cfg.ApplyTimeout).Error(); err != nil {
				continue
			}
			leading, since = true, c.cfg.Now().UTC()
			c.met.leaderChange()
			c.log.Info("leading", "term", c.raft.Stats()["term"])
			if _, err := c.apply(state.Command{Op: state.OpNode, Node: &state.Node{
				ID: c.cfg.NodeID, RaftAddr: string(c.trans.LocalAddr()), APIAddr: c.ln.Addr().String()}}); err != nil {
				c.log.Warn("recording this node", "err", err)
			}
		}
		d.mu.Lock()
		busy := d.n >= maxDecisions || d.other
		reserved := make(map[string]string, len(d.reserved))
		for k, v := range d.reserved {
			reserved[k] = v
		}
		d.mu.Unlock()
		if busy {
			continue // the one applied kicks
		}
		now := c.cfg.Now().UTC()
		// After a stall of the state (an Apply or a snapshot holding it
		// for over a quarter of the worker timeout: a million-task
		// layout), heartbeats that waited behind it have not committed
		// yet: the workers get a timeout from its end, as from a new
		// leader's start, before any is found dead. Else a layout held
		// for seconds expired every worker, and tasks failed past
		// MaxDeaths (BENCHMARKS.md, cluster/noop-1m).
		grace := since
		if st := c.fsm.stalledAt(); st.After(grace) {
			grace = st
		}
		var cmds []state.Command
		c.fsm.read(func(s *state.State) {
			cmds = s.Decide(now, state.Policy{WorkerTimeout: c.cfg.WorkerTimeout, LeaderSince: grace, OnTime: 10 * c.cfg.Tick,
				Reserved: reserved})
		})
		if len(cmds) == 0 {
			continue
		}
		// One log entry for the whole decision: each command is checked
		// again as it applies, in order.
		f, err := c.proposeAsync(state.Command{Op: state.OpBatch, At: now, Batch: cmds})
		if err != nil {
			continue
		}
		d.mu.Lock()
		d.n++
		if d.reserved == nil {
			d.reserved = map[string]string{}
		}
		other := false
		for _, cmd := range cmds {
			if cmd.Op == state.OpAssign {
				d.reserved[cmd.ID] = cmd.Worker
			} else {
				other = true
			}
		}
		d.other = d.other || other
		d.mu.Unlock()
		go func() {
			b, err := c.await(f, state.OpBatch, time.Now())
			d.mu.Lock()
			d.n--
			if other {
				d.other = false
			}
			for _, cmd := range cmds {
				if cmd.Op == state.OpAssign {
					delete(d.reserved, cmd.ID)
				}
			}
			d.mu.Unlock()
			c.kick()
			if err != nil {
				return
			}
			for i, cmd := range cmds {
				r := b.Batch[i]
				switch {
				case r.Err != nil:
					c.log.Debug("decision rejected", "op", cmd.Op, "id", cmd.ID, "err", r.Err)
				case cmd.Op == state.OpExpire:
					c.log.Warn("worker dead: its tasks are queued again", "worker", cmd.ID)
				case cmd.Op == state.OpAssign:
					c.met.assigned(c.fsm, cmd.ID, now)
				case cmd.Op == state.OpFire && r.Value != "":
					c.log.Info("schedule fired", "schedule", cmd.ID, "time", cmd.Time, "job", r.Value)
				}
			}
		}()
	}
}

// join asks the cluster at cfg.Join to add this node, until it does.
func (c *Coordinator) join(ctx context.Context) {
	cl := api.NewClient([]string{c.cfg.Join}, c.cfg.secret())
	cl.SetTLS(c.cfg.ClientTLS)
	cl.Retry = 0 // join retries itself
	req := api.JoinRequest{ID: c.cfg.NodeID, RaftAddr: string(c.trans.LocalAddr()), APIAddr: c.ln.Addr().String()}
	for {
		err := cl.Do(ctx, http.MethodPost, "/v1/cluster/join", req, nil)
		if err == nil {
			c.log.Info("joined", "via", c.cfg.Join)
			return
		}
		c.log.Warn("join failed; retrying", "via", c.cfg.Join, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// leaderAPI is the API address of the leader, from the replicated nodes.
func (c *Coordinator) leaderAPI() (string, error) {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return "", ErrNoLeader
	}
	var addr string
	c.fsm.read(func(s *state.State) {
		if n := s.Nodes[string(id)]; n != nil {
			addr = n.APIAddr
		}
	})
	if addr == "" {
		return "", fmt.Errorf("%w: leader %s has not published its API address yet", ErrNoLeader, id)
	}
	return addr, nil
}
