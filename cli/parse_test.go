package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

func TestParseResources(t *testing.T) {
	tests := []struct {
		in   string
		want state.Resources
		err  bool
	}{
		{"cpu=8,gpu=1,memory=16GiB", state.Resources{CPU: 8, GPU: 1, Memory: 16 << 30}, false},
		{"cpu=2,memory=512MB", state.Resources{CPU: 2, Memory: 512e6}, false},
		{"cpu=1,memory=1024", state.Resources{CPU: 1, Memory: 1024}, false},
		{"cpu=x", state.Resources{}, true},
		{"disk=1", state.Resources{}, true},
		{"cpu", state.Resources{}, true},
	}
	for _, tt := range tests {
		got, err := ParseResources(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseResources(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"512", 512}, {"64MiB", 64 << 20}, {"2GB", 2e9}, {"1.5KiB", 1536}, {"16g", 16 << 30}} {
		if got, err := ParseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseSize("-1MB"); err == nil {
		t.Error("ParseSize(-1MB): no error")
	}
}

func TestLoadToken(t *testing.T) {
	t.Setenv("SLUICE_TOKEN", "")
	if _, err := LoadToken(""); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("no file, no env: %v", err)
	}
	t.Setenv("SLUICE_TOKEN", " env-token\n")
	if tok, err := LoadToken(""); err != nil || tok != "env-token" {
		t.Errorf("env: %q, %v", tok, err)
	}
	empty := t.TempDir() + "/token"
	if err := writeFile(empty, "\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadToken(empty); err == nil || !strings.Contains(err.Error(), empty+" is empty") {
		t.Errorf("empty file: %v", err)
	}
}

func writeFile(name, text string) error { return os.WriteFile(name, []byte(text), 0o600) }
