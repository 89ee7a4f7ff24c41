package storage

import (
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/storage/miniotest"
)

// startS3 starts MinIO with one bucket, points the AWS environment at it and
// returns an S3 FS made with opts (zero fields take their defaults).
func startS3(t *testing.T, opts S3Options) (*miniotest.Server, *S3, string) {
	t.Helper()
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	const bucket = "sluice-test"
	srv.MakeBucket(bucket)
	def := DefaultS3Options()
	if opts.PartSize == 0 {
		opts.PartSize = def.PartSize
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = def.Concurrency
	}
	if opts.MaxKeys == 0 {
		opts.MaxKeys = def.MaxKeys
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = def.MaxAttempts
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = def.MaxBackoff
	}
	fsys, err := NewS3(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv, fsys, bucket
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seedBytes(seed)).Read(b)
	return b
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

func writeFile(t testing.TB, fsys FS, path string, data []byte) {
	t.Helper()
	ctx := context.Background()
	u, err := fsys.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, fsys FS, path string) []byte {
	t.Helper()
	f, err := fsys.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); err != nil && !(err == io.EOF && n == len(b)) {
		t.Fatalf("ReadAt(all of %s): %d bytes, %v", path, n, err)
	}
	return b
}

func TestS3RoundTrip(t *testing.T) {
	_, _, bucket := startS3(t, S3Options{})
	// For must honour the environment: AWS_ENDPOINT_URL_S3 and path style.
	fsys, err := For("s3://" + bucket + "/x")
	if err != nil {
		t.Fatal(err)
	}
	small, err := NewS3(context.Background(), S3Options{PartSize: 5 << 20, Concurrency: 2, MaxKeys: 1000, MaxAttempts: 3, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fs   FS
		size int
	}{
		{"empty", fsys, 0},
		{"small", fsys, 10},
		{"one-part", small, 5 << 20},
		{"parts", small, 12<<20 + 17},
		{"parts-default-size", fsys, 20 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := Join("s3://"+bucket, "round", tc.name+".bin")
			data := pattern(uint64(tc.size), tc.size)
			writeFile(t, tc.fs, path, data)
			if got := readFile(t, tc.fs, path); !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, want %d equal bytes", len(got), len(data))
			}
			fi, err := tc.fs.Stat(context.Background(), path)
			if err != nil || fi.Size != int64(tc.size) || fi.Path != path || fi.ModTime.IsZero() {
				t.Fatalf("Stat = %+v, %v", fi, err)
			}
		})
	}
}

func TestS3NothingVisibleBeforeCommit(t *testing.T) {
	_, fsys, bucket := startS3(t, S3Options{PartSize: 5 << 20})
	ctx := context.Background()
	for _, size := range []int{100, 11 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := fmt.Sprintf("s3://%s/staged-%d", bucket, size)
			path := dir + "/obj"
			data := pattern(1, size)
			u, err := fsys.Create(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := u.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := fsys.Stat(ctx, path); !errors.Is(err, ErrNotExist) {
				t.Fatalf("Stat before Commit: %v, want ErrNotExist", err)
			}
			if got, err := fsys.List(ctx, dir); err != nil || len(got) != 0 {
				t.Fatalf("List before Commit = %v, %v; want nothing", got, err)
			}
			pending, err := ListUploads(ctx, fsys, dir)
			if err != nil || len(pending) != 1 || pending[0].Path != path {
				t.Fatalf("ListUploads before Commit = %+v, %v; want the one upload", pending, err)
			}
			if err := u.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := u.Abort(ctx); err != nil { // no-op after Commit
				t.Fatalf("Abort after Commit: %v", err)
			}
			if got := readFile(t, fsys, path); !bytes.Equal(got, data) {
				t.Fatal("read back different bytes")
			}
			if pending, err := ListUploads(ctx, fsys, dir); err != nil || len(pending) != 0 {
				t.Fatalf("ListUploads after Commit = %+v, %v; want none", pending, err)
			}
		})
	}
}

