package storage

import (
	"context"
	"time"
)

// PendingUpload is a staged write that was neither committed nor aborted:
// what a crashed or killed writer leaves behind (an S3 multipart upload that
// still costs storage, a local staging file).
type PendingUpload struct {
	Path      string    // the destination the write was for
	ID        string    // the S3 upload ID, or the local staging file's path
	Initiated time.Time // when the write started (a local file's last write)
}

// UploadLister is an FS that can find and discard pending uploads. Both
// methods are safe for concurrent use. Aborting an upload that a live writer
// still owns makes that writer's Commit fail, so clean up only uploads older
// than any running job.
type UploadLister interface {
	// ListUploads returns the pending uploads whose destination is under prefix.
	ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error)
	// AbortUpload discards one pending upload; a missing one is not an error.
	AbortUpload(ctx context.Context, u PendingUpload) error
}

// ListUploads returns the pending uploads under prefix if fsys (or the FS it
// wraps, see [Counting]) is an UploadLister, and an error otherwise.
func ListUploads(ctx context.Context, fsys FS, prefix string) ([]PendingUpload, error) {
	for {
		if ul, ok := fsys.(UploadLister); ok {
			return ul.ListUploads(ctx, prefix)
		}
		w, ok := fsys.(interface{ Unwrap() FS })
		if !ok {
			return nil, newError(prefix, "list uploads: this file system does not stage uploads")
		}
		fsys = w.Unwrap()
	}
}
