package storage

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Renamer is a file system that moves a file without copying its bytes
// through the caller.
type Renamer interface {
	Rename(ctx context.Context, from, to string) error
}

// Rename moves the file from to the path to (replacing a file there) within
// fsys: with the file system's own move when it has one (a local rename;
// an S3 server-side copy, then delete), else by copying through a staged
// write and deleting from. It is safe to retry: when from is gone and to
// exists, an earlier Rename got there, and Rename returns nil.
func Rename(ctx context.Context, fsys FS, from, to string) error {
	if r, ok := fsys.(Renamer); ok {
		err := r.Rename(ctx, from, to)
		if errors.Is(err, ErrNotExist) {
			if _, serr := fsys.Stat(ctx, to); serr == nil {
				return nil
			}
		}
		return err
	}
	src, err := fsys.Open(ctx, from)
	if errors.Is(err, ErrNotExist) {
		if _, serr := fsys.Stat(ctx, to); serr == nil {
			return nil
		}
	}
	if err != nil {
		return err
	}
	defer src.Close()
	u, err := fsys.Create(ctx, to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(u, io.NewSectionReader(src, 0, src.Size())); err != nil {
		_ = u.Close()
		_ = u.Abort(context.WithoutCancel(ctx))
		return newError(to, "copy from "+from+": "+err.Error(), err)
	}
	if err := u.Close(); err != nil {
		_ = u.Abort(context.WithoutCancel(ctx))
		return err
	}
	if err := u.Commit(ctx); err != nil {
		_ = u.Abort(context.WithoutCancel(ctx))
		return err
	}
	return fsys.Delete(ctx, from)
}

// Rename renames from to to, creating to's directory.
func (l *Local) Rename(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return newError(from, "rename: "+err.Error(), err)
	}
	dest := localPath(to)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return osError(to, "create directory", err)
	}
	if err := os.Rename(localPath(from), dest); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return notExist(from, "no such file", err)
		}
		return osError(from, "rename to "+to, err)
	}
	return nil
}

// maxCopy is the largest object one CopyObject call copies.
const maxCopy = 5 << 30

// Rename copies the object server-side (CopyObject), then deletes from.
// Objects over 5 GiB are copied through the caller.
func (s *S3) Rename(ctx context.Context, from, to string) error {
	fb, fk, err := parseS3Object(from)
	if err != nil {
		return err
	}
	tb, tk, err := parseS3Object(to)
	if err != nil {
		return err
	}
	info, err := s.Stat(ctx, from)
	if err != nil {
		return err
	}
	if info.Size > maxCopy {
		return Rename(ctx, struct{ FS }{s}, from, to) // hides Rename: copies
	}
	source := fb + "/" + strings.ReplaceAll(url.PathEscape(fk), "%2F", "/")
	if _, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &tb, Key: &tk, CopySource: &source}); err != nil {
		return s.mapError(to, "copy from "+from, tb, err)
	}
	return s.Delete(ctx, from)
}
