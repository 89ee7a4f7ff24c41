package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/miniotest"
)

const s3Plan = `name: s3
read:
  parquet: s3://lake/raw/sales/
steps:
  - filter: "%s"
  - group_by: {keys: [category], aggs: [{fn: count, as: n}, {fn: max, column: price, as: top}]}
  - sort: [{column: category}]
write:
  parquet: %s
  mode: overwrite
`

// A plan from and to S3 (MinIO) runs split across two workers: the output
// holds the same rows as the local executor's, and nothing of the staging;
// a job that fails leaves nothing under its destination.
func TestClusterS3(t *testing.T) {
	storageServer(t)
	h := start(t, 1)
	cl := h.client()
	startWorker(t, h.urls(), nil)
	startWorker(t, h.urls(), nil)
	ctx := context.Background()

	run := func(filter, dest string, want state.JobState) api.JobStatus {
		var r api.IDResponse
		if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{File: "s3.yaml", Plan: fmt.Sprintf(s3Plan, filter, dest)}, &r); err != nil {
			t.Fatal(err)
		}
		return h.waitJob(cl, r.ID, want)
	}
	st := run("price > 10", "s3://lake/out/", state.JobSucceeded)
	if len(st.Stages) < 4 {
		t.Fatalf("not split into stages: %+v", st.Stages)
	}
	fs, err := storage.For("s3://lake/out/")
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.List(ctx, "s3://lake/out/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimPrefix(f.Path, "s3://lake/out/"))
		if strings.Contains(f.Path, "staging") {
			t.Fatalf("staging left in the bucket: %s", f.Path)
		}
	}
	if len(files) != len(st.Job.Output)+1 {
		t.Fatalf("bucket holds %v, the job published %v", names, st.Job.Output)
	}
	// The local executor, same plan, local output.
	localOut := filepath.Join(t.TempDir(), "local")
	p, lints := plans.Parse("s3.yaml", []byte(fmt.Sprintf(s3Plan, "price > 10", localOut)))
	if err := lints.Err(); err != nil {
		t.Fatal(err)
	}
	job, err := plans.Compile(p, plans.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(ctx, local.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if got, want := rowsText(t, "s3://lake/out/"), rowsText(t, localOut); got != want {
		t.Fatalf("cluster wrote\n%s\nthe local executor\n%s", got, want)
	}

	st = run("cast(note as bigint) > 0", "s3://lake/failed/", state.JobFailed)
	if left, err := fs.List(ctx, "s3://lake/failed/"); err != nil || len(left) > 0 {
		t.Fatalf("a failed job left %d objects (%v): %+v", len(left), err, st.Job)
	}
}

// storageServer starts MinIO with a bucket "lake" holding the example sales data.
func storageServer(t *testing.T) *miniotest.Server {
	t.Helper()
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("lake")
	inputs, _ := filepath.Glob("../../../examples/data/sales/*.parquet")
	if len(inputs) == 0 {
		t.Fatal("no example data")
	}
	srv.Upload("lake", "raw/sales/", inputs...)
	return srv
}

// rowsText is a dataset's rows, one line each, in order.
func rowsText(t *testing.T, path string) string {
	t.Helper()
	var b strings.Builder
	for rec, err := range dataset.ReadParquet(path).Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		for r := range int(rec.NumRows()) {
			for c := range int(rec.NumCols()) {
				fmt.Fprintf(&b, "%s ", rec.Column(c).ValueStr(r))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
