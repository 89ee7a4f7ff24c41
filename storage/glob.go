package storage

import (
	"context"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Glob returns the files of fsys that match pattern, sorted by path.
//
// The pattern is a path or URL whose segments (split at "/") may hold the
// wildcards of [path.Match]: "*" (any run of characters within a segment),
// "?" (one character), "[...]" (a character class) and "\" (escape). A
// segment that is exactly "**" matches any number of segments, none included,
// so "s3://b/logs/**/*.parquet" finds Parquet files at any depth below logs.
//
// Only the part of the pattern before the first wildcard is listed (one
// recursive List of that directory or S3 prefix, paginated on S3), so keep the
// literal part as long as possible.
//
// A pattern without wildcards that names a file returns that file; one that
// names a directory (or an S3 prefix) returns every file below it, as if
// "/**" were appended.
//
// Hidden files are skipped, as Spark and Hadoop do when they read a directory:
// a file is left out when a segment of its path below the literal part begins
// with "." or "_" (".sluice-tmp" staging files, "_SUCCESS", "_temporary/"),
// unless the pattern segment that matches it begins with the same character
// ("dir/_*" finds "dir/_SUCCESS"). A literal path always names itself.
// [FS.List] itself skips nothing.
//
// A pattern that matches nothing returns an empty slice and no error.
func Glob(ctx context.Context, fsys FS, pattern string) ([]FileInfo, error) {
	base, segs, err := splitPattern(pattern)
	if err != nil {
		return nil, err
	}
	lit := 0
	for lit < len(segs) && !hasMeta(segs[lit]) {
		lit++
	}
	for _, s := range segs[lit:] {
		if s == "**" {
			continue
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, newError(pattern, "bad glob pattern: segment "+quote(s)+": "+err.Error(), err)
		}
	}
	rest := segs[lit:]
	if len(rest) == 0 {
		rest = []string{"**"}
	}
	root := joinRoot(base, segs[:lit])
	infos, err := fsys.List(ctx, root)
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(infos))
	for _, fi := range infos {
		name, ok := pathSegments(base, fi.Path)
		if !ok || len(name) < lit || !slices.Equal(name[:lit], segs[:lit]) {
			continue
		}
		if len(name) == lit || matchSegments(rest, name[lit:]) {
			out = append(out, fi)
		}
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func quote(s string) string { return "\"" + s + "\"" }

// hasMeta reports whether a pattern segment needs path.Match.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// splitPattern splits a pattern into the part that is never matched (the
// scheme and bucket of a URL, "" for a local path) and the "/"-separated
// segments after it. Local patterns are cleaned the way Local.List cleans its
// paths, so the segments of listed paths line up with the pattern's.
func splitPattern(pattern string) (base string, segs []string, err error) {
	scheme, rest, ok := splitScheme(pattern)
	if ok && scheme != "file" {
		bucket, key, _ := strings.Cut(rest, "/")
		if bucket == "" || hasMeta(bucket) {
			return "", nil, newError(pattern, "bad glob pattern: the bucket must be named without wildcards")
		}
		base = scheme + "://" + bucket + "/"
		key = strings.Trim(key, "/")
		if key == "" {
			return base, nil, nil
		}
		return base, strings.Split(key, "/"), nil
	}
	p := filepath.ToSlash(filepath.Clean(localPath(pattern)))
	if p == "." {
		return "", nil, nil
	}
	return "", strings.Split(p, "/"), nil
}

// joinRoot is the path to list for the literal segments lit.
func joinRoot(base string, lit []string) string {
	root := strings.Join(lit, "/")
	switch {
	case base != "":
		return base + root
	case root == "" && len(lit) > 0: // "/" alone
		return "/"
	case root == "":
		return "."
	}
	return filepath.FromSlash(root)
}

// pathSegments splits a listed path the way splitPattern split the pattern.
func pathSegments(base, p string) ([]string, bool) {
	if base != "" {
		key, ok := strings.CutPrefix(p, base)
		if !ok {
			return nil, false
		}
		return strings.Split(key, "/"), true
	}
	p = filepath.ToSlash(filepath.Clean(localPath(p)))
	return strings.Split(p, "/"), true
}

// hidden reports whether a file or directory name is skipped by Glob.
func hidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// matchSegments matches name segments against pattern segments, "**" matching
// any number of segments; see Glob for the hidden-name rule.
func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 1 && pat[1] == "**" {
				pat = pat[1:]
			}
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat[1:], name[i:]) {
					return true
				}
				if i < len(name) && hidden(name[i]) {
					return false
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if hidden(name[0]) && (pat[0] == "" || pat[0][0] != name[0][0]) {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
