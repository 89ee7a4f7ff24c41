package storage

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Create starts a multipart upload of p. The upload itself is created with
// the first part (when PartSize bytes have been written, or at Close), parts
// go up Concurrency at a time while Write goes on, Close sends the last one,
// and only Commit (CompleteMultipartUpload) makes the object visible. An
// object smaller than one part is a multipart upload of one part.
//
// ctx bounds the data transfer (Write and Close); Commit and Abort take their
// own. A writer that dies before Commit or Abort leaves a pending upload
// that holds storage until aborted (see ListUploads) or expired by a
// lifecycle rule (AbortIncompleteMultipartUpload).
func (s *S3) Create(ctx context.Context, p string) (Upload, error) {
	bucket, key, err := parseS3Object(p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, newError(p, "create: "+err.Error(), err)
	}
	uctx, cancel := context.WithCancel(ctx)
	return &s3Upload{
		fs: s, ctx: uctx, cancel: cancel, path: p, bucket: bucket, key: key,
		slots: make(chan struct{}, s.opts.Concurrency), next: 1,
	}, nil
}

type uploadState int

const (
	writing uploadState = iota
	closed
	committed
	aborted
)

// s3Upload is one multipart upload. Fields above mu belong to the writer
// goroutine (Write and Close); the rest is shared with the part uploads and
// with Commit and Abort.
type s3Upload struct {
	fs                *S3
	ctx               context.Context
	cancel            context.CancelFunc
	path, bucket, key string

	buf   []byte        // the part being filled
	next  int32         // number of the next part
	slots chan struct{} // one token per part in flight
	wg    sync.WaitGroup
	id    string // upload ID, "" until the first part

	mu    sync.Mutex
	state uploadState
	parts []types.CompletedPart
	err   error // first failure; the upload cannot be committed
}

// partSize is the size of part n (1-based): PartSize, doubling every 1,000
// parts so that 10,000 parts reach S3's 5 TiB object limit.
func (u *s3Upload) partSize(n int32) int64 {
	size := u.fs.opts.PartSize << ((n - 1) / 1000)
	return min(size, maxPartSize)
}

func (s *S3) getBuf(size int64) []byte {
	if size == s.opts.PartSize {
		if b, ok := s.bufs.Get().(*[]byte); ok {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, size)
}

func (s *S3) putBuf(b []byte) {
	if int64(cap(b)) == s.opts.PartSize {
		s.bufs.Put(&b)
	}
}

func (u *s3Upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *s3Upload) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.mu.Unlock()
	u.cancel() // stop the other parts: the upload is lost anyway
}

func (u *s3Upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	state, err := u.state, u.err
	u.mu.Unlock()
	if state != writing {
		return 0, newError(u.path, "write after Close, Commit or Abort")
	}
	if err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if u.buf == nil {
			if u.next > maxParts {
				return written, newError(u.path, fmt.Sprintf("write: object larger than %d parts: raise S3Options.PartSize", maxParts))
			}
			u.buf = u.fs.getBuf(u.partSize(u.next))
		}
		k := copy(u.buf[len(u.buf):cap(u.buf)], p)
		u.buf = u.buf[:len(u.buf)+k]
		p = p[k:]
		written += k
		if len(u.buf) == cap(u.buf) {
			if err := u.send(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// send starts the upload of u.buf as the next part, waiting for a free slot.
func (u *s3Upload) send() error {
	if u.id == "" {
		out, err := u.fs.client.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{
			Bucket: &u.bucket, Key: &u.key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			err = u.fs.mapError(u.path, "create", u.bucket, err)
			u.fail(err)
			return err
		}
		u.id = aws.ToString(out.UploadId)
	}
	select {
	case u.slots <- struct{}{}:
	case <-u.ctx.Done():
		if err := u.failure(); err != nil {
			return err
		}
		return newError(u.path, "write: "+contextCause(u.ctx.Err()), u.ctx.Err())
	}
	num, buf := u.next, u.buf
	u.next++
	u.buf = nil
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.slots }()
		u.sendPart(num, buf)
	}()
	return u.failure()
}

func (u *s3Upload) sendPart(num int32, buf []byte) {
	defer u.fs.putBuf(buf)
	out, err := u.fs.client.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket: &u.bucket, Key: &u.key, UploadId: &u.id, PartNumber: aws.Int32(num),
		Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		u.fail(u.fs.mapError(u.path, fmt.Sprintf("upload part %d", num), u.bucket, err))
		return
	}
	u.mu.Lock()
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32: out.ChecksumCRC32})
	u.mu.Unlock()
}

// Close sends the last part and waits for all parts. After an error the
// upload can only be aborted.
func (u *s3Upload) Close() error {
	u.mu.Lock()
	state := u.state
	u.mu.Unlock()
	switch state {
	case closed, committed:
		return nil
	case aborted:
		return newError(u.path, "close: upload already aborted")
	}
	var err error
	if len(u.buf) > 0 || u.next <= 1 && u.failure() == nil { // an empty object is one empty part
		if u.buf == nil {
			u.buf = u.fs.getBuf(u.partSize(1))
		}
		err = u.send()
	}
	u.wg.Wait()
	u.cancel() // the transfer is over; Commit and Abort use their own ctx
	u.mu.Lock()
	if u.state == writing {
		u.state = closed
	}
	if err == nil {
		err = u.err
	}
	u.mu.Unlock()
	return err
}

// Commit completes the multipart upload: the object appears whole, at once.
// A failed Commit may be tried again.
func (u *s3Upload) Commit(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.state == committed:
		return newError(u.path, "commit: already committed")
	case u.state == aborted:
		return newError(u.path, "commit: upload was aborted")
	case u.state != closed:
		return newError(u.path, "commit before Close")
	case u.err != nil:
		return newError(u.path, "commit: the upload failed, abort it", u.err)
	}
	parts := slices.Clone(u.parts)
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	_, err := u.fs.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return u.fs.mapError(u.path, "commit", u.bucket, err)
	}
	u.state = committed
	u.cancel()
	return nil
}

// Abort stops the parts in flight and aborts the multipart upload. After
// Commit it does nothing, so `defer u.Abort(ctx)` is safe on the success path.
func (u *s3Upload) Abort(ctx context.Context) error {
	u.mu.Lock()
	if u.state == committed || u.state == aborted {
		u.mu.Unlock()
		return nil
	}
	u.state = aborted
	u.mu.Unlock()
	u.cancel()
	u.wg.Wait()
	if u.buf != nil {
		u.fs.putBuf(u.buf)
		u.buf = nil
	}
	if u.id == "" {
		return nil
	}
	_, err := u.fs.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &u.key, UploadId: &u.id})
	if err != nil && apiCode(err) != "NoSuchUpload" {
		return u.fs.mapError(u.path, "abort", u.bucket, err)
	}
	return nil
}
