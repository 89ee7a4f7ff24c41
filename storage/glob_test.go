package storage

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// globTree is the tree the glob cases run over, on disk and on S3.
var globTree = []string{
	"data/a.csv",
	"data/b.csv",
	"data/c.txt",
	"data/x1.csv",
	"data/x2.csv",
	"data/xa.csv",
	"data/_SUCCESS",
	"data/.a.csv.sluice-tmp-0123",
	"data/.hidden/g.csv",
	"data/sub/d.csv",
	"data/sub/deep/e.csv",
	"data/sub/_tmp/f.csv",
	"datafile.csv",
	"data-other/h.csv",
}

var globCases = []struct {
	pattern string
	want    []string
}{
	{"data", []string{"data/a.csv", "data/b.csv", "data/c.txt", "data/sub/d.csv", "data/sub/deep/e.csv", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/", []string{"data/a.csv", "data/b.csv", "data/c.txt", "data/sub/d.csv", "data/sub/deep/e.csv", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/**", []string{"data/a.csv", "data/b.csv", "data/c.txt", "data/sub/d.csv", "data/sub/deep/e.csv", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/*.csv", []string{"data/a.csv", "data/b.csv", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/x?.csv", []string{"data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/x[0-9].csv", []string{"data/x1.csv", "data/x2.csv"}},
	{"data/x[^0-9].csv", []string{"data/xa.csv"}},
	{"data/[ab].*", []string{"data/a.csv", "data/b.csv"}},
	{`data/x\1.csv`, []string{"data/x1.csv"}},
	{"data/**/*.csv", []string{"data/a.csv", "data/b.csv", "data/sub/d.csv", "data/sub/deep/e.csv", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/**/**/e.csv", []string{"data/sub/deep/e.csv"}},
	{"data/**/deep/*", []string{"data/sub/deep/e.csv"}},
	{"data/*/*.csv", []string{"data/sub/d.csv"}},
	{"data/*", []string{"data/a.csv", "data/b.csv", "data/c.txt", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"data/_*", []string{"data/_SUCCESS"}},
	{"data/.*", []string{"data/.a.csv.sluice-tmp-0123"}},
	{"data/_SUCCESS", []string{"data/_SUCCESS"}},
	{"data/sub/_tmp", []string{"data/sub/_tmp/f.csv"}},
	{"data/*/_tmp/*", []string{"data/sub/_tmp/f.csv"}},
	{"data/a.csv", []string{"data/a.csv"}},
	{"data*/*.csv", []string{"data-other/h.csv", "data/a.csv", "data/b.csv", "data/x1.csv", "data/x2.csv", "data/xa.csv"}},
	{"*.csv", []string{"datafile.csv"}},
	{"data/nope", nil},
	{"data/nope/*.csv", nil},
	{"nope/**", nil},
}

// testGlob runs globCases against fsys, where join turns a tree path into a
// path of fsys.
func testGlob(t *testing.T, fsys FS, join func(rel string) string) {
	ctx := context.Background()
	for _, tc := range globCases {
		infos, err := Glob(ctx, fsys, join(tc.pattern))
		if err != nil {
			t.Errorf("Glob(%q): %v", tc.pattern, err)
			continue
		}
		var want []string
		for _, w := range tc.want {
			want = append(want, join(w))
		}
		if got := paths(infos); !equalStrings(got, want) {
			t.Errorf("Glob(%q):\n got %q\nwant %q", tc.pattern, got, want)
		}
	}
	if _, err := Glob(ctx, fsys, join("data/[a")); err == nil || !strings.Contains(err.Error(), `bad glob pattern: segment "[a": syntax error in pattern`) {
		t.Errorf("Glob(data/[a): %v", err)
	}
}

func TestGlobLocal(t *testing.T) {
	root := t.TempDir()
	fsys := NewLocal()
	for _, p := range globTree {
		writeFile(t, fsys, filepath.Join(root, p), []byte(p))
	}
	testGlob(t, fsys, func(rel string) string {
		if strings.HasSuffix(rel, "/") {
			return root + "/" + rel
		}
		return filepath.Join(root, rel)
	})
	// file:// URLs glob too, returning OS paths.
	infos, err := Glob(context.Background(), fsys, "file://"+root+"/data/*.txt")
	if err != nil || len(infos) != 1 || infos[0].Path != filepath.Join(root, "data/c.txt") || infos[0].Size != int64(len("data/c.txt")) {
		t.Errorf("Glob(file://.../data/*.txt) = %+v, %v", infos, err)
	}
}

func TestGlobRelative(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	for _, p := range []string{"a/x.csv", "a/b/y.csv", "z.csv"} {
		writeFile(t, NewLocal(), p, nil)
	}
	for pattern, want := range map[string][]string{
		"a/**/*.csv":                           {"a/b/y.csv", "a/x.csv"},
		"./a/*.csv":                            {"a/x.csv"},
		"*.csv":                                {"z.csv"},
		"**/y.csv":                             {"a/b/y.csv"},
		"a/../*.csv":                           {"z.csv"},
		"./z.csv":                              {"z.csv"},
		"../" + filepath.Base(root) + "/z.csv": {"../" + filepath.Base(root) + "/z.csv"},
	} {
		infos, err := Glob(context.Background(), NewLocal(), pattern)
		if got := paths(infos); err != nil || !equalStrings(got, want) {
			t.Errorf("Glob(%q) = %q, %v; want %q", pattern, got, err, want)
		}
	}
}

func TestMatchSegments(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**", "_a/b", false},
		{"**/b", "b", true},
		{"**/b", "a/b", true},
		{"**/b", "_a/b", false},
		{"*/b", "_a/b", false},
		{"_*/b", "_a/b", true},
		{"?a", "_a", false}, // a wildcard never matches a leading "_" or "."
		{"a/**/b/**/c", "a/x/b/y/z/c", true},
		{"a/**/b/**/c", "a/x/y/z/c", false},
		{"a/*", "a", false},
		{"a/*", "a/b/c", false},
	} {
		if got := matchSegments(strings.Split(tc.pat, "/"), strings.Split(tc.name, "/")); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pat, tc.name, got, tc.want)
		}
	}
}
