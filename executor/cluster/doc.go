// Package cluster is Sluice's control plane: coordinators that replicate
// jobs, tasks, workers and schedules with hashicorp/raft, and workers that
// run tasks. This package is unstable: the task model is final, but in this
// version one task runs a whole plan; splitting plans into stages and
// moving blocks between workers come next.
//
//   - state: the deterministic replicated state machine and the leader's
//     scheduling decisions (pure, stepped by tests).
//   - coordinator: a Raft node with its HTTP/JSON API.
//   - worker: registers, heartbeats, runs assigned tasks, reports results.
//   - api: the wire types and the client the CLI and workers use.
package cluster
