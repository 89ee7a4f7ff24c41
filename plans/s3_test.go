package plans

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/storage/miniotest"
)

// TestValidateS3Source: against a real S3 server, validate checks an
// s3:// source it can read, reports one that does not exist (bucket,
// prefix, object, glob) as an error at its path, and one it may not read
// (refused credentials) as a note.
func TestValidateS3Source(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("lake")
	dir := t.TempDir()
	writeSales(t, dir, 100)
	files, _ := filepath.Glob(filepath.Join(dir, "data", "sales", "*"))
	if len(files) == 0 {
		t.Fatal("no sales files")
	}
	srv.Upload("lake", "sales/", files...)
	check := func(source string) Lints {
		t.Helper()
		plan := "name: x\nread: {parquet: \"" + source + "\"}\nsteps: [{filter: \"pirce > 1\"}]\nwrite: {parquet: out/}\n"
		_, lints := Check("p.yaml", []byte(plan), Vars{})
		return lints
	}

	// Readable: the steps are checked.
	if lints := check("s3://lake/sales/"); len(lints) != 1 || !strings.HasPrefix(lints[0].Error(), `p.yaml:3:19: steps[0].filter: expr: unknown column "pirce"`) {
		t.Errorf("readable source: %v", lints)
	}
	for _, tc := range []struct{ source, msg string }{
		{"s3://no-such-bucket/sales/", `bucket "no-such-bucket" does not exist`},
		{"s3://lake/nothing-here/", "no files match s3://lake/nothing-here/"},
		{"s3://lake/sales/part-99.parquet", "no files match s3://lake/sales/part-99.parquet"},
		{"s3://lake/sales/*.csv", "no files match s3://lake/sales/*.csv"},
	} {
		lints := check(tc.source)
		if len(lints) != 1 || lints[0].Severity != Error || !strings.HasPrefix(lints[0].Error(), "p.yaml:2:17: read.parquet: read parquet "+tc.source+": ") ||
			!strings.Contains(lints[0].Msg, tc.msg) {
			t.Errorf("%s: want one error at read.parquet saying %q; have %v", tc.source, tc.msg, lints)
		}
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	lints := check("s3://lake/sales/")
	if len(lints) != 1 || lints[0].Severity != Note || !strings.HasPrefix(lints[0].Error(), "p.yaml:2:17: read.parquet: note: the source could not be read") ||
		!strings.Contains(lints[0].Msg, "access denied") {
		t.Errorf("refused credentials: want a note; have %v", lints)
	}
	// A run cannot go on without the source: Compile fails.
	p, _ := Parse("p.yaml", []byte("name: x\nread: {parquet: s3://lake/sales/}\nwrite: {parquet: out/}\n"))
	if job, err := Compile(p, Vars{}); job != nil || err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("Compile with refused credentials: %v, %v", job, err)
	}
}
