package storage

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// IsURL reports whether p starts with a URL scheme ("s3://", "file://"), as
// opposed to being a plain local path.
func IsURL(p string) bool {
	_, _, ok := splitScheme(p)
	return ok
}

// splitScheme splits "scheme://rest"; the scheme is lower-cased.
func splitScheme(p string) (scheme, rest string, ok bool) {
	i := strings.Index(p, "://")
	if i <= 0 {
		return "", p, false
	}
	for j, c := range p[:i] {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", p, false
		}
	}
	return strings.ToLower(p[:i]), p[i+3:], true
}

// For returns the FS that serves path: S3 (see [DefaultS3]) for "s3://bucket/key",
// the local file system for "file://..." and for a plain path. The FS serves
// every path of its kind, not only the one given.
func For(path string) (FS, error) {
	scheme, _, ok := splitScheme(path)
	if !ok || scheme == "file" {
		return NewLocal(), nil
	}
	if scheme == "s3" {
		if _, _, err := parseS3(path); err != nil {
			return nil, err
		}
		return DefaultS3()
	}
	return nil, newError(path, fmt.Sprintf("unsupported scheme %q: use s3://bucket/key or a local path", scheme))
}

// Join joins path elements onto base, which may be a URL ("s3://b/dir") or a
// local path, cleaning the result ("..", doubled slashes). It never climbs
// above a URL's bucket.
func Join(base string, elems ...string) string {
	scheme, rest, ok := splitScheme(base)
	if !ok {
		return filepath.Join(append([]string{base}, elems...)...)
	}
	if scheme == "file" {
		return scheme + "://" + path.Join(append([]string{rest}, elems...)...)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	key = path.Join(append([]string{"/", key}, elems...)...)
	if key == "/" {
		return scheme + "://" + bucket
	}
	return scheme + "://" + bucket + key
}

// localPath turns a plain path or a file:// URL into an OS path.
func localPath(p string) string {
	if scheme, rest, ok := splitScheme(p); ok && scheme == "file" {
		return filepath.FromSlash(rest)
	}
	return p
}
