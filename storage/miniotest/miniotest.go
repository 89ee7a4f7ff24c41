// Package miniotest runs a real MinIO server for tests, so that S3 code is
// tested against S3's real behaviour with nothing started by hand.
//
//	srv := miniotest.Start(t)
//	srv.MakeBucket("data")
//	for k, v := range srv.Env() {
//		t.Setenv(k, v)
//	}
//	fsys, _ := storage.For("s3://data/x") // now talks to srv
//
// The MinIO binary is found, in order, at $SLUICE_MINIO_BIN, at
// <module root>/.cache/bin/minio, or is built there with go install (about two
// minutes on two cores, once per machine; a file lock keeps parallel test
// binaries from building it twice). A failed build fails the test; set
// SLUICE_SKIP_MINIO=1 to skip tests that need MinIO instead.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Module is the MinIO release the harness builds: go install Module.
const Module = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// Region is the region the server and Env use.
const Region = "us-east-1"

// startTimeout bounds how long MinIO may take to answer its health check.
const startTimeout = 60 * time.Second

// Server is one MinIO process serving one temporary directory on 127.0.0.1.
// Its methods are called from the test goroutine.
type Server struct {
	t         testing.TB
	bin, dir  string
	addr      string // 127.0.0.1:port, kept across Restart
	accessKey string
	secretKey string

	log  *syncBuffer // the server's output, shown when the test fails
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a MinIO server with fresh credentials and an empty data
// directory and stops it when the test ends. It fails the test if MinIO
// cannot be had (or skips it, only when SLUICE_SKIP_MINIO=1).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{
		t:         t,
		bin:       bin,
		dir:       t.TempDir(),
		accessKey: "sluice-" + randomHex(8),
		secretKey: randomHex(20),
		log:       &syncBuffer{},
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("minio output (last 4 KiB):\n%s", s.log.tail(4096))
		}
	})
	var err error
	for range 3 { // a free port may be taken before MinIO binds it
		s.addr, err = freeAddr()
		if err != nil {
			t.Fatalf("miniotest: finding a free port: %v", err)
		}
		if err = s.start(); err == nil {
			return s
		}
		if !strings.Contains(s.log.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("miniotest: %v\nminio output:\n%s", err, s.log.tail(4096))
	return nil
}

// Endpoint is the server's URL, "http://127.0.0.1:PORT".
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// AccessKey is the root user's access key ID.
func (s *Server) AccessKey() string { return s.accessKey }

// SecretKey is the root user's secret key.
func (s *Server) SecretKey() string { return s.secretKey }

// Env returns the AWS_* variables that point the AWS SDK at the server,
// with everything else that could redirect it (profiles, shared files, the
// instance metadata service, a session token) neutralised:
//
//	for k, v := range srv.Env() { t.Setenv(k, v) }
func (s *Server) Env() map[string]string {
	none := filepath.Join(s.dir, ".no-aws-config")
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           s.accessKey,
		"AWS_SECRET_ACCESS_KEY":       s.secretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  Region,
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL_S3":         s.Endpoint(),
		"AWS_ENDPOINT_URL":            "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_MAX_ATTEMPTS":            "",
		"AWS_RETRY_MODE":              "",
	}
}

// SetEnv sets Env on t (so the test cannot be parallel).
func (s *Server) SetEnv(t testing.TB) {
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
}

// Client returns an SDK client for the server, independent of the
// environment, for test setup.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.accessKey, s.secretKey, ""),
	})
}

// MakeBucket creates a bucket, failing the test on error.
func (s *Server) MakeBucket(name string) {
	s.t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		s.t.Fatalf("miniotest: make bucket %q: %v", name, err)
	}
}

// Upload puts each local file under prefix in bucket by its base name,
// failing the test on error.
func (s *Server) Upload(bucket, prefix string, files ...string) {
	s.t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			s.t.Fatalf("miniotest: upload: %v", err)
		}
		key := prefix + filepath.Base(f)
		if _, err := s.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
			s.t.Fatalf("miniotest: upload %s to s3://%s/%s: %v", f, bucket, key, err)
		}
	}
}

// Stop kills the server (as a crash would; the data stays) and waits for it
// to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same address and data directory,
// with the same credentials, and waits until it is live.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("miniotest: restart: %v\nminio output:\n%s", err, s.log.tail(4096))
	}
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr,
		"--certs-dir", filepath.Join(s.dir, ".certs"), filepath.Join(s.dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.accessKey,
		"MINIO_ROOT_PASSWORD="+s.secretKey,
		"MINIO_REGION="+Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1", // allows the root disk as a drive
	)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// /minio/health/live answers as soon as the HTTP server is up, before
	// the object layer and IAM are (S3 calls then get 503
	// XMinioServerNotInitialized); /minio/health/cluster waits for those.
	ok := func(path string) bool {
		resp, err := client.Get(s.Endpoint() + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for {
		if ok("/minio/health/live") && ok("/minio/health/cluster") {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("minio exited while starting: %v", cmd.ProcessState)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("minio did not answer %s/minio/health/{live,cluster} within %s", s.Endpoint(), startTimeout)
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var binary struct {
	sync.Mutex
	path string
}

// Binary returns the path of the MinIO binary, building it if needed (see the
// package doc). It fails t if that is impossible, or skips t when
// SLUICE_SKIP_MINIO=1.
func Binary(t testing.TB) string {
	t.Helper()
	if os.Getenv("SLUICE_SKIP_MINIO") == "1" {
		t.Skip("SLUICE_SKIP_MINIO=1: skipping a test that needs MinIO")
	}
	binary.Lock()
	defer binary.Unlock()
	if binary.path != "" {
		return binary.path
	}
	if p := os.Getenv("SLUICE_MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("miniotest: SLUICE_MINIO_BIN: %v", err)
		}
		binary.path = p
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	dir := filepath.Join(root, ".cache", "bin")
	p := filepath.Join(dir, "minio")
	if isExecutable(p) {
		binary.path = p
		return p
	}
	if err := install(t, dir, p); err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	binary.path = p
	return p
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// install builds MinIO into dir under an exclusive lock on dir/.minio.lock,
// so test binaries of several packages build it once between them.
func install(t testing.TB, dir, p string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".minio.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(p) { // another process built it while we waited
		return nil
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("MinIO is not at %s and the go command to build it is not on PATH: %w", p, err)
	}
	t.Logf("miniotest: building MinIO into %s (about two minutes, once): go install %s", dir, Module)
	start := time.Now()
	cmd := exec.Command(goCmd, "install", Module)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	cmd.Dir = dir // outside any module's vendor or go.work settings
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("GOBIN=%s go install %s failed (%v); set SLUICE_MINIO_BIN to a MinIO binary, or SLUICE_SKIP_MINIO=1 to skip:\n%s", dir, Module, err, out.String())
	}
	if !isExecutable(p) {
		return fmt.Errorf("go install %s succeeded but left no %s", Module, p)
	}
	t.Logf("miniotest: built MinIO in %s", time.Since(start).Round(time.Second))
	return nil
}

// moduleRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: set SLUICE_MINIO_BIN")
		}
		dir = parent
	}
}

// syncBuffer collects the server's output; MinIO writes from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
