package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/storage"
)

// files lists every file under dir (hidden ones too), relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// visibleFiles are the files a scan of dir reads, and its _SUCCESS.
func visibleFiles(t *testing.T, dir string) []string {
	var out []string
	for _, f := range files(t, dir) {
		if f == commit.ManifestName || !strings.HasPrefix(f, "_") && !strings.HasPrefix(f, ".") && !strings.Contains(f, "/_") && !strings.Contains(f, "/.") {
			out = append(out, f)
		}
	}
	return out
}

func cfgFaulty(f *storage.Faults) local.Config {
	cfg := local.DefaultConfig()
	cfg.BatchRows = 100
	cfg.Concurrency = 3
	if f != nil {
		cfg.FS = func(p string) (storage.FS, error) {
			fs, err := storage.For(p)
			return storage.Faulty(fs, f), err
		}
	}
	return cfg
}

func count(t *testing.T, dest string) int64 {
	t.Helper()
	n, err := dataset.ReadParquet(dest).Configure(cfgFaulty(nil)).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func manifestRows(t *testing.T, dest string) int64 {
	t.Helper()
	m, err := commit.ReadManifest(context.Background(), storage.NewLocal(), filepath.Join(dest, commit.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	return m.Rows
}

// A write whose publish fails at any one step (a data file's commit, moving
// an old file aside, the _SUCCESS's commit) leaves the visible files and the
// _SUCCESS as they were, and the same write retried then gives the rows the
// manifest counts (the append after a full disk at _SUCCESS held
// 5,185 rows for a _SUCCESS of 2,595). A failure deleting the replaced files
// after _SUCCESS fails nothing and leaves nothing visible.
func TestWriteFailsAtEveryPublishStep(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []dataset.WriteMode{dataset.Append, dataset.Overwrite} {
		for _, parts := range []bool{false, true} {
			var steps int
			for step := 1; ; step++ {
				name := fmt.Sprintf("%v/partitioned=%v/step%d", mode, parts, step)
				dest := filepath.Join(t.TempDir(), "out")
				opts := dataset.WriteOptions{Mode: mode, RowsPerFile: 40}
				src := dataset.Range(300)
				if parts {
					src = src.WithColumn("k", "id % 3")
					opts.PartitionBy = []string{"k"}
				}
				if _, err := src.Configure(cfgFaulty(nil)).WriteParquet(ctx, dest, opts); err != nil {
					t.Fatal(err)
				}
				before := visibleFiles(t, dest)
				manifest, _ := os.ReadFile(filepath.Join(dest, commit.ManifestName))

				var n atomic.Int64
				var failedAt atomic.Value
				fail := func(what string) error {
					if n.Add(1) == int64(step) {
						failedAt.Store(what)
						return fmt.Errorf("injected failure at step %d (%s)", step, what)
					}
					return nil
				}
				faults := &storage.Faults{
					Commit: func(p string, _ int64) error { return fail("commit " + p) },
					Rename: func(from, to string) error { return fail("rename " + from) },
					Delete: func(p string) error { return fail("delete " + p) },
				}
				src = dataset.Range(200)
				if parts {
					src = src.WithColumn("k", "id % 3")
				}
				_, err := src.Configure(cfgFaulty(faults)).WriteParquet(ctx, dest, opts)
				what, _ := failedAt.Load().(string)
				if what == "" {
					if err != nil {
						t.Fatalf("%s: no fault injected, yet %v", name, err)
					}
					steps = step - 1
					break
				}
				want := int64(300)
				switch {
				case err == nil:
					// Only the trash's cleanup may fail without failing the write.
					if !strings.HasPrefix(what, "delete ") || !strings.Contains(what, commit.TrashName) {
						t.Fatalf("%s: the write succeeded although %s failed", name, what)
					}
					if mode == dataset.Append {
						want = 500
					} else {
						want = 200
					}
				default:
					if !strings.Contains(err.Error(), "injected failure") {
						t.Fatalf("%s: error %v does not say what failed", name, err)
					}
					if got := visibleFiles(t, dest); !slices.Equal(got, before) {
						t.Fatalf("%s: after a failure at %s the destination shows\n%v\nwas\n%v", name, what, got, before)
					}
					if again, _ := os.ReadFile(filepath.Join(dest, commit.ManifestName)); string(again) != string(manifest) {
						t.Fatalf("%s: a failure at %s changed _SUCCESS", name, what)
					}
				}
				if got := count(t, dest); got != want || manifestRows(t, dest) != want {
					t.Fatalf("%s: after a failure at %s: %d rows, _SUCCESS says %d, want %d", name, what, got, manifestRows(t, dest), want)
				}
				if err == nil {
					continue
				}
				// Retried without faults, the write lands once.
				if _, err := src.Configure(cfgFaulty(nil)).WriteParquet(ctx, dest, opts); err != nil {
					t.Fatalf("%s: retry: %v", name, err)
				}
				want = 200
				if mode == dataset.Append {
					want = 500
				}
				if got := count(t, dest); got != want || manifestRows(t, dest) != want {
					t.Fatalf("%s: retried after a failure at %s: %d rows, _SUCCESS says %d, want %d", name, what, got, manifestRows(t, dest), want)
				}
				for _, f := range files(t, dest) {
					if strings.HasPrefix(f, commit.TrashName) || strings.Contains(f, ".sluice-tmp-") {
						t.Fatalf("%s: %s left behind", name, f)
					}
				}
			}
			if steps < 5 {
				t.Fatalf("%v partitioned=%v: only %d publish steps seen", mode, parts, steps)
			}
			t.Logf("%v partitioned=%v: a failure injected at each of %d publish steps", mode, parts, steps)
		}
	}
}

// An overwrite deletes only what a Sluice write published: a directory
// holding files no _SUCCESS lists is refused, naming them, and left alone.
func TestOverwriteRefusesForeignFiles(t *testing.T) {
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "out")
	cfg := cfgFaulty(nil)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dest, "notes.txt")
	if err := os.WriteFile(mine, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := dataset.Range(10).Configure(cfg).WriteParquet(ctx, dest, dataset.WriteOptions{Mode: dataset.Overwrite})
	if !errors.Is(err, storage.ErrExist) || !strings.Contains(err.Error(), mine) || !strings.Contains(err.Error(), "no _SUCCESS") {
		t.Fatalf("overwrite of a directory Sluice did not write: %v", err)
	}
	if got := files(t, dest); !slices.Equal(got, []string{"notes.txt"}) {
		t.Fatalf("a refused overwrite left %v", got)
	}
	// Beside a _SUCCESS that does not list it, too.
	if err := os.Remove(mine); err != nil {
		t.Fatal(err)
	}
	if _, err := dataset.Range(10).Configure(cfg).WriteParquet(ctx, dest, dataset.WriteOptions{Mode: dataset.Overwrite}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = dataset.Range(10).Configure(cfg).WriteParquet(ctx, dest, dataset.WriteOptions{Mode: dataset.Overwrite})
	if !errors.Is(err, storage.ErrExist) || !strings.Contains(err.Error(), mine) || !strings.Contains(err.Error(), "does not list") {
		t.Fatalf("overwrite beside a file the _SUCCESS does not list: %v", err)
	}
	if data, err := os.ReadFile(mine); err != nil || string(data) != "keep me" {
		t.Fatalf("%s: %q %v", mine, data, err)
	}
}

// A destination that overlaps a source is refused naming both: writing
// over the source with overwrite and a filter deleted the source, and a
// destination inside the source was read back by the next run.
func TestWriteRefusesOverlap(t *testing.T) {
	ctx := context.Background()
	cfg := cfgFaulty(nil)
	src := filepath.Join(t.TempDir(), "src")
	if _, err := dataset.Range(2000).Configure(cfg).WriteParquet(ctx, src, dataset.WriteOptions{RowsPerFile: 500}); err != nil {
		t.Fatal(err)
	}
	before := files(t, src)
	for _, dest := range []string{src, filepath.Join(src, "out"), filepath.Dir(src), src + "/../src/"} {
		for _, mode := range []dataset.WriteMode{dataset.Overwrite, dataset.Append} {
			_, err := dataset.ReadParquet(src).Filter("id < 100").Configure(cfg).WriteParquet(ctx, dest, dataset.WriteOptions{Mode: mode})
			if err == nil || !strings.Contains(err.Error(), dest) || !strings.Contains(err.Error(), src) || !strings.Contains(err.Error(), "overlaps") && !strings.Contains(err.Error(), "holds") {
				t.Fatalf("write %s (%v) from %s: %v", dest, mode, src, err)
			}
		}
	}
	if got := files(t, src); !slices.Equal(got, before) || count(t, src) != 2000 {
		t.Fatalf("the source changed: %v, was %v", got, before)
	}
	// A sibling directory is fine.
	if _, err := dataset.ReadParquet(src).Filter("id < 100").Configure(cfg).WriteParquet(ctx, src+"2", dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A write that fails leaves no directory it made, partition directories
// included.
func TestFailedWriteLeavesNoDirectory(t *testing.T) {
	ctx := context.Background()
	top := filepath.Join(t.TempDir(), "new")
	dest := filepath.Join(top, "out")
	faults := &storage.Faults{Commit: func(p string, n int64) error {
		if strings.HasSuffix(p, commit.ManifestName) {
			return errors.New("injected: no space left on device")
		}
		return nil
	}}
	_, err := dataset.Range(300).WithColumn("k", "id % 3").Configure(cfgFaulty(faults)).
		WriteParquet(ctx, dest, dataset.WriteOptions{PartitionBy: []string{"k"}})
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(top); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed write left %s (%v): %v", top, err, files(t, top))
	}
}
