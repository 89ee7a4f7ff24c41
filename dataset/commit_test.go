package dataset_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/storage"
)

// TestCommit runs the commit protocol of the write operator on local disk;
// TestS3/commit runs the same against MinIO.
func TestCommit(t *testing.T) {
	testCommit(t, t.TempDir()+"/out/")
}

// destFiles lists the visible files under dest (names relative to it, sorted).
func destFiles(t *testing.T, fs storage.FS, dest string) []string {
	t.Helper()
	infos, err := fs.List(context.Background(), dest)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, strings.TrimPrefix(i.Path, dest))
	}
	slices.Sort(out)
	return out
}

// readManifest reads dest's _SUCCESS, raw and parsed.
func readManifest(t *testing.T, fs storage.FS, dest string) ([]byte, commit.Manifest) {
	t.Helper()
	f, err := fs.Open(context.Background(), dest+commit.ManifestName)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, f.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	var m commit.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return data, m
}

// manifestNames is the manifest's files relative to dest and the manifest
// itself, sorted: what destFiles should find.
func manifestNames(m commit.Manifest, dest string) []string {
	out := []string{commit.ManifestName}
	for _, f := range m.Files {
		out = append(out, strings.TrimPrefix(f.Path, dest))
	}
	slices.Sort(out)
	return out
}

// testCommit checks, at dest (a directory ending in a slash, local or
// s3://), that mode error refuses an existing destination, append's manifest
// lists the old files and the new, an overwrite whose commit fails part way
// leaves the old files and the old manifest as they were, and a successful
// overwrite writes its _SUCCESS before it deletes the old files.
func testCommit(t *testing.T, dest string) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	fs, err := storage.For(dest)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int64 {
		t.Helper()
		n, err := dataset.ReadParquet(dest).Configure(cfg).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	noUploads := func() {
		t.Helper()
		ups, err := storage.ListUploads(ctx, fs, dest)
		if err != nil || len(ups) != 0 {
			t.Fatalf("pending uploads %v, %v", ups, err)
		}
	}
	// 700 rows in batches of 70, at most 50 rows a file: many files a write.
	opts := func(mode dataset.WriteMode) dataset.WriteOptions {
		return dataset.WriteOptions{Mode: mode, RowsPerFile: 50}
	}

	if _, err := ds(t, cfg, sales(700)).WriteParquet(ctx, dest, opts(dataset.ErrorIfExists)); err != nil {
		t.Fatal(err)
	}
	first := destFiles(t, fs, dest)
	_, m1 := readManifest(t, fs, dest)
	if len(m1.Files) < 2 || m1.Rows != 700 || !slices.Equal(manifestNames(m1, dest), first) {
		t.Fatalf("first write: files %v, manifest %+v", first, m1)
	}

	t.Run("error", func(t *testing.T) {
		_, err := ds(t, cfg, sales(10)).WriteParquet(ctx, dest, opts(dataset.ErrorIfExists))
		if !errors.Is(err, storage.ErrExist) || !strings.Contains(err.Error(), "mode is error") {
			t.Fatalf("mode error over existing files: %v", err)
		}
		if got := destFiles(t, fs, dest); !slices.Equal(got, first) {
			t.Fatalf("a refused write changed the destination: %v, was %v", got, first)
		}
	})

	t.Run("append", func(t *testing.T) {
		if _, err := ds(t, cfg, sales(700)).WriteParquet(ctx, dest, opts(dataset.Append)); err != nil {
			t.Fatal(err)
		}
		files := destFiles(t, fs, dest)
		_, m := readManifest(t, fs, dest)
		if !slices.Equal(manifestNames(m, dest), files) {
			t.Fatalf("the manifest lists %v, the destination holds %v", manifestNames(m, dest), files)
		}
		if !slices.Equal(m.Files[:len(m1.Files)], m1.Files) || len(m.Files) <= len(m1.Files) || m.Rows != 1400 {
			t.Fatalf("appended manifest %+v should extend %+v", m, m1)
		}
		if n := count(); n != 1400 {
			t.Fatalf("%d rows after append", n)
		}
	})

	t.Run("overwrite fails part way", func(t *testing.T) {
		before := destFiles(t, fs, dest)
		manifest, _ := readManifest(t, fs, dest)
		var mu sync.Mutex
		var failed string
		faults := &storage.Faults{Commit: func(p string, n int64) error {
			if n != 3 {
				return nil
			}
			mu.Lock()
			failed = p
			mu.Unlock()
			return errors.New("injected commit failure")
		}}
		c := cfg
		c.FS = func(p string) (storage.FS, error) {
			fs, err := storage.For(p)
			return storage.Faulty(fs, faults), err
		}
		_, err := ds(t, c, sales(700)).WriteParquet(ctx, dest, opts(dataset.Overwrite))
		if err == nil || failed == "" {
			t.Fatalf("error %v, failed %q", err, failed)
		}
		for _, want := range []string{failed, "injected commit failure", "Write"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if got := destFiles(t, fs, dest); !slices.Equal(got, before) {
			t.Fatalf("a failed commit left %v, was %v", got, before)
		}
		if again, _ := readManifest(t, fs, dest); string(again) != string(manifest) {
			t.Fatalf("a failed commit changed _SUCCESS:\n%s\nwas\n%s", again, manifest)
		}
		noUploads()
		if n := count(); n != 1400 {
			t.Fatalf("%d rows after a failed overwrite", n)
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		before := destFiles(t, fs, dest)
		var once sync.Once
		var atFirstDelete []string
		faults := &storage.Faults{Delete: func(p string) error {
			once.Do(func() { atFirstDelete = destFiles(t, fs, dest) })
			return nil
		}}
		c := cfg
		c.FS = func(p string) (storage.FS, error) {
			fs, err := storage.For(p)
			return storage.Faulty(fs, faults), err
		}
		st, err := ds(t, c, sales(300)).WriteParquet(ctx, dest, opts(dataset.Overwrite))
		if err != nil {
			t.Fatal(err)
		}
		files := destFiles(t, fs, dest)
		_, m := readManifest(t, fs, dest)
		if !slices.Equal(manifestNames(m, dest), files) || m.Rows != 300 || st.Rows != 300 {
			t.Fatalf("the manifest (%d rows) lists %v, the destination holds %v", m.Rows, manifestNames(m, dest), files)
		}
		for _, f := range files {
			if f != commit.ManifestName && slices.Contains(before, f) {
				t.Fatalf("old file %s survived an overwrite", f)
			}
		}
		// Nothing is deleted before the new _SUCCESS is written: the old
		// files (and the old _SUCCESS) wait under the job's trash until then.
		var visible, trashed []string
		for _, f := range atFirstDelete {
			if rest, ok := strings.CutPrefix(f, commit.TrashName+"/"); ok {
				_, name, _ := strings.Cut(rest, "/")
				trashed = append(trashed, name)
			} else {
				visible = append(visible, f)
			}
		}
		slices.Sort(trashed)
		if !slices.Equal(visible, files) || !slices.Equal(trashed, before) {
			t.Fatalf("at the first delete the destination held %v and the trash %v, want the new files %v and the old %v", visible, trashed, files, before)
		}
		if n := count(); n != 300 {
			t.Fatalf("%d rows after overwrite", n)
		}
		noUploads()
	})
}