func TestS3Abort(t *testing.T) {
	_, fsys, bucket := startS3(t, S3Options{PartSize: 5 << 20, Concurrency: 2})
	ctx := context.Background()
	dir := "s3://" + bucket + "/aborted"
	for _, tc := range []struct {
		name       string
		size       int
		closeFirst bool
	}{
		{"before-any-part", 1000, false},
		{"mid-write", 17 << 20, false},
		{"after-close", 17 << 20, true},
		{"small-after-close", 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := dir + "/" + tc.name
			u, err := fsys.Create(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Write(pattern(2, tc.size)); err != nil {
				t.Fatal(err)
			}
			if tc.closeFirst {
				if err := u.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			if err := u.Commit(ctx); err == nil || err.Error() != "storage: "+path+": commit: upload was aborted" {
				t.Fatalf("Commit after Abort: %v", err)
			}
			if _, err := fsys.Stat(ctx, path); !errors.Is(err, ErrNotExist) {
				t.Fatalf("Stat after Abort: %v, want ErrNotExist", err)
			}
		})
	}
	if pending, err := ListUploads(ctx, fsys, dir); err != nil || len(pending) != 0 {
		t.Fatalf("dangling uploads after Abort: %+v, %v", pending, err)
	}
}

func TestS3CommitBeforeClose(t *testing.T) {
	_, fsys, bucket := startS3(t, S3Options{})
	ctx := context.Background()
	path := "s3://" + bucket + "/early"
	u, err := fsys.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	u.Write([]byte("x"))
	if err := u.Commit(ctx); err == nil || err.Error() != "storage: "+path+": commit before Close" {
		t.Fatalf("Commit before Close: %v", err)
	}
}

func TestS3RangedReads(t *testing.T) {
	_, fsys, bucket := startS3(t, S3Options{PartSize: 5 << 20})
	path := "s3://" + bucket + "/ranged.bin"
	data := pattern(3, 11<<20+5)
	writeFile(t, fsys, path, data)
	f, err := fsys.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != int64(len(data)) || f.Path() != path {
		t.Fatalf("Size, Path = %d, %q", f.Size(), f.Path())
	}
	size := int64(len(data))
	for _, tc := range []struct {
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{0, 1, 1, false},
		{0, 100, 100, false},
		{5<<20 - 3, 10, 10, false}, // across a part boundary
		{size - 10, 10, 10, false}, // exactly to the end
		{size - 10, 20, 10, true},  // past the end
		{size, 5, 0, true},
		{size + 100, 5, 0, true},
		{12345, 0, 0, false},
	} {
		buf := make([]byte, tc.n)
		n, err := f.ReadAt(buf, tc.off)
		if n != tc.wantN || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d, EOF %v", tc.n, tc.off, n, err, tc.wantN, tc.wantEOF)
			continue
		}
		if n > 0 && !bytes.Equal(buf[:n], data[tc.off:tc.off+int64(n)]) {
			t.Errorf("ReadAt(%d bytes at %d): wrong bytes", tc.n, tc.off)
		}
	}
	if _, err := f.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at -1: no error")
	}
	// Concurrent reads of random ranges.
	var g errgroup.Group
	for i := range 16 {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(i), 0))
			for range 8 {
				off := r.Int64N(size)
				n := r.IntN(1 << 20)
				buf := make([]byte, n)
				got, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					return err
				}
				if !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
					return fmt.Errorf("wrong bytes at %d+%d", off, got)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestS3ListPagination lists more than 1,000 keys (S3's page limit) with
// pages of 100, and globs over them.
func TestS3ListPagination(t *testing.T) {
	srv, fsys, bucket := startS3(t, S3Options{MaxKeys: 100})
	ctx := context.Background()
	client := srv.Client()
	const dirs, perDir = 21, 50 // 1,050 keys
	var want []string
	var g errgroup.Group
	g.SetLimit(8)
	put := func(key string) {
		g.Go(func() error {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(key)})
			return err
		})
	}
	for d := range dirs {
		for f := range perDir {
			key := fmt.Sprintf("many/d%02d/f%03d.txt", d, f)
			want = append(want, "s3://"+bucket+"/"+key)
			put(key)
		}
		put(fmt.Sprintf("many/d%02d/_SUCCESS", d))
	}
	put("many-not-below/x.txt")
	put("many/.hidden/f.txt")
	put("many/folder/") // a folder marker, never listed
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var c Counters
	infos, err := Glob(ctx, Counting(fsys, &c), "s3://"+bucket+"/many")
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(infos); !equalStrings(got, want) {
		t.Fatalf("Glob(many) = %d paths, want %d (first %v)", len(got), len(want), head(got))
	}
	if c.Requests.Load() != 1 {
		t.Errorf("Glob made %d FS calls, want one List", c.Requests.Load())
	}
	all, err := fsys.List(ctx, "s3://"+bucket+"/many/")
	if err != nil || len(all) != len(want)+dirs+1 {
		t.Fatalf("List = %d files, %v; want %d", len(all), err, len(want)+dirs+1)
	}
	infos, err = Glob(ctx, fsys, "s3://"+bucket+"/many/d1[0-4]/f00?.txt")
	if err != nil || len(infos) != 50 {
		t.Fatalf("Glob(d1[0-4]/f00?.txt) = %d, %v; want 50", len(infos), err)
	}
	if infos[0].Path != "s3://"+bucket+"/many/d10/f000.txt" || infos[0].Size != int64(len("many/d10/f000.txt")) {
		t.Errorf("first match %+v", infos[0])
	}
	infos, err = Glob(ctx, fsys, "s3://"+bucket+"/many/*/_*")
	if err != nil || len(infos) != dirs {
		t.Fatalf("Glob(many/*/_*) = %d, %v; want %d", len(infos), err, dirs)
	}
}

