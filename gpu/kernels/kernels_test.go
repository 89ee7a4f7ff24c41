package kernels

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFresh fails when sluice.cu or a .cuh file was edited (or added) and
// the PTX not rebuilt: run make kernels on the GPU machine and commit what
// it writes.
func TestFresh(t *testing.T) {
	built := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(Source), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("sluice.cu.sha256: line %q is not sha256sum's output", line)
		}
		built[name] = sum
	}
	files, err := filepath.Glob("*.cuh")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"sluice.cu"}, files...)
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(src)
		if want := hex.EncodeToString(sum[:]); built[name] != want {
			t.Errorf("the PTX was built from %s with sha256 %q, the file now has %s: rebuild it (make kernels on the GPU machine)", name, built[name], want)
		}
		delete(built, name)
	}
	for name := range built {
		t.Errorf("the PTX was built from %s, which is gone: rebuild it (make kernels on the GPU machine)", name)
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

// TestEmulators runs emu/run.sh: the flash attention and int4 tensor-core
// kernels on the host emulation of a thread block (emu/emu.h), against
// float64 references. It needs g++ with C++20's <barrier> (g++ 11 or
// later) and skips without one.
func TestEmulators(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the emulators take about 20 s on 2 cores")
	}
	gxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("no g++ here: the kernel emulators need it")
	}
	if out, err := exec.Command(gxx, "-dumpversion").Output(); err == nil {
		if v, _ := strconv.Atoi(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0]); v < 11 {
			t.Skipf("g++ %s has no C++20 <barrier>: the kernel emulators need g++ 11 or later", strings.TrimSpace(string(out)))
		}
	}
	out, err := exec.Command("bash", "emu/run.sh").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("emu/run.sh: %v", err)
	}
}
