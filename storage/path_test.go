package storage

import (
	"testing"
)

func TestJoin(t *testing.T) {
	for _, tc := range []struct {
		base  string
		elems []string
		want  string
	}{
		{"s3://b", []string{"k"}, "s3://b/k"},
		{"s3://b/", []string{"dir", "k.csv"}, "s3://b/dir/k.csv"},
		{"s3://b/dir/", []string{"/k"}, "s3://b/dir/k"},
		{"s3://b/dir", []string{"../../../k"}, "s3://b/k"},
		{"s3://b/dir", []string{".."}, "s3://b"},
		{"s3://b/a//b", nil, "s3://b/a/b"},
		{"file:///data", []string{"x", "y"}, "file:///data/x/y"},
		{"/data", []string{"x", "../y"}, "/data/y"},
		{"data", []string{"x"}, "data/x"},
	} {
		if got := Join(tc.base, tc.elems...); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.base, tc.elems, got, tc.want)
		}
	}
}

func TestIsURL(t *testing.T) {
	for p, want := range map[string]bool{
		"s3://b/k":       true,
		"file:///x":      true,
		"S3://b":         true,
		"git+ssh://x":    true,
		"/abs/path":      false,
		"rel/path":       false,
		"dir/a://b":      false,
		"://x":           false,
		"c:/windows":     false,
		"3s://b":         false,
		"weird name://x": false,
	} {
		if got := IsURL(p); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestFor(t *testing.T) {
	for _, p := range []string{"/data/x", "rel", "file:///data/x"} {
		fsys, err := For(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fsys.(*Local); !ok {
			t.Errorf("For(%q) = %T, want *Local", p, fsys)
		}
	}
	for p, want := range map[string]string{
		"gs://b/k": `storage: gs://b/k: unsupported scheme "gs": use s3://bucket/key or a local path`,
		"s3:///k":  "storage: s3:///k: no bucket: write s3://bucket/key",
	} {
		if _, err := For(p); err == nil || err.Error() != want {
			t.Errorf("For(%q):\n got %v\nwant %s", p, err, want)
		}
	}
}

func TestS3OptionsValidate(t *testing.T) {
	if err := DefaultS3Options().Validate(); err != nil {
		t.Fatal(err)
	}
	o := DefaultS3Options()
	o.PartSize = 1 << 20
	if err := o.Validate(); err == nil || err.Error() != "storage: S3Options.PartSize (1048576) must be between 5 MiB (5242880) and 5 GiB (5368709120)" {
		t.Errorf("Validate: %v", err)
	}
	o = DefaultS3Options()
	o.MaxKeys = 1001
	if err := o.Validate(); err == nil || err.Error() != "storage: S3Options.MaxKeys (1001) must be between 1 and 1000" {
		t.Errorf("Validate: %v", err)
	}
}