func paths(infos []FileInfo) []string {
	out := make([]string, len(infos))
	for i, fi := range infos {
		out[i] = fi.Path
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestS3LargeObject writes 1 GiB streamed from a generator (nothing holds the
// object in memory), then reads it back with parallel ranged reads and
// compares per-chunk checksums.
func TestS3LargeObject(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 1 GiB; skipped in -short")
	}
	_, fsys, bucket := startS3(t, S3Options{})
	ctx := context.Background()
	path := "s3://" + bucket + "/large/1GiB.bin"
	const size, chunk = 1 << 30, 16 << 20
	gen := rand.NewChaCha8(seedBytes(42))
	var sums []uint32
	buf := make([]byte, chunk)
	var peak uint64
	start := time.Now()
	u, err := fsys.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	for written := 0; written < size; written += chunk {
		gen.Read(buf)
		sums = append(sums, crc32.ChecksumIEEE(buf))
		if _, err := u.Write(buf); err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		if written%(128<<20) == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(start)
	if peak > 256<<20 {
		t.Errorf("heap in use reached %d MiB while writing; uploads must hold at most Concurrency+1 parts", peak>>20)
	}

	start = time.Now()
	f, err := fsys.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != size {
		t.Fatalf("size %d, want %d", f.Size(), size)
	}
	got := make([]uint32, len(sums))
	var g errgroup.Group
	g.SetLimit(8)
	for i := range sums {
		g.Go(func() error {
			b := make([]byte, chunk)
			if _, err := f.ReadAt(b, int64(i)*chunk); err != nil {
				return err
			}
			got[i] = crc32.ChecksumIEEE(b)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range sums {
		if got[i] != sums[i] {
			t.Fatalf("chunk %d: crc %08x, want %08x", i, got[i], sums[i])
		}
	}
	read := time.Since(start)
	t.Logf("1 GiB: wrote in %s (%.0f MiB/s), read in %s (%.0f MiB/s), peak heap %d MiB",
		wrote.Round(time.Millisecond), 1024/wrote.Seconds(), read.Round(time.Millisecond), 1024/read.Seconds(), peak>>20)
}

// hookClient wraps the SDK's HTTP client: it counts GETs and can hold the
// body of the first one after its first read, until the test says go on.
type hookClient struct {
	base    aws.HTTPClient
	gets    atomic.Int32
	holdOne atomic.Bool
	held    chan struct{} // closed once the held body has been read from
	resume  chan struct{}
}

func newHookClient() *hookClient {
	return &hookClient{
		base:   awshttp.NewBuildableClient(),
		held:   make(chan struct{}),
		resume: make(chan struct{}),
	}
}

func (h *hookClient) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.Header.Get("Range") != "" {
		h.gets.Add(1)
	}
	resp, err := h.base.Do(req)
	if err == nil && req.Method == http.MethodGet && req.Header.Get("Range") != "" && h.holdOne.CompareAndSwap(true, false) {
		resp.Body = &heldBody{ReadCloser: resp.Body, h: h}
	}
	return resp, err
}

type heldBody struct {
	io.ReadCloser
	h     *hookClient
	reads int
}

func (b *heldBody) Read(p []byte) (int, error) {
	b.reads++
	if b.reads == 2 {
		close(b.h.held)
		<-b.h.resume
	}
	return b.ReadCloser.Read(p)
}

// TestS3ServerRestartDuringRead kills MinIO while a ranged GET is streaming
// and starts it again: the read resumes and returns the right bytes.
func TestS3ServerRestartDuringRead(t *testing.T) {
	hook := newHookClient()
	srv, fsys, bucket := startS3(t, S3Options{HTTPClient: hook, MaxAttempts: 8, MaxBackoff: 2 * time.Second})
	ctx := context.Background()
	path := "s3://" + bucket + "/restart.bin"
	data := pattern(4, 64<<20)
	writeFile(t, fsys, path, data)
	f, err := fsys.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	hook.holdOne.Store(true)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	buf := make([]byte, len(data))
	start := time.Now()
	go func() {
		n, err := f.ReadAt(buf, 0)
		done <- result{n, err}
	}()
	<-hook.held
	srv.Stop()
	close(hook.resume)
	srv.Restart()
	r := <-done
	if r.err != nil || r.n != len(data) {
		t.Fatalf("ReadAt across a restart = %d, %v", r.n, r.err)
	}
	if !bytes.Equal(buf, data) {
		t.Fatal("ReadAt across a restart returned wrong bytes")
	}
	if hook.gets.Load() < 2 {
		t.Fatalf("%d GETs: the read was not resumed", hook.gets.Load())
	}
	t.Logf("read resumed after restart: %d GETs, %s", hook.gets.Load(), time.Since(start).Round(time.Millisecond))
}

// TestS3ServerGoneDuringRead kills MinIO for good: reads fail within a
// bounded time with an error that names the URL, the endpoint and what to do.
func TestS3ServerGoneDuringRead(t *testing.T) {
	hook := newHookClient()
	srv, fsys, bucket := startS3(t, S3Options{HTTPClient: hook, MaxAttempts: 3, MaxBackoff: 200 * time.Millisecond})
	ctx := context.Background()
	path := "s3://" + bucket + "/gone.bin"
	data := pattern(5, 32<<20)
	writeFile(t, fsys, path, data)
	f, err := fsys.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("storage: %s: read: cannot reach %s after 3 attempts (dial tcp %s: connect: connection refused): check AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL and that the server is up",
		path, srv.Endpoint(), srv.Addr())

	t.Run("mid-body", func(t *testing.T) {
		hook.holdOne.Store(true)
		done := make(chan error, 1)
		go func() {
			_, err := f.ReadAt(make([]byte, len(data)), 0)
			done <- err
		}()
		<-hook.held
		srv.Stop()
		start := time.Now()
		close(hook.resume)
		select {
		case err := <-done:
			if err == nil || err.Error() != want {
				t.Fatalf("ReadAt with the server gone:\n got %v\nwant %s", err, want)
			}
			t.Logf("failed after %s", time.Since(start).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			t.Fatal("ReadAt with the server gone did not return within 30s")
		}
	})
	t.Run("new-request", func(t *testing.T) {
		start := time.Now()
		_, err := f.ReadAt(make([]byte, 10), 0)
		if err == nil || err.Error() != want {
			t.Fatalf("ReadAt with the server gone:\n got %v\nwant %s", err, want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %s to fail", d)
		}
	})
}

func TestS3Errors(t *testing.T) {
	srv, fsys, bucket := startS3(t, S3Options{})
	ctx := context.Background()
	writeFile(t, fsys, "s3://"+bucket+"/exists", []byte("x"))

	t.Run("missing-key", func(t *testing.T) {
		path := "s3://" + bucket + "/no/such/key"
		want := "storage: " + path + ": no such object"
		_, err := fsys.Open(ctx, path)
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotExist) {
			t.Errorf("Open: %v", err)
		}
		_, err = fsys.Stat(ctx, path)
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotExist) {
			t.Errorf("Stat: %v", err)
		}
		if infos, err := fsys.List(ctx, path); err != nil || len(infos) != 0 {
			t.Errorf("List = %v, %v; want nothing", infos, err)
		}
		if err := fsys.Delete(ctx, path); err != nil {
			t.Errorf("Delete: %v", err)
		}
	})

	t.Run("missing-bucket", func(t *testing.T) {
		path := "s3://no-such-bucket/k"
		want := `storage: s3://no-such-bucket/k: bucket "no-such-bucket" does not exist: create it or check the URL`
		_, err := fsys.Open(ctx, path)
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotExist) {
			t.Errorf("Open: %v", err)
		}
		_, err = fsys.List(ctx, path)
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotExist) {
			t.Errorf("List: %v", err)
		}
		_, err = Glob(ctx, fsys, "s3://no-such-bucket/k/*.txt")
		if err == nil || err.Error() != want {
			t.Errorf("Glob: %v", err)
		}
		u, err := fsys.Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("x"))
		if err := u.Close(); err == nil || err.Error() != want {
			t.Errorf("Close: %v", err)
		}
		if err := u.Abort(ctx); err != nil {
			t.Errorf("Abort: %v", err)
		}
	})

	t.Run("wrong-credentials", func(t *testing.T) {
		for _, tc := range []struct {
			name, key, secret, code string
		}{
			{"access-key", "no-such-user", srv.SecretKey(), "InvalidAccessKeyId"},
			{"secret", srv.AccessKey(), "not-the-secret-key", "SignatureDoesNotMatch"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Setenv("AWS_ACCESS_KEY_ID", tc.key)
				t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
				bad, err := DefaultS3()
				if err != nil {
					t.Fatal(err)
				}
				if bad == fsys {
					t.Fatal("DefaultS3 reused a client made for other credentials")
				}
				path := "s3://" + bucket + "/exists"
				for op, call := range map[string]func() error{
					"List": func() error { _, err := bad.List(ctx, path); return err },
					"Open": func() error { _, err := bad.Open(ctx, path); return err },
					"Create": func() error {
						u, err := bad.Create(ctx, path)
						if err != nil {
							return err
						}
						defer u.Abort(ctx)
						u.Write([]byte("x"))
						return u.Close()
					},
				} {
					err := call()
					code := tc.code
					if op == "Open" {
						code = "Forbidden" // a HEAD answer has no body, so no S3 error code
					}
					want := "storage: " + path + ": access denied (" + code + "): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile"
					if err == nil || err.Error() != want {
						t.Errorf("%s:\n got %v\nwant %s", op, err, want)
					}
					if err != nil && (strings.Contains(fmt.Sprintf("%+v", err), tc.secret) || strings.Contains(err.Error(), tc.key)) {
						t.Errorf("%s: the error shows a credential: %v", op, err)
					}
				}
			})
		}
	})

	t.Run("unreachable-endpoint", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
		bad, err := NewS3(ctx, S3Options{PartSize: 8 << 20, Concurrency: 1, MaxKeys: 1000, MaxAttempts: 2, MaxBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		path := "s3://" + bucket + "/k"
		want := "storage: " + path + ": open: cannot reach http://127.0.0.1:1 after 2 attempts (dial tcp 127.0.0.1:1: connect: connection refused): check AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL and that the server is up"
		if _, err := bad.Open(ctx, path); err == nil || err.Error() != want {
			t.Errorf("Open:\n got %v\nwant %s", err, want)
		}
	})

	t.Run("bad-urls", func(t *testing.T) {
		for path, want := range map[string]string{
			"s3:///k":                  "storage: s3:///k: no bucket: write s3://bucket/key",
			"s3://" + bucket:           "storage: s3://" + bucket + ": names a bucket or a prefix, not an object: write s3://bucket/key",
			"s3://" + bucket + "/dir/": "storage: s3://" + bucket + "/dir/: names a bucket or a prefix, not an object: write s3://bucket/key",
		} {
			if _, err := fsys.Open(ctx, path); err == nil || err.Error() != want {
				t.Errorf("Open(%q):\n got %v\nwant %s", path, err, want)
			}
		}
	})
}

// TestS3Config checks the AWS-style configuration: the generic endpoint
// variable, the default region, and one client per configuration.
func TestS3Config(t *testing.T) {
	srv, _, bucket := startS3(t, S3Options{})
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", srv.Endpoint())
	t.Setenv("AWS_REGION", "")
	a, err := DefaultS3()
	if err != nil {
		t.Fatal(err)
	}
	if a.region != "us-east-1" || a.endpoint != srv.Endpoint() || !a.Client().Options().UsePathStyle {
		t.Fatalf("region %q, endpoint %q, path style %v", a.region, a.endpoint, a.Client().Options().UsePathStyle)
	}
	writeFile(t, a, "s3://"+bucket+"/via-generic-endpoint", []byte("hello"))
	if got := readFile(t, a, "s3://"+bucket+"/via-generic-endpoint"); string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	if b, _ := DefaultS3(); b != a {
		t.Error("DefaultS3 made a second client for the same configuration")
	}
	if c, _ := For("s3://" + bucket + "/x"); c != FS(a) {
		t.Error("For made a second client for the same configuration")
	}
	t.Setenv("AWS_ENDPOINT_URL", "")
	aws, err := DefaultS3()
	if err != nil {
		t.Fatal(err)
	}
	if aws == a || aws.endpoint != "" || aws.Client().Options().UsePathStyle {
		t.Errorf("without an endpoint: endpoint %q, path style %v", aws.endpoint, aws.Client().Options().UsePathStyle)
	}
}

func TestS3Glob(t *testing.T) {
	_, fsys, bucket := startS3(t, S3Options{MaxKeys: 3}) // several pages per listing
	for _, p := range globTree {
		writeFile(t, fsys, "s3://"+bucket+"/"+p, []byte(p))
	}
	testGlob(t, fsys, func(rel string) string { return "s3://" + bucket + "/" + rel })
}
