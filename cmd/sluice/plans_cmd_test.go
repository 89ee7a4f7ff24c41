package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/miniotest"
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

// TestExamplePlans validates, explains and runs every example plan as the
// README does, from a temporary directory that links the repository's
// examples/, so outputs land there and not in the repository.
func TestExamplePlans(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "plans", "*.yaml"))
	if len(files) < 4 {
		t.Fatalf("%d example plans", len(files))
	}
	t.Chdir(exampleDir(t, root))
	outputs := map[string]string{}
	for _, f := range files {
		f = filepath.Join("examples", "plans", filepath.Base(f))
		code, out, errOut := sluice(t, "validate", f)
		if code != 0 || out != f+": ok\n" {
			t.Errorf("validate %s: exit %d\n%s%s", f, code, out, errOut)
		}
		code, out, errOut = sluice(t, "explain", f)
		if code != 0 || !strings.Contains(out, "== Stages ==") {
			t.Errorf("explain %s: exit %d\n%s%s", f, code, out, errOut)
		}
		// A scheduled plan runs for a given time; the others ignore it.
		code, out, errOut = sluice(t, "run", f, "--scheduled-time", "2024-04-01")
		if code != 0 {
			t.Errorf("run %s: exit %d\n%s%s", f, code, out, errOut)
			continue
		}
		m := exampleWrote.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("run %s: no \"wrote\" line:\n%s", f, out)
			continue
		}
		rows, _ := strconv.ParseInt(m[1], 10, 64)
		checkManifest(t, f, m[2], rows)
		outputs[strings.TrimSuffix(filepath.Base(f), ".yaml")] = m[2]
	}
	if got, want := outputs["nightly"], "out/nightly/day=2024-03-31/"; got != want {
		t.Errorf("nightly wrote to %q, want %q", got, want)
	}
	if dir, ok := outputs["etl-groupby"]; ok {
		checkGroupBy(t, "examples/data/sales/", dir)
	}
	if dir, ok := outputs["partitioned-write"]; ok {
		checkPartitions(t, "examples/data/sales/", dir)
	}
	for _, name := range []string{"quickstart", "etl-groupby", "partitioned-write", "nightly"} {
		if _, ok := outputs[name]; !ok {
			t.Errorf("example %s did not run", name)
		}
	}
}

var exampleWrote = regexp.MustCompile(`(?m)^wrote (\d+) rows in \d+ files? to (\S+)$`)

// exampleDir is a temporary directory whose examples/ links to the
// repository's.
func exampleDir(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "examples"), filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkManifest checks that dir has a _SUCCESS manifest of rows > 0 rows
// whose files exist.
func checkManifest(t *testing.T, plan, dir string, rows int64) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, commit.ManifestName))
	if err != nil {
		t.Errorf("%s: %v", plan, err)
		return
	}
	var m commit.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Errorf("%s: %s: %v", plan, commit.ManifestName, err)
		return
	}
	if m.Rows <= 0 || m.Rows != rows || len(m.Files) == 0 {
		t.Errorf("%s: manifest has %d rows in %d files; the run said %d rows", plan, m.Rows, len(m.Files), rows)
	}
	for _, f := range m.Files {
		p := f.Path
		if !filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(dir, p)
			}
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: manifest lists %s: %v", plan, f.Path, err)
		}
	}
}

// checkGroupBy compares etl-groupby's output with the count and revenue of
// each category summed here from the input rows.
func checkGroupBy(t *testing.T, input, output string) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	type agg struct {
		n       int64
		revenue float64
	}
	want := map[string]agg{}
	for rec, err := range dataset.ReadParquet(input).Configure(cfg).Select("category", "price", "qty").Iter(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			cat := rec.Column(0).ValueStr(i)
			a := want[cat]
			a.n++
			a.revenue += number(t, rec.Column(1), i) * number(t, rec.Column(2), i)
			want[cat] = a
		}
	}
	got := map[string]agg{}
	var order []float64
	for rec, err := range dataset.ReadParquet(output).Configure(cfg).Select("category", "sales", "revenue").Iter(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			a := agg{int64(number(t, rec.Column(1), i)), number(t, rec.Column(2), i)}
			got[rec.Column(0).ValueStr(i)] = a
			order = append(order, a.revenue)
		}
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Errorf("etl-groupby: %d categories, want %d", len(got), len(want))
	}
	for cat, w := range want {
		g := got[cat]
		if g.n != w.n || math.Abs(g.revenue-w.revenue) > 1e-6*math.Max(1, math.Abs(w.revenue)) {
			t.Errorf("etl-groupby: category %s: %d sales, revenue %v; want %d, %v", cat, g.n, g.revenue, w.n, w.revenue)
		}
	}
	if !slices.IsSortedFunc(order, func(a, b float64) int { return cmp.Compare(b, a) }) {
		t.Errorf("etl-groupby: revenue not in descending order: %v", order)
	}
}

// checkPartitions checks that output has one category=VALUE directory per
// category of the input, and no category column in its files.
func checkPartitions(t *testing.T, input, output string) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cats := map[string]bool{}
	for rec, err := range dataset.ReadParquet(input).Configure(cfg).Select("category").Iter(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			cats[rec.Column(0).ValueStr(i)] = true
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(output, "category=*"))
	if len(cats) == 0 || len(dirs) != len(cats) {
		t.Errorf("partitioned-write: directories %v; want one per category of %v", dirs, slices.Sorted(maps.Keys(cats)))
	}
	for cat := range cats {
		files, _ := filepath.Glob(filepath.Join(output, "category="+cat, "*.parquet"))
		if len(files) == 0 {
			t.Errorf("partitioned-write: no files in category=%s/", cat)
		}
	}
	// Read back without partition discovery: the files lack the column.
	if s, err := dataset.ReadParquet(output, dataset.NoPartitioning()).Schema(); err != nil || len(s.FieldIndices("category")) != 0 {
		t.Errorf("partitioned-write: files' schema %v, %v: want no category column", s, err)
	}
}

