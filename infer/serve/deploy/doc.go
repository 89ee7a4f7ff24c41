// Package deploy runs `sluice serve` as a deployment of replicas on a
// Sluice cluster. Each replica is a one-task plan job (Plan) whose
// registered map_batches function (ReplicaFunc, Register) starts a
// server on its worker's address and serves until the job is cancelled;
// the replica reports its URL and queue (requests running and waiting)
// through its worker's heartbeats (worker.Announce), and the leader
// coordinator answers them at GET /v1/deployments/{name}. Create submits
// a deployment's replicas; a Controller feeds a router.Router the serving
// replicas and scales the deployment between its bounds on their queue.
//
// A replica job's spec is a file in a directory the workers share (the
// plan reads it); the bounds are the plan's params, so that a controller
// anywhere reads them back from a replica's job.
//
// This package is unstable.
package deploy
