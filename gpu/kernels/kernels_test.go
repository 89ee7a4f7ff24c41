package kernels

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestFresh fails when sluice.cu was edited and the PTX not rebuilt: run
// make kernels on the GPU machine and commit what it writes.
func TestFresh(t *testing.T) {
	src, err := os.ReadFile("sluice.cu")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	got, _, _ := strings.Cut(Source, " ")
	if want := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("the PTX was built from sluice.cu with sha256 %s, the file now has %s: rebuild it (make kernels on the GPU machine)", got, want)
	}
}

// TestPTX checks the architecture choice and the NUL cuModuleLoadData needs.
func TestPTX(t *testing.T) {
	if PTX(7, 5) != nil {
		t.Error("PTX(7, 5): want nil for pre-Ampere devices")
	}
	for _, cc := range [][2]int{{8, 0}, {8, 9}, {9, 0}, {10, 0}} {
		p := PTX(cc[0], cc[1])
		if len(p) < 2 || p[len(p)-1] != 0 {
			t.Fatalf("PTX(%d, %d): %d bytes, want NUL-terminated PTX", cc[0], cc[1], len(p))
		}
		target := ".target sm_80"
		if cc[0] >= 9 {
			target = ".target sm_90"
		}
		if !bytes.Contains(p, []byte(target)) {
			t.Errorf("PTX(%d, %d) lacks %q", cc[0], cc[1], target)
		}
	}
}
