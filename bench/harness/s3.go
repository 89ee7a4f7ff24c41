package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/storage"
)

// S3Config is etl/sales-10m Q1 with input and output in MinIO on loopback
// against local files (`bench etl-s3`).
type S3Config struct {
	Sluice string // the sluice binary the runs use (default: this executable)
	Rows   int64  // rows of generated data
	Files  int    // files of generated data
	Runs   int    // runs per side; the median is reported
	Dir    string // working directory for data and outputs
	MinIO  string // the MinIO server binary
}

// startMinIO starts a MinIO server on a free loopback port over a fresh
// directory, points this process's AWS settings at it, and returns a stop function.
func startMinIO(ctx context.Context, bin, dir string) (func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	var key [12]byte
	_, _ = rand.Read(key[:])
	user, pass := "bench", hex.EncodeToString(key[:])
	data := filepath.Join(dir, "minio-data")
	if err := os.RemoveAll(data); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "server", "--quiet", "--address", addr, data)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+user, "MINIO_ROOT_PASSWORD="+pass)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting MinIO (%s): %w", bin, err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": user, "AWS_SECRET_ACCESS_KEY": pass, "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL_S3": "http://" + addr, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		os.Setenv(k, v)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := http.Get("http://" + addr + "/minio/health/cluster")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("MinIO at %s did not become ready in 30s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// S3 runs Q1 over local files and over MinIO and prints the times and the
// bytes moved to stdout. It points this process's AWS settings at the
// MinIO it starts.
func S3(ctx context.Context, stdout, stderr io.Writer, c S3Config) error {
	self, err := self(c.Sluice)
	if err != nil {
		return err
	}
	rows, files, runs, dir, minio := c.Rows, c.Files, c.Runs, c.Dir, c.MinIO
	data, err := salesData(ctx, stderr, self, dir, rows, files)
	if err != nil {
		return err
	}
	stop, err := startMinIO(ctx, minio, dir)
	if err != nil {
		return err
	}
	defer stop()
	s3fs, err := storage.DefaultS3()
	if err != nil {
		return err
	}
	if _, err := s3fs.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		return err
	}
	locals, _ := filepath.Glob(filepath.Join(data, "*.parquet"))
	var total int64
	for _, p := range locals {
		if err := upload(ctx, s3fs, p, "s3://bench/sales/"+filepath.Base(p)); err != nil {
			return err
		}
		fi, _ := os.Stat(p)
		total += fi.Size()
	}
	query := func(in, out string) (benchRun, QueryIO, error) {
		statsFile := filepath.Join(dir, "q1-stats.json")
		r, err := timeCmd(ctx, stderr, self, "bench", "etl-query", "--in", in, "--out", out, "--stats", statsFile, "q1")
		if err != nil {
			return r, QueryIO{}, err
		}
		var io QueryIO
		b, err := os.ReadFile(statsFile)
		if err == nil {
			err = json.Unmarshal(b, &io)
		}
		return r, io, err
	}
	var lr, sr []benchRun
	var lio, sio QueryIO
	for range runs {
		r, io, err := query(filepath.Join(data, "*.parquet"), filepath.Join(dir, "out-local-q1"))
		if err != nil {
			return err
		}
		lr, lio = append(lr, r), io
		r, io, err = query("s3://bench/sales/", "s3://bench/out-q1/")
		if err != nil {
			return err
		}
		sr, sio = append(sr, r), io
	}
	l, s := median(lr), median(sr)
	fmt.Fprintf(stdout, "etl/sales-10m Q1, %d rows in %d files (%s of Parquet), median of %d\n", rows, files, MiB(total), runs)
	fmt.Fprintf(stdout, "local files:     %.3fs, read %s, wrote %s\n", l.wall.Seconds(), MiB(lio.BytesRead), MiB(lio.BytesWritten))
	fmt.Fprintf(stdout, "MinIO (loopback): %.3fs, read %s, wrote %s\n", s.wall.Seconds(), MiB(sio.BytesRead), MiB(sio.BytesWritten))
	fmt.Fprintf(stdout, "ratio s3/local: %.2f; bytes fetched / file sizes: %.2f\n", s.wall.Seconds()/l.wall.Seconds(), float64(sio.BytesRead)/float64(total))
	return nil
}

func upload(ctx context.Context, fs storage.FS, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	u, err := fs.Create(ctx, dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(u, f); err != nil {
		_ = u.Close()
		_ = u.Abort(ctx)
		return err
	}
	if err := u.Close(); err != nil {
		_ = u.Abort(ctx)
		return err
	}
	return u.Commit(ctx)
}
