package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Options tunes an S3 FS. Where to connect and as whom (credentials,
// region, endpoint) is not here: it comes from the AWS configuration, see
// [NewS3].
type S3Options struct {
	// PartSize is the size of the parts of a multipart upload, at least
	// 5 MiB (S3's minimum for all parts but the last). Every Upload holds up
	// to Concurrency+1 parts in memory. Parts after the 1,000th double in
	// size every 1,000 parts, so an object may outgrow 10,000 × PartSize.
	PartSize int64
	// Concurrency is the number of parts of one Upload sent at once.
	Concurrency int
	// MaxKeys is the page size of listings (ListObjectsV2,
	// ListMultipartUploads), 1 to 1000.
	MaxKeys int32
	// MaxAttempts is how often one request is tried, the first time
	// included. Connection errors, throttling and 5xx answers are retried
	// with jittered exponential backoff up to MaxBackoff. AWS_MAX_ATTEMPTS,
	// when set, takes precedence.
	MaxAttempts int
	// MaxBackoff is the longest wait between two attempts.
	MaxBackoff time.Duration
	// Profile names the shared-config profile; "" uses AWS_PROFILE, else
	// "default".
	Profile string
	// HTTPClient sends the S3 requests; nil uses the SDK's client with a
	// 10-second dial timeout (and AWS_CA_BUNDLE, when set). Set it for
	// proxies, tracing or fault injection; it is used as is.
	HTTPClient aws.HTTPClient
}

// DefaultS3Options returns the options DefaultS3 uses.
func DefaultS3Options() S3Options {
	return S3Options{
		PartSize:    8 << 20,
		Concurrency: 4,
		MaxKeys:     1000,
		MaxAttempts: 8,
		MaxBackoff:  5 * time.Second,
	}
}

const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
)

// Validate reports the first option out of range, naming the field.
func (o S3Options) Validate() error {
	switch {
	case o.PartSize < minPartSize || o.PartSize > maxPartSize:
		return fmt.Errorf("storage: S3Options.PartSize (%d) must be between 5 MiB (%d) and 5 GiB (%d)", o.PartSize, minPartSize, int64(maxPartSize))
	case o.Concurrency < 1:
		return fmt.Errorf("storage: S3Options.Concurrency (%d) must be at least 1", o.Concurrency)
	case o.MaxKeys < 1 || o.MaxKeys > 1000:
		return fmt.Errorf("storage: S3Options.MaxKeys (%d) must be between 1 and 1000", o.MaxKeys)
	case o.MaxAttempts < 1:
		return fmt.Errorf("storage: S3Options.MaxAttempts (%d) must be at least 1", o.MaxAttempts)
	case o.MaxBackoff <= 0:
		return fmt.Errorf("storage: S3Options.MaxBackoff (%s) must be positive", o.MaxBackoff)
	}
	return nil
}

// S3 is the FS of s3:// URLs, "s3://bucket/key", on AWS S3 or an
// S3-compatible server. It serves every bucket its credentials reach.
//
// Reads are ranged GETs pinned to the ETag seen by Open, so a file replaced
// while being read fails with a clear error rather than mixing two versions.
// Writes are multipart uploads: nothing is visible until Commit calls
// CompleteMultipartUpload. S3 has no directories: List and Glob treat "/" in
// keys as the separator, and keys ending in "/" (folder markers) are skipped.
type S3 struct {
	client   *s3.Client
	opts     S3Options
	region   string
	endpoint string // custom endpoint, "" for AWS
	bufs     sync.Pool
}

var (
	_ FS           = (*S3)(nil)
	_ UploadLister = (*S3)(nil)
)

// s3Clients caches one S3 per configuration, so a process makes one client
// (one connection pool, one credentials cache) per configuration.
var s3Clients struct {
	sync.Mutex
	m map[s3Key]*S3
}

// s3Key identifies a configuration: the options and a digest of the AWS_*
// environment (tests point the process at different servers in turn). The
// digest keeps credentials out of the key itself. Changes to the shared
// config files are not noticed.
type s3Key struct {
	opts S3Options
	env  [sha256.Size]byte
}

// DefaultS3 returns the process's S3 FS with DefaultS3Options, made on first
// use (and again after the AWS_* environment changes).
func DefaultS3() (*S3, error) {
	return NewS3(context.Background(), DefaultS3Options())
}

