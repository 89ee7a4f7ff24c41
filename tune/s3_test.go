package tune

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/storage/miniotest"
)

// The experiment's state and checkpoints in s3:// (a real MinIO server):
// an interrupted experiment resumes, its trial restored from a checkpoint
// downloaded from the bucket.
func TestRunS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("tune-test")
	testResume(t, "s3://tune-test/experiments/resume")
	exp, err := Load(context.Background(), "s3://tune-test/experiments/resume")
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Trials) != 5 || exp.Trials[2].Checkpoints[0].Path != "s3://tune-test/experiments/resume/trials/t0002/checkpoint_000001" {
		t.Errorf("state in s3: %s", exp.JSONL())
	}
}