// number is the numeric value at row i of a.
func number(t *testing.T, a arrow.Array, i int) float64 {
	t.Helper()
	switch a := a.(type) {
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Int64:
		return float64(a.Value(i))
	case *array.Int32:
		return float64(a.Value(i))
	case *array.Int16:
		return float64(a.Value(i))
	case *array.Int8:
		return float64(a.Value(i))
	case *array.Uint64:
		return float64(a.Value(i))
	case *array.Uint32:
		return float64(a.Value(i))
	}
	t.Fatalf("column of type %s is not a number", a.DataType())
	return 0
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

// TestRunS3 runs example plans whose read and write are s3:// URLs against
// a real MinIO server, and checks that they write what the same plans write
// from and to local files.
func TestRunS3(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("lake")
	inputs, _ := filepath.Glob(filepath.Join(root, "examples", "data", "sales", "*.parquet"))
	if len(inputs) == 0 {
		t.Fatal("no example data")
	}
	srv.Upload("lake", "raw/sales/", inputs...)
	t.Chdir(exampleDir(t, root))

	for _, tc := range []struct{ plan, out string }{
		{"quickstart", "out/quickstart/"},
		{"partitioned-write", "out/partitioned/"},
	} {
		t.Run(tc.plan, func(t *testing.T) {
			f := filepath.Join("examples", "plans", tc.plan+".yaml")
			code, out, errOut := sluice(t, "run", f)
			m := exampleWrote.FindStringSubmatch(out)
			if code != 0 || m == nil {
				t.Fatalf("local run: exit %d\n%s%s", code, out, errOut)
			}
			localRows := m[1]

			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dest := "s3://lake/" + tc.out
			plan := strings.ReplaceAll(string(text), "examples/data/sales/", "s3://lake/raw/sales/")
			plan = strings.ReplaceAll(plan, tc.out, dest)
			if !strings.Contains(plan, "parquet: s3://lake/raw/sales/") || !strings.Contains(plan, "parquet: "+dest) {
				t.Fatalf("plan not moved to S3:\n%s", plan)
			}
			s3Plan := tc.plan + "-s3.yaml"
			if err := os.WriteFile(s3Plan, []byte(plan), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut = sluice(t, "validate", s3Plan)
			if code != 0 || out != s3Plan+": ok\n" || errOut != "" {
				t.Errorf("validate: exit %d\n%s%s", code, out, errOut)
			}
			code, out, errOut = sluice(t, "run", s3Plan)
			m = exampleWrote.FindStringSubmatch(out)
			if code != 0 || m == nil {
				t.Fatalf("S3 run: exit %d\n%s%s", code, out, errOut)
			}
			if m[1] != localRows || m[2] != dest {
				t.Errorf("S3 run wrote %s rows to %s; the local run %s rows", m[1], m[2], localRows)
			}

			// What is in the bucket: the manifest and the files it lists.
			fs, err := storage.For(dest)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := fs.Open(t.Context(), dest+commit.ManifestName)
			if err != nil {
				t.Fatal(err)
			}
			var man commit.Manifest
			err = json.NewDecoder(io.NewSectionReader(rc, 0, rc.Size())).Decode(&man)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if strconv.FormatInt(man.Rows, 10) != localRows || len(man.Files) == 0 {
				t.Errorf("manifest: %d rows in %d files, want %s rows", man.Rows, len(man.Files), localRows)
			}
			partitions := map[string]bool{}
			for _, mf := range man.Files {
				if _, err := fs.Stat(t.Context(), mf.Path); err != nil {
					t.Errorf("manifest lists %s: %v", mf.Path, err)
				}
				if dir, _, ok := strings.Cut(strings.TrimPrefix(mf.Path, dest), "/"); ok {
					partitions[dir] = true
				}
			}
			if tc.plan == "partitioned-write" && (len(partitions) < 2 || !partitions["category=c1"]) {
				t.Errorf("partitioned write to S3: directories %v", slices.Sorted(maps.Keys(partitions)))
			}
			n, err := dataset.ReadParquet(dest).Count(t.Context())
			if err != nil || strconv.FormatInt(n, 10) != localRows {
				t.Errorf("read back %d rows, %v; want %s", n, err, localRows)
			}
		})
	}
}

// TestRunUnreachableSource: validate notes an S3 source it cannot reach;
// run fails on it with the reason, at the source's position.
func TestRunUnreachableSource(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
		"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1",
	} {
		t.Setenv(k, v)
	}
	t.Chdir(t.TempDir())
	os.WriteFile("plan.yaml", []byte("name: x\nread: {parquet: s3://bucket/in/}\nwrite: {parquet: out/}\n"), 0o644)
	code, out, errOut := sluice(t, "validate", "plan.yaml")
	if code != 0 || out != "plan.yaml: ok\n" || !strings.HasPrefix(errOut, "plan.yaml:2:17: read.parquet: note: the source could not be read") {
		t.Errorf("validate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = sluice(t, "run", "plan.yaml")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "plan.yaml:2:17: read.parquet: read parquet s3://bucket/in/: ") ||
		!strings.Contains(errOut, "cannot reach http://127.0.0.1:1") || !strings.HasSuffix(errOut, "sluice run: plan.yaml: 1 error\n") {
		t.Errorf("run: exit %d\n%s%s", code, out, errOut)
	}
}
