// Package raftlog is a durable Raft log and stable store for
// hashicorp/raft made for the coordinator's write pattern: batches of
// entries appended, read back soon by the replication goroutines, and the
// head dropped after each snapshot.
//
// A StoreLogs batch is encoded into one buffer and written with one write
// and one fdatasync; raft-boltdb rewrites B+tree pages, its freelist and a
// meta page with two fdatasyncs per batch and a msgpack encoding per entry
// (BENCHMARKS.md, cluster/noop-100k). The log is a directory of segment
// files named by their first index, each a run of records
// (length, CRC-32C, index, term, type, append time, data, extensions).
// Open reads every segment and drops a torn record at the end of the last
// one (a write the crash cut short was never acknowledged); a bad record
// elsewhere is an error. The stable store (term, vote) is a small file
// replaced by write, fsync and rename.
//
// The package is new and unstable: the coordinator uses it with
// --log-store raftlog; raft-boltdb stays the default.
package raftlog
