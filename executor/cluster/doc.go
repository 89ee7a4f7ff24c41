// Package cluster is Sluice's distributed executor: coordinators that
// replicate jobs, tasks, workers and schedules with hashicorp/raft, and
// workers that run a plan's tasks and move Arrow blocks between them. This
// package holds only this overview; the code is in its subpackages.
//
// A job is submitted as a plan. Its first task (stage "plan") runs on a
// worker, which compiles the plan and lays it out into stages of tasks
// (dist.Plan); the finish report carries the stages and the layout, and
// the state appends them and a commit stage. Each exec task runs one task
// of the physical plan (dist.Run), reading its input blocks from the
// workers that made them and keeping its output blocks; each task of the
// last stage writes its files and their manifest under its attempt's
// staging directory (commit.AttemptDir), and the commit task reads the
// winning attempts' manifests and publishes their files with
// commit.Publish (or, when the job failed or was cancelled, removes them),
// the protocol the local executor's writes use too (package
// executor/commit). A worker that dies takes its
// kept blocks with it: the tasks that made blocks still to be read run
// again (lineage), and a task that cannot fetch an input reports it lost.
//
//   - state: the deterministic replicated state machine (Apply, one
//     handler per command) and the leader's scheduler (Decide: assignments,
//     worker expiry, schedule firing), pure and stepped by tests.
//   - coordinator: a Raft node (TCP transport, fsync-ed bolt log, file
//     snapshots, HMAC or TLS Raft connections, joins) that serves the
//     HTTP/JSON API, and while it leads proposes Decide's commands in
//     batches.
//   - worker: registers, heartbeats (long-polled), runs its assigned tasks
//     one goroutine each, reports starts and finishes in batches, serves
//     its blocks over Arrow Flight and stops tasks no longer assigned to it.
//   - api: the wire types and the client the CLI and the workers use.
//   - dist: cutting a plan into stages at its exchanges (Plan, Layout)
//     and running one task of it (Run), a sink task into its staging
//     directory.
//   - blocks: the workers' block store (spilling to disk under memory
//     pressure) and its Flight server and client.
//
// These packages are unstable.
package cluster
