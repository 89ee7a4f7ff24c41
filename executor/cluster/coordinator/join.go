package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// A coordinator joins in two steps, as etcd's learners do:
//
//  1. POST /v1/cluster/join (the cluster secret): the leader dials the
//     joiner's Raft address and makes it prove itself there (its
//     certificate of the cluster's CA with TLS, the cluster-secret
//     handshake without), then adds it as a non-voter, which takes the log
//     but counts for no quorum;
//  2. once the joiner holds the configuration that added it (and so the
//     log up to it) and has applied what it knows committed, it asks the leader to promote it (POST
//     /v1/cluster/promote), and becomes a voter.
//
// A node that cannot prove itself is never added; one that cannot take
// the log (a certificate another CA signed) never becomes a voter, so it
// can never cost the cluster its quorum.

// ErrJoinProof is what a join whose Raft address failed to prove itself
// answers.
var ErrJoinProof = errors.New("coordinator: join refused: the joining node's Raft address did not prove itself")

// proveRaft dials addr as Raft would and runs the authentication: a TLS
// handshake whose peer certificate the cluster's CA must have signed, or
// the cluster-secret handshake.
func (c *Coordinator) proveRaft(addr string) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	l := c.layer
	if l.client != nil && l.server != nil {
		conn, err := tls.DialWithDialer(d, "tcp", addr, l.client)
		if err != nil {
			return fmt.Errorf("%w: TLS at %s (its certificate must be signed by --tls-ca): %w", ErrJoinProof, addr, err)
		}
		return conn.Close()
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: dial %s: %w", ErrJoinProof, addr, err)
	}
	defer conn.Close()
	if err := clientHandshake(conn, l.key); err != nil {
		return fmt.Errorf("%w: %w", ErrJoinProof, err)
	}
	return nil
}

func (c *Coordinator) joinNode(rw http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if !decode(rw, r, &req) {
		return
	}
	if req.ID == "" || req.RaftAddr == "" {
		writeError(rw, http.StatusBadRequest, errors.New("join: want id and raft_addr"))
		return
	}
	if err := c.proveRaft(req.RaftAddr); err != nil {
		c.log.Warn("join refused", "id", req.ID, "raft", req.RaftAddr, "err", err)
		writeError(rw, http.StatusForbidden, fmt.Errorf("join %s: %w", req.ID, err))
		return
	}
	// A server that is already a voter stays one (raft keeps its suffrage).
	f := c.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, c.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		writeError(rw, http.StatusServiceUnavailable, fmt.Errorf("add non-voter %s: %w", req.ID, err))
		return
	}
	c.log.Info("non-voter added; it becomes a voter once it has caught up", "id", req.ID, "raft", req.RaftAddr)
	c.propose(rw, state.Command{Op: state.OpNode, Node: &state.Node{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}}, "node")
}

// promoteNode makes a caught-up non-voter a voter.
func (c *Coordinator) promoteNode(rw http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if !decode(rw, r, &req) {
		return
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		writeError(rw, http.StatusServiceUnavailable, err)
		return
	}
	for _, sv := range f.Configuration().Servers {
		if string(sv.ID) != req.ID {
			continue
		}
		if sv.Suffrage == raft.Voter {
			writeJSON(rw, http.StatusOK, api.IDResponse{ID: req.ID, Kind: "node"})
			return
		}
		if err := c.raft.AddVoter(sv.ID, sv.Address, 0, c.cfg.ApplyTimeout).Error(); err != nil {
			writeError(rw, http.StatusServiceUnavailable, fmt.Errorf("promote %s: %w", req.ID, err))
			return
		}
		c.log.Info("voter added", "id", req.ID, "raft", sv.Address)
		writeJSON(rw, http.StatusOK, api.IDResponse{ID: req.ID, Kind: "node"})
		return
	}
	writeError(rw, http.StatusNotFound, fmt.Errorf("promote %s: not in the cluster's configuration: join it first", req.ID))
}

// promoteSelf asks the leader to make this node a voter whenever it is a
// non-voter that has applied the log up to the configuration that added
// it (after a join, or after a restart in the middle of one).
func (c *Coordinator) promoteSelf(ctx context.Context) {
	t := time.NewTicker(max(c.cfg.Tick, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.markInitialized() // once a join replicated to it
		if !c.caughtUpNonvoter() {
			continue
		}
		addr, err := c.leaderAPI()
		if err != nil {
			continue
		}
		cl := api.NewClient([]string{c.scheme() + "://" + addr}, c.cfg.secret())
		cl.SetTLS(c.cfg.ClientTLS)
		cl.Retry = 0
		if err := cl.Do(ctx, http.MethodPost, "/v1/cluster/promote", api.JoinRequest{ID: c.cfg.NodeID}, nil); err != nil {
			c.log.Warn("promotion to voter failed; retrying", "leader", addr, "err", err)
		}
	}
}

func (c *Coordinator) caughtUpNonvoter() bool {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	nonvoter := false
	for _, sv := range f.Configuration().Servers {
		if string(sv.ID) == c.cfg.NodeID {
			nonvoter = sv.Suffrage == raft.Nonvoter
		}
	}
	if !nonvoter {
		return false
	}
	// Its log holds the configuration entry that added it, so it has every
	// entry the leader had then; it has caught up once it has applied all
	// that it knows committed.
	commit, err := strconv.ParseUint(c.raft.Stats()["commit_index"], 10, 64)
	return err == nil && commit > 0 && c.raft.AppliedIndex() >= commit
}