// NewS3 returns the S3 FS for opts, reusing the one made before for the same
// options and environment.
//
// Configuration is the AWS SDK's: config.LoadDefaultConfig reads the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_PROFILE, AWS_REGION, AWS_MAX_ATTEMPTS, ...), the shared config and
// credentials files, SSO, web identity and the instance role. The region is
// "us-east-1" when none is set. AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (or
// endpoint_url in the profile) points the client at an S3-compatible server
// such as MinIO, and then path-style addressing ("host/bucket/key") is used,
// since such servers rarely have a DNS name per bucket.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	key := s3Key{opts: opts, env: awsEnvDigest()}
	cacheable := opts.HTTPClient == nil || reflect.TypeOf(opts.HTTPClient).Comparable()
	if cacheable {
		s3Clients.Lock()
		defer s3Clients.Unlock()
		if fs, ok := s3Clients.m[key]; ok {
			return fs, nil
		}
	}
	fs, err := newS3(ctx, opts)
	if err != nil {
		return nil, err
	}
	if cacheable {
		if s3Clients.m == nil {
			s3Clients.m = make(map[s3Key]*S3)
		}
		s3Clients.m[key] = fs
	}
	return fs, nil
}

func awsEnvDigest() [sha256.Size]byte {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	return sha256.Sum256([]byte(strings.Join(env, "\x00")))
}

func newS3(ctx context.Context, opts S3Options) (*S3, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(opts.Profile))
	}
	// The SDK's buildable client, so that AWS_CA_BUNDLE can be applied to it.
	loadOpts = append(loadOpts, config.WithHTTPClient(awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 10 * time.Second
	})))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		// The SDK's configuration errors name files and profiles, never secrets.
		return nil, fmt.Errorf("storage: loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient
		}
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = opts.MaxAttempts
			so.MaxBackoff = opts.MaxBackoff
			// A batch job would rather wait out an outage than fail fast:
			// MaxAttempts alone bounds the retries, with no shared budget.
			so.RateLimiter = ratelimit.None
		})
		// Ranged GETs carry no whole-object checksum, and the SDK would warn
		// on each one; parts are still checksummed on upload.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	fs := &S3{client: client, opts: opts, region: cfg.Region}
	if ep := client.Options().BaseEndpoint; ep != nil {
		fs.endpoint = *ep
	}
	return fs, nil
}

// Client returns the SDK client, for what this package does not cover.
func (s *S3) Client() *s3.Client { return s.client }

// Options returns the options s was made with.
func (s *S3) Options() S3Options { return s.opts }

// parseS3 splits "s3://bucket/key".
func parseS3(p string) (bucket, key string, err error) {
	scheme, rest, ok := splitScheme(p)
	if !ok || scheme != "s3" {
		return "", "", newError(p, "not an s3:// URL")
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", newError(p, "no bucket: write s3://bucket/key")
	}
	return bucket, key, nil
}

// parseS3Object is parseS3 for a URL that must name an object.
func parseS3Object(p string) (bucket, key string, err error) {
	bucket, key, err = parseS3(p)
	if err == nil && (key == "" || strings.HasSuffix(key, "/")) {
		err = newError(p, "names a bucket or a prefix, not an object: write s3://bucket/key")
	}
	return bucket, key, err
}

func s3URL(bucket, key string) string { return "s3://" + bucket + "/" + key }

// Open checks that the object exists (HeadObject) and returns it. ctx bounds
// the File's life: its ReadAt calls fail once ctx is done.
func (s *S3) Open(ctx context.Context, p string) (File, error) {
	bucket, key, err := parseS3Object(p)
	if err != nil {
		return nil, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, s.headError(ctx, p, "open", bucket, err)
	}
	return &s3File{
		fs: s, ctx: ctx, path: p, bucket: bucket, key: key,
		size: aws.ToInt64(out.ContentLength), etag: aws.ToString(out.ETag),
	}, nil
}

