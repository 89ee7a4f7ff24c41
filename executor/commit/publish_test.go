package commit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/storage"
)

func put(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree lists the files under dir, relative, sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func stage(t *testing.T, dest, job string, names ...string) []StagedFile {
	var out []StagedFile
	for i, n := range names {
		from := filepath.Join(dest, StagingName, job, "t0-a1", n)
		put(t, from, n)
		out = append(out, StagedFile{From: from, To: filepath.Join(dest, "part-"+n), Rows: int64(i + 1), Bytes: int64(len(n))})
	}
	return out
}

func TestPublishOverwriteIsRetrySafe(t *testing.T) {
	ctx := context.Background()
	fs := storage.NewLocal()
	dest := filepath.Join(t.TempDir(), "out")
	put(t, filepath.Join(dest, "old.parquet"), "old")
	put(t, filepath.Join(dest, ManifestName), `{"job_id":"j-0","files":[{"path":"`+filepath.Join(dest, "old.parquet")+`"}]}`)
	files := stage(t, dest, "j-1", "a", "b")
	// A loser's attempt, never committed.
	put(t, filepath.Join(dest, StagingName, "j-1", "t0-a2", "a"), "zombie")

	m, err := Publish(ctx, fs, dest, plan.ModeOverwrite, "j-1", files)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 3 || len(m.Files) != 2 || m.JobID != "j-1" {
		t.Fatalf("manifest %+v", m)
	}
	// Run again, as a retried commit task does: the same answer, nothing moves.
	again, err := Publish(ctx, fs, dest, plan.ModeOverwrite, "j-1", files)
	if err != nil || again.Rows != 3 {
		t.Fatalf("again: %+v %v", again, err)
	}
	if err := RemoveStaging(ctx, fs, dest, "j-1"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(tree(t, dest), " "), "_SUCCESS part-a part-b"; got != want {
		t.Fatalf("dest holds %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dest, StagingName)); !os.IsNotExist(err) {
		t.Fatalf("staging directory left: %v", err)
	}
}

// A commit that stopped half way (one file moved) finishes when run again.
func TestPublishResumes(t *testing.T) {
	ctx := context.Background()
	fs := storage.NewLocal()
	dest := filepath.Join(t.TempDir(), "out")
	files := stage(t, dest, "j-1", "a", "b")
	if err := storage.Rename(ctx, fs, files[0].From, files[0].To); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(ctx, fs, dest, plan.ModeError, "j-1", files); err != nil {
		t.Fatalf("resumed publish: %v", err)
	}
	if got := tree(t, dest); !slices.Contains(got, "part-a") || !slices.Contains(got, "part-b") || !slices.Contains(got, ManifestName) {
		t.Fatalf("dest %v", got)
	}
}

func TestPublishModes(t *testing.T) {
	ctx := context.Background()
	fs := storage.NewLocal()
	dest := filepath.Join(t.TempDir(), "out")
	put(t, filepath.Join(dest, "old.parquet"), "old")
	_, err := Publish(ctx, fs, dest, plan.ModeError, "j-1", stage(t, dest, "j-1", "a"))
	if !errors.Is(err, storage.ErrExist) || !strings.Contains(err.Error(), dest) {
		t.Fatalf("mode error over a file: %v", err)
	}
	if err := RemoveStaging(ctx, fs, dest, "j-1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tree(t, dest), " "); got != "old.parquet" {
		t.Fatalf("after a refused commit dest holds %q", got)
	}
	if _, err := Publish(ctx, fs, dest, plan.ModeAppend, "j-2", stage(t, dest, "j-2", "b")); err != nil {
		t.Fatal(err)
	}
	m, err := Publish(ctx, fs, dest, plan.ModeAppend, "j-3", stage(t, dest, "j-3", "c"))
	if err != nil || m.Rows != 2 || len(m.Files) != 2 {
		t.Fatalf("append: %+v %v", m, err)
	}
}

func TestRemoveStagingLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "out")
	stage(t, dest, "j-1", "a", "b")
	if err := RemoveStaging(ctx, storage.NewLocal(), dest, "j-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("a failed job left %s: %v", dest, err)
	}
}

// A cluster commit that fails at any step (a file's move, moving an old
// file aside, the _SUCCESS) leaves the destination's visible files as they
// were and its files back in staging, so the retried commit publishes them.
func TestPublishFailsAtEveryStep(t *testing.T) {
	ctx := context.Background()
	for step := 1; ; step++ {
		dest := filepath.Join(t.TempDir(), "out")
		put(t, filepath.Join(dest, "old.parquet"), "old")
		put(t, filepath.Join(dest, ManifestName), `{"job_id":"j-0","files":[{"path":"`+filepath.Join(dest, "old.parquet")+`"}]}`)
		before := tree(t, dest)
		files := stage(t, dest, "j-1", "a", "b", "c")
		n := 0
		fail := func() error {
			if n++; n == step {
				return errors.New("injected")
			}
			return nil
		}
		fs := storage.Faulty(storage.NewLocal(), &storage.Faults{
			Commit: func(string, int64) error { return fail() },
			Rename: func(string, string) error { return fail() },
		})
		_, err := Publish(ctx, fs, dest, plan.ModeOverwrite, "j-1", files)
		if err == nil {
			if step < 5 {
				t.Fatalf("only %d steps", step-1)
			}
			break
		}
		var shown []string
		for _, f := range tree(t, dest) {
			if !strings.HasPrefix(f, StagingName+"/") {
				shown = append(shown, f)
			}
		}
		if !slices.Equal(shown, before) {
			t.Fatalf("step %d: %v: dest holds %v, was %v", step, err, shown, before)
		}
		m, err := Publish(ctx, storage.NewLocal(), dest, plan.ModeOverwrite, "j-1", files)
		if err != nil || m.Rows != 6 {
			t.Fatalf("step %d: retry: %+v %v", step, m, err)
		}
		if err := RemoveStaging(ctx, storage.NewLocal(), dest, "j-1"); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(tree(t, dest), " "), "_SUCCESS part-a part-b part-c"; got != want {
			t.Fatalf("step %d: after the retry dest holds %q, want %q", step, got, want)
		}
	}
}

func TestCheckAllowed(t *testing.T) {
	wd, _ := os.Getwd()
	allowed := []string{wd, "s3://", "/data/out"}
	for _, ok := range []string{"out", "./a/b/../c", wd + "/x", "s3://bucket/k", "/data/out", "/data/out/day=1/", "file:///data/out/x"} {
		if err := CheckAllowed(ok, allowed); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"../escape", "out/../../etc", "/etc/cron.d", "/data/outside", "/data/out/../secret", "s3://bucket/a/../b", "gs://bucket/x"} {
		err := CheckAllowed(bad, allowed)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v, want refused naming it", bad, err)
		}
	}
	if err := CheckAllowed("../anywhere", nil); err != nil {
		t.Errorf("no roots: %v", err)
	}
	narrow := []string{"s3://bucket/prefix"}
	if CheckAllowed("s3://bucket/prefix/x", narrow) != nil || CheckAllowed("s3://bucket/prefix2", narrow) == nil || CheckAllowed("s3://other/prefix", narrow) == nil {
		t.Error("s3 prefix roots")
	}
}
