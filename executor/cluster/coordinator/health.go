package coordinator

import (
	"fmt"
	"net/http"
	"time"
)

// staleHeartbeats is how many Raft heartbeat timeouts a follower may go
// without a successful AppendEntries from a leader (raft.LastContact)
// before its state counts as stale: a follower that is cut off, or whose
// disk is full (its log store fails, so it stops acknowledging), keeps
// answering from a state that no longer moves.
const staleHeartbeats = 10

// stale reports whether this node's state may be out of date, and how
// long since it last heard from a leader. A leader is never stale here
// (it steps down when it loses its quorum).
func (c *Coordinator) stale() (time.Duration, bool) {
	if c.IsLeader() {
		return 0, false
	}
	hb := c.cfg.RaftHeartbeat
	if hb <= 0 {
		hb = time.Second // raft.DefaultConfig's
	}
	last := c.raft.LastContact()
	if last.IsZero() {
		last = c.started
	}
	age := time.Since(last)
	return age, age > staleHeartbeats*hb
}

// health answers GET /health: 200 when this node leads or has heard from
// a leader lately, 503 naming how long it has not (its reads are then
// forwarded to the leader, or refused).
func (c *Coordinator) health(rw http.ResponseWriter, r *http.Request) {
	age, stale := c.stale()
	if stale {
		writeError(rw, http.StatusServiceUnavailable, fmt.Errorf("%s is unhealthy: its state is stale, no leader heard from for %s (cut off from the other coordinators, or its disk refuses writes: see its log)", c.cfg.NodeID, age.Round(time.Second)))
		return
	}
	role := "follower"
	if c.IsLeader() {
		role = "leader"
	}
	writeJSON(rw, http.StatusOK, map[string]any{"node": c.cfg.NodeID, "role": role, "healthy": true, "last_contact_ms": age.Milliseconds()})
}
