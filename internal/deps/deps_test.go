package deps

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sluicehq/sluice/"

// A rule: pkg must not depend, directly or not, on the forbidden packages:
// "gpu/..." is gpu and everything under it, "dataset" is that package only.
var rules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"executor/cluster/state", []string{"gpu/...", "infer/...", "dataset/...", "plans/...", "executor/local/...", "train/...", "tune/..."},
		"the Raft state machine replicates job and schedule state; it must not link the engines"},
	{"schedule", []string{"gpu/...", "infer/...", "dataset/...", "plans/...", "executor/...", "storage/..."},
		"cron schedules are a leaf"},
	{"dataset/plan", []string{"dataset", "executor/...", "plans/...", "infer/...", "gpu/..."},
		"the plan is below the executors and the dataset API"},
	{"executor/local", []string{"dataset", "plans/...", "infer/...", "gpu/...", "executor/cluster/...", "train/...", "tune/..."},
		"the local executor runs plans of package dataset/plan; dataset and plans are above it"},
	{"executor/cluster/dist", []string{"dataset", "plans/...", "infer/...", "gpu/...", "executor/cluster/worker/...", "executor/cluster/coordinator/..."},
		"the distributed plan is below the dataset API, plans, the worker and the coordinator"},
	{"dataset", []string{"plans/...", "infer/...", "gpu/...", "executor/cluster/...", "train/...", "tune/..."},
		"dataset builds plans and runs them locally; YAML plans and the cluster are above it"},
	{"plans", []string{"infer/...", "gpu/...", "executor/cluster/...", "train/...", "tune/..."},
		"plans compiles YAML to a dataset; the infer step's compiler registers from package infer"},
	{"storage", []string{"dataset/...", "plans/...", "executor/...", "infer/...", "gpu/..."},
		"storage is a leaf file system"},
	{"infer/engine", []string{"dataset/...", "plans/...", "executor/...", "gpu/cuda/..."},
		"the engine core serves requests; the dataset stage lives in package infer, and a program picks its GPU backends"},
	{"infer/model", []string{"dataset/...", "plans/...", "executor/...", "gpu/cuda/..."},
		"model loading and the forward pass work on any gpu.Device; only the program (infer's Load, cmd/sluice) links cuda"},
	{"infer/serve", []string{"gpu/cuda/...", "executor/cluster/state/..."},
		"the server runs on an engine it is given; the backend is the program's choice"},
	{"train", []string{"executor/cluster/...", "infer/serve/...", "tune/..."},
		"training is below the cluster, serving and tuning (it links gpu/cuda as package infer does, so --device cuda works from Go)"},
}

// A direct rule: pkg's own imports (test files left out) must not name the
// forbidden packages, though it may reach them through another package.
var direct = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"plans", []string{"executor/..."},
		"plans goes through dataset's API (dataset.Run, dataset.Config) to run a job; only dataset imports executor/local"},
}

func forbidden(dep string, patterns []string) bool {
	for _, p := range patterns {
		if tree, ok := strings.CutSuffix(p, "/..."); ok {
			if dep == module+tree || strings.HasPrefix(dep, module+tree+"/") {
				return true
			}
		} else if dep == module+p {
			return true
		}
	}
	return false
}

func TestRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("SKIP: no go command to list dependencies")
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", module+r.pkg).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, stderr)
		}
		for _, dep := range strings.Fields(string(bytes.TrimSpace(out))) {
			if dep == module+r.pkg {
				continue
			}
			if forbidden(dep, r.forbidden) {
				t.Errorf("%s depends on %s (forbidden: %s): %s", r.pkg, strings.TrimPrefix(dep, module), strings.Join(r.forbidden, ", "), r.why)
			}
		}
	}
}

func TestDirectImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("SKIP: no go command to list imports")
	}
	for _, r := range direct {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, module+r.pkg).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list %s: %v\n%s", r.pkg, err, stderr)
		}
		for _, imp := range strings.Fields(string(out)) {
			if forbidden(imp, r.forbidden) {
				t.Errorf("%s imports %s (forbidden: %s): %s", r.pkg, strings.TrimPrefix(imp, module), strings.Join(r.forbidden, ", "), r.why)
			}
		}
	}
}

// testOnly are packages for tests: no program links them.
var testOnly = []string{"internal/clustertest", "internal/testcert"}

func TestTestOnlyPackages(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("SKIP: no go command to list imports")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %s...: %v\n%s", module, err, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, imp := range f[1:] {
			if forbidden(imp, testOnly) {
				t.Errorf("%s imports %s, which is for tests only (import it from _test.go files)", strings.TrimPrefix(f[0], module), strings.TrimPrefix(imp, module))
			}
		}
	}
}
