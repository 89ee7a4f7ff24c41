// Package storage is Sluice's one file-system interface: every path a user
// gives (a local path or an s3:// URL) is opened through an FS.
//
// Writes are staged: Create returns an Upload whose bytes are not visible at
// the destination until Commit is called, so the engine can publish a job's
// output all at once, or not at all (Abort).
//
// # Choosing an FS
//
// [For] picks the FS by the path's scheme: [S3] for "s3://bucket/key",
// [Local] for "file://..." and for plain paths. [Join] builds paths of either
// kind, and [Glob] expands patterns ("s3://b/logs/**/*.parquet") with one
// listing of their literal prefix, skipping hidden files ("_SUCCESS",
// ".name.sluice-tmp-...") as Spark does when it reads a directory.
//
// # S3
//
// The S3 FS is configured the AWS way (environment, shared config files,
// profiles, instance roles; see [NewS3]); AWS_ENDPOINT_URL_S3 points it at an
// S3-compatible server such as MinIO. It reads with ranged GETs, resumed when
// a connection drops, and writes with parallel multipart uploads that hold at
// most Concurrency+1 parts in memory. Errors name the s3:// URL and say what
// to do: a missing bucket, refused credentials, an unreachable endpoint. The
// package's tests run against a real MinIO server started by
// [github.com/sluicehq/sluice/storage/miniotest].
//
// # Errors
//
// Every error names the path or URL ("storage: s3://b/k: no such object"),
// and unwraps to [ErrNotExist] or [ErrExist] where those apply, and to the
// cause (syscall.ENOSPC for a full disk, the SDK's error for S3).
//
// # Optional abilities
//
// An FS that stages uploads somewhere a crash can leave them (both of this
// package's) is an [UploadLister]; [ListUploads] finds the pending uploads,
// also through a [Counting] wrapper, which counts bytes and calls.
//
// This package is young: its API may still change.
package storage
