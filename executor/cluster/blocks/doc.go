// Package blocks keeps the Arrow record batches ("blocks") that a worker's
// tasks produce and moves them between workers over Arrow Flight.
//
// The model:
//
//   - A task that produces output calls Store.Put on its own worker's
//     Store, once per output block, under an id that names the job, stage,
//     task, attempt and partition ("j-000012/s2/t7/a1/p3"). A block is a
//     list of batches of one schema, possibly none.
//   - The worker serves its Store with a Server. Another worker's task that
//     consumes the block calls Client.Fetch with the producer's address and
//     the id; a task on the producing worker itself calls Store.Get.
//   - Blocks are freed only when the caller says so: Store.Delete for one
//     block, Store.DeletePrefix for a whole attempt, task, stage or job. The
//     store never drops a block on its own; under memory pressure it spills
//     least-recently-used blocks to disk as Arrow IPC stream files and
//     reads them back on each Get.
//   - A consumer that gets an error wrapping ErrNotFound (the worker does
//     not have the block: it restarted, or the block was freed) or
//     ErrUnreachable (the worker is gone) treats the block as lost and has
//     it recomputed from its lineage.
//
// Ownership of batches follows Arrow's reference counts: Put retains what it
// stores, so the caller still releases its own references; Get and Fetch
// return references the caller must release.
//
// On the wire: DoGet with the block id as the ticket; the server cuts
// batches into slices of about 4 MiB, one gRPC message each, and both ends
// accept messages of up to 512 MiB for rows that cannot be cut that small.
// Connections are plain TCP, one per peer address, with keepalive pings so
// that a vanished peer fails a transfer; callers that need a bound on a
// fetch give it a context deadline.
//
// The optional bearer token is the cluster's shared token: a Server given
// one refuses calls without "authorization: Bearer <token>" metadata, which
// a Client made with the same token sends.
//
// This package is unstable: the wire format is plain Flight DoGet with the
// block id as the ticket, but the options and Stats will grow.
package blocks
