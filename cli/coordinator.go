package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/sluicehq/sluice/executor/cluster/coordinator"
)

// Coordinator is `sluice coordinator`: its flags fill a
// coordinator.Config, and Run serves as a Raft node of the cluster with
// its HTTP API until ctx ends.
type Coordinator struct {
	Config                coordinator.Config
	tokenFile, secretFile string
	tls                   TLSFlags
}

// Flags declares the coordinator's flags in fs.
func (co *Coordinator) Flags(fs *flag.FlagSet) {
	*co = Coordinator{Config: coordinator.DefaultConfig()}
	c := &co.Config
	fs.StringVar(&c.NodeID, "node-id", "", "this node's id, unique in the cluster (n1)")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for the Raft log, stable store and snapshots")
	fs.StringVar(&c.RaftAddr, "raft-addr", "", "host:port of the Raft transport (reachable by the other coordinators)")
	fs.StringVar(&c.APIAddr, "api-addr", "", "host:port of the HTTP API")
	fs.BoolVar(&c.Bootstrap, "bootstrap", false, "start a new cluster with this node as its first voter")
	fs.StringVar(&c.Join, "join", "", "join the cluster through the coordinator API at this URL")
	fs.StringVar(&co.tokenFile, "token-file", "", "file holding the bearer token of clients and workers (or SLUICE_TOKEN)")
	fs.StringVar(&co.secretFile, "cluster-secret-file", "", "file holding the cluster secret, known to coordinators only: authenticates Raft and joins, derives the workers' credentials (or SLUICE_CLUSTER_SECRET); needed to --join. Without it a --bootstrap node generates one into DATA_DIR/cluster-secret")
	fs.DurationVar(&c.WorkerTimeout, "worker-timeout", c.WorkerTimeout, "declare a worker dead after this long without a heartbeat")
	fs.StringVar(&c.LogStore, "log-store", "bolt", "the durable Raft log: bolt (raft-boltdb), raftlog (one write and fdatasync per batch) or wal (raft-wal)")
	co.tls.Declare(fs, true)
}

// Run starts the coordinator from the parsed flags, logging to stderr,
// and shuts it down when ctx ends.
func (co *Coordinator) Run(ctx context.Context, stderr io.Writer) error {
	c := co.Config
	if !c.Bootstrap && c.Join == "" && !coordinator.HasState(c.DataDir) {
		return errors.New("want --bootstrap (a new cluster) or --join API_URL (an existing one)")
	}
	var err error
	if c.Token, err = LoadToken(co.tokenFile); err != nil {
		return err
	}
	if c.Secret, err = LoadSecret(co.secretFile); err != nil {
		return err
	}
	if c.TLS, c.ClientTLS, err = co.tls.Configs(); err != nil {
		return err
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	c.RaftLog = stderr
	node, err := coordinator.Start(ctx, c)
	if err != nil {
		return err
	}
	c.Logger.Info("coordinator started", "node", c.NodeID, "api", node.URL(), "raft", c.RaftAddr)
	<-ctx.Done()
	return node.Shutdown()
}

// RunCoordinator parses args as `sluice coordinator`'s flags and runs the
// coordinator until ctx ends.
func RunCoordinator(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var co Coordinator
	co.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("coordinator: unexpected arguments %q: the coordinator takes flags only", fs.Args())
	}
	return co.Run(ctx, stderr)
}
