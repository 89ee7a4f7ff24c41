package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestLocalCommitAbort(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fsys := NewLocal()
	path := filepath.Join(dir, "out", "part-0.parquet")

	u, err := fsys.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(ctx); err == nil || err.Error() != "storage: "+path+": commit before Close" {
		t.Fatalf("Commit before Close: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	// Staged, not visible: Stat fails, Glob skips the staging file, ListUploads finds it.
	if _, err := fsys.Stat(ctx, path); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Stat before Commit: %v", err)
	}
	if infos, err := Glob(ctx, fsys, filepath.Join(dir, "out")); err != nil || len(infos) != 0 {
		t.Fatalf("Glob before Commit = %v, %v", infos, err)
	}
	pending, err := ListUploads(ctx, fsys, dir)
	if err != nil || len(pending) != 1 || pending[0].Path != path || !strings.Contains(pending[0].ID, ".part-0.parquet.sluice-tmp-") {
		t.Fatalf("ListUploads = %+v, %v", pending, err)
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(ctx); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "hello world" {
		t.Fatalf("committed %q", got)
	}
	if pending, _ := ListUploads(ctx, fsys, dir); len(pending) != 0 {
		t.Fatalf("staging file left after Commit: %+v", pending)
	}

	// A second write replaces the file on Commit, and an aborted one leaves
	// neither the file nor a staging file.
	writeFile(t, fsys, path, []byte("v2"))
	if got, _ := os.ReadFile(path); string(got) != "v2" {
		t.Fatalf("replaced with %q", got)
	}
	for _, closeFirst := range []bool{false, true} {
		u, err = fsys.Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("never"))
		if closeFirst {
			u.Close()
		}
		if err := u.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(ctx); err == nil || err.Error() != "storage: "+path+": commit: upload was aborted" {
			t.Fatalf("Commit after Abort: %v", err)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != "v2" {
		t.Fatalf("after Abort the file holds %q", got)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("files left after Abort: %v", entries)
	}
}

func TestLocalDanglingUpload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fsys := NewLocal()
	u, err := fsys.Create(ctx, filepath.Join(dir, "a", "b.csv"))
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("crash before commit"))
	u.Close()
	pending, err := ListUploads(ctx, Counting(fsys, &Counters{}), dir)
	if err != nil || len(pending) != 1 {
		t.Fatalf("ListUploads = %+v, %v", pending, err)
	}
	if err := fsys.AbortUpload(ctx, pending[0]); err != nil {
		t.Fatal(err)
	}
	if pending, _ := ListUploads(ctx, fsys, dir); len(pending) != 0 {
		t.Fatalf("after AbortUpload: %+v", pending)
	}
}

func TestLocalReadAt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.bin")
	data := pattern(7, 1000)
	fsys := NewLocal()
	writeFile(t, fsys, "file://"+path, data)
	f, err := fsys.Open(ctx, "file://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != 1000 || f.Path() != "file://"+path {
		t.Fatalf("Size, Path = %d, %q", f.Size(), f.Path())
	}
	buf := make([]byte, 100)
	if n, err := f.ReadAt(buf, 950); n != 50 || err != io.EOF || !bytes.Equal(buf[:n], data[950:]) {
		t.Fatalf("ReadAt past the end = %d, %v", n, err)
	}
	if n, err := f.ReadAt(buf, 10); n != 100 || err != nil || !bytes.Equal(buf, data[10:110]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	fi, err := fsys.Stat(ctx, path)
	if err != nil || fi.Size != 1000 || fi.Path != path {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	infos, err := fsys.List(ctx, path)
	if err != nil || len(infos) != 1 || infos[0].Path != path {
		t.Fatalf("List(file) = %+v, %v", infos, err)
	}
	if err := fsys.Delete(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Delete(ctx, path); err != nil {
		t.Fatalf("Delete of a missing file: %v", err)
	}
}

func TestLocalErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fsys := NewLocal()
	writeFile(t, fsys, filepath.Join(dir, "file"), []byte("x"))

	missing := filepath.Join(dir, "missing")
	_, err := fsys.Open(ctx, missing)
	if err == nil || err.Error() != "storage: "+missing+": no such file" || !errors.Is(err, ErrNotExist) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing): %v", err)
	}
	_, err = fsys.Stat(ctx, missing)
	if err == nil || err.Error() != "storage: "+missing+": no such file" || !errors.Is(err, ErrNotExist) {
		t.Errorf("Stat(missing): %v", err)
	}
	if infos, err := fsys.List(ctx, missing); err != nil || len(infos) != 0 {
		t.Errorf("List(missing) = %v, %v", infos, err)
	}
	_, err = fsys.Open(ctx, dir)
	if err == nil || err.Error() != "storage: "+dir+": is a directory: use List or Glob to read the files in it" {
		t.Errorf("Open(dir): %v", err)
	}
	if err := fsys.Delete(ctx, dir); err == nil || err.Error() != "storage: "+dir+": delete: is a directory" {
		t.Errorf("Delete(dir): %v", err)
	}
	_, err = fsys.Create(ctx, dir)
	if err == nil || err.Error() != "storage: "+dir+": create: a directory exists at the destination" || !errors.Is(err, ErrExist) {
		t.Errorf("Create(dir): %v", err)
	}
	under := filepath.Join(dir, "file", "x")
	_, err = fsys.Create(ctx, under)
	want := "storage: " + under + ": create directory " + filepath.Join(dir, "file") + ": not a directory"
	if err == nil || err.Error() != want {
		t.Errorf("Create under a file:\n got %v\nwant %s", err, want)
	}
	// A destination that became a directory between Create and Commit.
	path := filepath.Join(dir, "later")
	u, err := fsys.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	os.Mkdir(path, 0o755)
	if err := u.Commit(ctx); err == nil || err.Error() != "storage: "+path+": commit: a directory exists at the destination" || !errors.Is(err, ErrExist) {
		t.Errorf("Commit onto a directory: %v", err)
	}
	u.Abort(ctx)
}

// TestLocalDiskFull fills the "disk" by writing the staging file to
// /dev/full: the error names the destination and unwraps to ENOSPC.
func TestLocalDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	fsys := &Local{createTemp: func(string) (*os.File, error) { return os.OpenFile("/dev/full", os.O_WRONLY, 0) }}
	path := filepath.Join(t.TempDir(), "out.csv")
	u, err := fsys.Create(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(context.Background())
	_, err = u.Write([]byte("data"))
	want := "storage: " + path + ": write /dev/full: no space left on device"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write to a full disk:\n got %v\nwant %s", err, want)
	}
}

// TestLocalDiskFullTmpfs fills a real 64 KiB tmpfs. It needs to mount one
// (root, and a kernel that lets this process mount), and skips otherwise.
func TestLocalDiskFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	ctx := context.Background()
	fsys := NewLocal()
	path := filepath.Join(dir, "big.bin")
	u, err := fsys.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Write(make([]byte, 1<<20))
	if err == nil {
		err = u.Close()
	}
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "storage: "+path+": write ") || !strings.HasSuffix(err.Error(), ": no space left on device") {
		t.Fatalf("writing 1 MiB to a 64 KiB tmpfs: %v", err)
	}
	if err := u.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
