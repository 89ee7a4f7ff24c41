package storage

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// testRename moves a file, checks the bytes arrived and the source is
// gone, that a retry after success is not an error, and that a missing
// source with no destination is ErrNotExist.
func testRename(t *testing.T, fsys FS, dir string) {
	ctx := context.Background()
	data := pattern(7, 3<<20+17)
	from, to := dir+"/_staging/j1/t0-a1/part 0.parquet", dir+"/out/part-00000.parquet"
	writeFile(t, fsys, from, data)
	if err := Rename(ctx, fsys, from, to); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if got := readFile(t, fsys, to); !bytes.Equal(got, data) {
		t.Fatalf("moved file differs: %d bytes, want %d", len(got), len(data))
	}
	if _, err := fsys.Stat(ctx, from); !errors.Is(err, ErrNotExist) {
		t.Fatalf("source after rename: %v", err)
	}
	if err := Rename(ctx, fsys, from, to); err != nil {
		t.Fatalf("retried Rename: %v", err)
	}
	err := Rename(ctx, fsys, dir+"/nope", dir+"/nope2")
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing source: %v", err)
	}
}

func TestRenameLocal(t *testing.T) {
	testRename(t, NewLocal(), filepath.ToSlash(t.TempDir()))
}

// TestRenameCopy runs the copying path (a file system without Renamer).
func TestRenameCopy(t *testing.T) {
	testRename(t, Faulty(NewLocal(), &Faults{}), filepath.ToSlash(t.TempDir()))
}

func TestRenameS3(t *testing.T) {
	_, fsys, bucket := startS3(t, DefaultS3Options())
	testRename(t, fsys, "s3://"+bucket+"/ds")
}
