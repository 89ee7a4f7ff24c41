package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sluice runs the CLI in-process and returns its exit code and output.
func sluice(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), &env{stdout: &out, stderr: &errOut, stdin: strings.NewReader("")}, args)
	return code, out.String(), errOut.String()
}

// planDir is a temporary current directory holding plan.yaml, a
// quickstart-like plan over the shipped sample data that writes to out/q/.
func planDir(t *testing.T, extra string) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plan := `name: q
params:
  min: "50"
read:
  parquet: ` + filepath.Join(root, "examples", "data", "sales") + `/
steps:
  - filter: "price > {{ .Params.min }} AND category IN ('c1', 'c7')"
  - with_column: {name: revenue, expr: "price * qty"}
  - select: [id, category, revenue]
write:
  parquet: out/q/
  mode: overwrite
` + extra
	if err := os.WriteFile(filepath.Join(dir, "plan.yaml"), []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return dir
}

var wroteLine = regexp.MustCompile(`(?m)^wrote (\d+) rows in (\d+) files? to out/q/$`)

func TestRunCommand(t *testing.T) {
	planDir(t, "")
	code, out, errOut := sluice(t, "run", "plan.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	m := wroteLine.FindStringSubmatch(out)
	if m == nil || m[1] == "0" || !strings.Contains(out, "rows in  rows out") || !strings.Contains(out, "Write parquet out/q/") {
		t.Errorf("output:\n%s", out)
	}
	files, _ := filepath.Glob("out/q/*.parquet")
	if len(files) == 0 {
		t.Error("no files written")
	}

	// --param changes the result; flags may follow the file.
	code, out2, errOut := sluice(t, "run", "plan.yaml", "--param", "min=90")
	m2 := wroteLine.FindStringSubmatch(out2)
	if code != 0 || m2 == nil || len(m2[1]) == 0 || m2[1] == m[1] {
		t.Errorf("--param min=90: exit %d, %v vs %v\n%s%s", code, m2, m[1], out2, errOut)
	}

	code, _, errOut = sluice(t, "run", "--param", "mn=90", "plan.yaml")
	if code != 1 || !strings.Contains(errOut, `unknown param "mn" (did you mean "min"?): plan.yaml declares min`) {
		t.Errorf("unknown param: exit %d: %s", code, errOut)
	}
	code, _, errOut = sluice(t, "run", "--param", "min", "plan.yaml")
	if code != 2 || !strings.Contains(errOut, `want name=value`) {
		t.Errorf("--param without =: exit %d: %s", code, errOut)
	}
	if code, _, _ := sluice(t, "run"); code != 2 {
		t.Errorf("run without a plan: exit %d, want 2", code)
	}
}

func TestRunDryRun(t *testing.T) {
	planDir(t, "")
	code, out, errOut := sluice(t, "run", "plan.yaml", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"== Logical plan ==", "== Optimized plan ==", "== Stages ==", "dry run: nothing written to out/q/"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat("out"); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote out/: %v", err)
	}
}

func TestRunInvalidPlan(t *testing.T) {
	planDir(t, "  partition_by: [categroy]\n")
	code, out, errOut := sluice(t, "run", "plan.yaml")
	want := "plan.yaml:13:18: write.partition_by[0]: unknown column \"categroy\" (did you mean \"category\"?)\nsluice run: plan.yaml: 1 error\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("exit %d\nstdout %q\nstderr %q\nwant   %q", code, out, errOut, want)
	}
	if _, err := os.Stat("out"); !os.IsNotExist(err) {
		t.Errorf("an invalid plan wrote out/")
	}
}

func TestValidateCommand(t *testing.T) {
	dir := planDir(t, "")
	code, out, errOut := sluice(t, "validate", "plan.yaml")
	if code != 0 || out != "plan.yaml: ok\n" || errOut != "" {
		t.Errorf("exit %d %q %q", code, out, errOut)
	}
	bad := `name: Bad
read: {parquet: ` + filepath.Join(dir, "nowhere") + `/}
steps:
  - fliter: x
write: {parquet: out/}
`
	os.WriteFile("bad.yaml", []byte(bad), 0o644)
	code, out, errOut = sluice(t, "validate", "plan.yaml", "bad.yaml")
	want := `bad.yaml:1:7: name: "Bad": use lower-case letters, digits and '-' only
bad.yaml:2:17: read.parquet: read parquet ` + filepath.Join(dir, "nowhere") + `/: no files match ` + filepath.Join(dir, "nowhere") + `/
bad.yaml:4:5: steps[0]: unknown key "fliter" (did you mean "filter"?)
sluice validate: bad.yaml: 3 errors
`
	if code != 1 || out != "plan.yaml: ok\n" || errOut != want {
		t.Errorf("exit %d\nstdout %q\nstderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
	if code, _, errOut := sluice(t, "validate", "missing.yaml"); code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: exit %d %q", code, errOut)
	}
}

// TestExamplePlans validates every example plan from the repository root,
// as the README runs them.
func TestExamplePlans(t *testing.T) {
	files, _ := filepath.Glob("../../examples/plans/*.yaml")
	if len(files) < 3 {
		t.Fatalf("%d example plans", len(files))
	}
	t.Chdir("../..")
	for _, f := range files {
		f = strings.TrimPrefix(f, "../../")
		code, out, errOut := sluice(t, "validate", f)
		if code != 0 || out != f+": ok\n" {
			t.Errorf("validate %s: exit %d\n%s%s", f, code, out, errOut)
		}
		code, out, errOut = sluice(t, "explain", f)
		if code != 0 || !strings.Contains(out, "== Stages ==") {
			t.Errorf("explain %s: exit %d\n%s%s", f, code, out, errOut)
		}
	}
}

func TestExplainCommand(t *testing.T) {
	planDir(t, "")
	code, out, _ := sluice(t, "explain", "plan.yaml", "--param", "min=70")
	if code != 0 || !strings.Contains(out, "Filter price > 70 AND category IN ('c1', 'c7')") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestPlanSchemaCommand(t *testing.T) {
	code, out, _ := sluice(t, "plan", "schema")
	var s map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("exit %d: %.200s", code, out)
	}
	if code, _, _ := sluice(t, "plan", "schema", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d", code)
	}
}

func TestScheduleNextCommand(t *testing.T) {
	code, out, errOut := sluice(t, "schedule", "next", "../../examples/plans/nightly.yaml", "-n", "3", "--after", "2024-03-30T12:00:00Z")
	want := "2024-03-31T03:00:00+02:00\n2024-04-01T02:00:00+02:00\n2024-04-02T02:00:00+02:00\n"
	if code != 0 || out != want {
		t.Errorf("exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	code, out, _ = sluice(t, "schedule", "next", "../../examples/plans/nightly.yaml")
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.Contains(out, "T02:00:00+0") {
		t.Errorf("default -n: exit %d\n%s", code, out)
	}
	code, _, errOut = sluice(t, "schedule", "next", "../../examples/plans/quickstart.yaml")
	if code != 1 || !strings.Contains(errOut, "quickstart.yaml: plans: plan has no schedule") {
		t.Errorf("no schedule: exit %d %q", code, errOut)
	}
}
