package miniotest_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/storage/miniotest"
)

func TestStartStopRestart(t *testing.T) {
	srv := miniotest.Start(t)
	if !strings.HasPrefix(srv.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("Endpoint = %q", srv.Endpoint())
	}
	env := srv.Env()
	if env["AWS_ENDPOINT_URL_S3"] != srv.Endpoint() || env["AWS_ACCESS_KEY_ID"] != srv.AccessKey() || env["AWS_SECRET_ACCESS_KEY"] != srv.SecretKey() || env["AWS_REGION"] != miniotest.Region {
		t.Fatalf("Env = %v", env)
	}
	srv.MakeBucket("bkt")
	ctx := context.Background()
	client := srv.Client()
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Body: strings.NewReader("kept")}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := http.Get(srv.Endpoint() + "/minio/health/live"); err == nil {
		t.Fatal("server answers after Stop")
	}
	srv.Restart()
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "kept" {
		t.Fatalf("after Restart the object holds %q", b)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := miniotest.Start(t), miniotest.Start(t)
	if a.Endpoint() == b.Endpoint() || a.AccessKey() == b.AccessKey() {
		t.Fatal("two servers share an endpoint or credentials")
	}
	a.MakeBucket("only-in-a")
	if _, err := b.Client().HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("only-in-a")}); err == nil {
		t.Fatal("b sees a's bucket")
	}
}
