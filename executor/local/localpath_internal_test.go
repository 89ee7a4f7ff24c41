package local

import "testing"

// TestLocalPath: only paths storage.For opens locally are read on demand.
func TestLocalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/data/sales/part-0.parquet":   true,
		"sales/part-0.parquet":         true,
		"file:///data/part-0.parquet":  true,
		"s3://bucket/sales/p0.parquet": false,
		"gs://bucket/p0.parquet":       false,
	} {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %v, want %v", p, got, want)
		}
	}
}