// Stat describes one object (HeadObject).
func (s *S3) Stat(ctx context.Context, p string) (FileInfo, error) {
	bucket, key, err := parseS3Object(p)
	if err != nil {
		return FileInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return FileInfo{}, s.headError(ctx, p, "stat", bucket, err)
	}
	return FileInfo{Path: s3URL(bucket, key), Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// headError maps a HeadObject failure. A HEAD answer has no body, so a
// missing bucket and a missing key both read "NotFound": ask HeadBucket which.
func (s *S3) headError(ctx context.Context, p, op, bucket string, err error) error {
	if apiCode(err) == "NotFound" {
		if _, berr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); apiCode(berr) == "NotFound" || apiCode(berr) == "NoSuchBucket" {
			return s.mapError(p, op, bucket, &smithy.GenericAPIError{Code: "NoSuchBucket"})
		}
	}
	return s.mapError(p, op, bucket, err)
}

// Delete removes one object (DeleteObject).
func (s *S3) Delete(ctx context.Context, p string) error {
	bucket, key, err := parseS3Object(p)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
	if err != nil && apiCode(err) != "NoSuchKey" {
		return s.mapError(p, "delete", bucket, err)
	}
	return nil
}

// List lists the objects under prefix with ListObjectsV2, MaxKeys per page.
// "s3://b/dir" lists the keys below "dir/" (not "dirt"), or the object "dir"
// when there are none; "s3://b/dir/" and "s3://b" list the prefix as is.
func (s *S3) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	bucket, key, err := parseS3(prefix)
	if err != nil {
		return nil, err
	}
	dir := key
	if key != "" && !strings.HasSuffix(key, "/") {
		dir = key + "/"
	}
	var out []FileInfo
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: &bucket, Prefix: &dir, MaxKeys: aws.Int32(s.opts.MaxKeys),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.mapError(prefix, "list", bucket, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if strings.HasSuffix(k, "/") {
				continue
			}
			out = append(out, FileInfo{Path: s3URL(bucket, k), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	if len(out) == 0 && dir != key {
		fi, err := s.Stat(ctx, prefix)
		if errors.Is(err, ErrNotExist) && !isBucketError(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []FileInfo{fi}, nil
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// ListUploads lists the multipart uploads under prefix (same prefix rules as
// List) that were never completed or aborted. MinIO matches the prefix of
// ListMultipartUploads only against whole keys, so when the prefix finds
// nothing the bucket's uploads are listed and filtered here.
func (s *S3) ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error) {
	bucket, key, err := parseS3(prefix)
	if err != nil {
		return nil, err
	}
	out, err := s.listUploads(ctx, prefix, bucket, key, key)
	if err == nil && len(out) == 0 && key != "" {
		out, err = s.listUploads(ctx, prefix, bucket, key, "")
	}
	return out, err
}

func (s *S3) listUploads(ctx context.Context, prefix, bucket, key, query string) ([]PendingUpload, error) {
	var out []PendingUpload
	pages := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{
		Bucket: &bucket, Prefix: &query, MaxUploads: aws.Int32(s.opts.MaxKeys),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.mapError(prefix, "list uploads", bucket, err)
		}
		for _, u := range page.Uploads {
			k := aws.ToString(u.Key)
			if !strings.HasPrefix(k, key) || !strings.HasSuffix(key, "/") && k != key && !strings.HasPrefix(k, key+"/") {
				continue
			}
			out = append(out, PendingUpload{Path: s3URL(bucket, k), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
	}
	return out, nil
}

// AbortUpload aborts a multipart upload found by ListUploads.
func (s *S3) AbortUpload(ctx context.Context, u PendingUpload) error {
	bucket, key, err := parseS3Object(u.Path)
	if err != nil {
		return err
	}
	_, err = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: &u.ID})
	if err != nil && apiCode(err) != "NoSuchUpload" {
		return s.mapError(u.Path, "abort upload", bucket, err)
	}
	return nil
}

// s3File reads an object with ranged GETs.
type s3File struct {
	fs                *S3
	ctx               context.Context
	path, bucket, key string
	size              int64
	etag              string
}

func (f *s3File) Size() int64  { return f.size }
func (f *s3File) Path() string { return f.path }
func (f *s3File) Close() error { return nil }

// ReadAt reads len(b) bytes at off with one ranged GET. The SDK retries a GET
// that fails before its body starts; a body cut short (a dropped connection,
// a restarted server) is resumed from where it stopped, with backoff, up to
// MaxAttempts times in a row without progress.
func (f *s3File) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, newError(f.path, fmt.Sprintf("read: negative offset %d", off))
	}
	if off >= f.size {
		if len(b) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := int64(len(b))
	if off+want > f.size {
		want = f.size - off
	}
	var n int64
	for failures := 0; n < want; {
		if err := f.ctx.Err(); err != nil {
			return int(n), newError(f.path, "read: "+err.Error(), err)
		}
		rng := fmt.Sprintf("bytes=%d-%d", off+n, off+want-1)
		out, err := f.fs.client.GetObject(f.ctx, &s3.GetObjectInput{
			Bucket: &f.bucket, Key: &f.key, Range: &rng, IfMatch: &f.etag,
		})
		if err != nil {
			return int(n), f.fs.mapError(f.path, "read", f.bucket, err)
		}
		if cr := aws.ToString(out.ContentRange); !strings.HasPrefix(cr, fmt.Sprintf("bytes %d-", off+n)) {
			out.Body.Close()
			return int(n), newError(f.path, fmt.Sprintf("read: asked for %s, the server answered Content-Range %q: it does not support ranged reads", rng, cr))
		}
		k, err := io.ReadFull(out.Body, b[n:want])
		out.Body.Close()
		n += int64(k)
		if err == nil {
			break
		}
		if k > 0 {
			failures = 0
		}
		failures++
		if failures >= f.fs.opts.MaxAttempts || f.ctx.Err() != nil {
			return int(n), newError(f.path, fmt.Sprintf("read: connection lost %d times at byte %d: %v", failures, off+n, err), err)
		}
		if err := sleepCtx(f.ctx, backoff(failures, f.fs.opts.MaxBackoff)); err != nil {
			return int(n), newError(f.path, "read: "+err.Error(), err)
		}
	}
	if int(n) < len(b) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// backoff is the wait before retry number attempt (1-based): 100ms doubling,
// capped at max, with full jitter on the upper half.
func backoff(attempt int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 20)
	if d > max || d <= 0 {
		d = max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// bucketError marks the error for a missing bucket, which List must not
// confuse with a missing object.
type bucketError struct{ error }

func isBucketError(err error) bool {
	var pe *pathError
	if !errors.As(err, &pe) {
		return false
	}
	for _, c := range pe.cause {
		if _, ok := c.(bucketError); ok {
			return true
		}
	}
	return false
}

// mapError turns an SDK error into a pathError that says what to do. Its
// text never holds credentials: for authentication failures only the S3
// error code is shown, and the SDK's texts name operations, URLs and request
// IDs, not keys.
func (s *S3) mapError(p, op, bucket string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return newError(p, op+": "+contextCause(err), err)
	}
	attempts := ""
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		attempts = fmt.Sprintf(" after %d attempts", me.Attempt)
	}
	var se *v4.SigningError
	if errors.As(err, &se) {
		return newError(p, op+": no usable AWS credentials ("+rootCause(se.Err)+"): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE", err)
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		where := "S3 in " + s.region
		if s.endpoint != "" {
			where = s.endpoint
		}
		return newError(p, fmt.Sprintf("%s: cannot reach %s%s (%s): check AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL and that the server is up",
			op, where, attempts, rootCause(send.Err)), err)
	}
	code := apiCode(err)
	switch code {
	case "":
	case "NoSuchBucket":
		return newError(p, fmt.Sprintf("bucket %q does not exist: create it or check the URL", bucket), ErrNotExist, bucketError{err})
	case "NoSuchKey", "NotFound":
		return notExist(p, "no such object", err)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "ExpiredToken",
		"InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "InvalidSecurity", "AccountProblem":
		return newError(p, "access denied ("+code+"): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile", err)
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return newError(p, fmt.Sprintf("the bucket is not in region %s (%s): set AWS_REGION to the bucket's region", s.region, code), err)
	case "PreconditionFailed":
		return newError(p, "the object changed while it was being read: open it again", err)
	case "NoSuchUpload":
		return newError(p, op+": the multipart upload is gone (aborted, or expired by a lifecycle rule): write the file again", err)
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "XMinioServerNotInitialized":
		return newError(p, fmt.Sprintf("%s: S3 is overloaded or unavailable (%s)%s: try again later", op, code, attempts), err)
	}
	return newError(p, op+": "+err.Error(), err)
}

func contextCause(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded.Error()
	}
	return context.Canceled.Error()
}

// rootCause is the innermost error's text: "dial tcp 127.0.0.1:9: connect:
// connection refused" rather than the SDK's whole chain.
func rootCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
