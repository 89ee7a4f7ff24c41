package plans

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// ids reads the id column of the Parquet files under dir.
func ids(t *testing.T, dir string) []int64 {
	t.Helper()
	type row struct {
		ID int64 `sluice:"id"`
	}
	rows, err := dataset.Collect[row](context.Background(), dataset.ReadParquet(dir).Configure(testConfig(t)).Select("id"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out
}

// TestSplitStep: a split step writes each part under its own directory of
// the write's path, on real Parquet in and out: every row of the input in
// exactly one part, the first part the rows sample keeps with the same
// fraction and seed, about fraction of the rows (hand bound: within 5
// standard deviations of the binomial mean), partition_by's directories
// below the part's, and no split column in the files.
func TestSplitStep(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeSales(t, dir, 3000)
	run := func(steps, write string) *Job {
		t.Helper()
		src := "name: x\nread: {parquet: data/sales/}\nsteps: " + steps + "\nwrite: " + write + "\n"
		p, lints := Check("plan.yaml", []byte(src), Vars{})
		if len(lints) > 0 {
			t.Fatalf("%s: %v", steps, lints)
		}
		job, err := Compile(p, Vars{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.Run(context.Background(), testConfig(t)); err != nil {
			t.Fatal(err)
		}
		return job
	}
	job := run("[{filter: \"qty > 1\"}, {split: {fractions: [0.8, 0.2], seed: 1}}]", "{parquet: out/, partition_by: [category]}")
	train, test := ids(t, "out/train"), ids(t, "out/test")
	all := ids(t, "data/sales")
	var want []int64
	for _, r := range makeSales(3000) {
		if r.Qty > 1 {
			want = append(want, r.ID)
		}
	}
	if got := slices.Sorted(slices.Values(append(slices.Clone(train), test...))); !slices.Equal(got, want) || len(all) != 3000 {
		t.Fatalf("train and test hold %d rows (%d distinct ids), want the %d with qty > 1, each once", len(got), len(slices.Compact(got)), len(want))
	}
	n := float64(len(want))
	if d := math.Abs(float64(len(train)) - 0.8*n); d > 5*math.Sqrt(n*0.8*0.2) {
		t.Errorf("train has %d of %d rows, want about %.0f", len(train), len(want), 0.8*n)
	}
	// The first part is sample's: the same rule on the same rows.
	sampled, err := dataset.ReadParquet("data/sales").Configure(testConfig(t)).Filter("qty > 1").Sample(0.8, 1).
		WriteParquet(context.Background(), "sampled", dataset.WriteOptions{})
	if err != nil || sampled.Rows == 0 {
		t.Fatal(err)
	}
	if s := ids(t, "sampled"); !slices.Equal(s, train) {
		t.Errorf("train has %d rows, sample(0.8, seed 1) %d: not the same rows", len(train), len(s))
	}
	// Directories: out/<part>/category=cN/, one manifest at out/, files
	// without the split column.
	var parts []string
	err = filepath.WalkDir("out", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("out", path)
		parts = append(parts, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p != "_SUCCESS" && !(strings.HasPrefix(p, "train/category=c") || strings.HasPrefix(p, "test/category=c")) {
			t.Errorf("written file %s: want out/train/category=.../ or out/test/category=.../", p)
		}
	}
	s, err := dataset.ReadParquet("out/test").Schema()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.FieldIndices(splitColumn)) > 0 || len(s.FieldIndices("note")) == 0 {
		t.Errorf("the files' schema: %s", s)
	}
	text, err := job.Explain()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Split([0.8 0.2], seed=1) into __sluice_split: train, test", "dir_by=__sluice_split"} {
		if !strings.Contains(text, w) {
			t.Errorf("Explain has no %q:\n%s", w, text)
		}
	}

	// Three fractions take the names train, validation, test.
	run("[{split: {fractions: [0.6, 0.2, 0.2], seed: 9}}]", "{parquet: three/}")
	total := 0
	for _, name := range []string{"train", "validation", "test"} {
		got := ids(t, filepath.Join("three", name))
		if len(got) == 0 {
			t.Errorf("three/%s: no rows", name)
		}
		total += len(got)
	}
	if total != 3000 {
		t.Errorf("the three parts hold %d rows, want 3000", total)
	}
}

// TestSplitStepLints: the split step's errors, at their positions.
func TestSplitStepLints(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeSales(t, dir, 30)
	for _, tc := range []struct{ steps, want string }{
		{"[{split: {fractions: [0.8, 0.2]}}, {limit: 3}]",
			"plan.yaml:3:17: steps[0].split: split must be the last step (steps[1] follows it): the write puts each part in its own directory"},
		{"[{split: {fractions: [0.25, 0.25, 0.25, 0.25]}}]",
			"plan.yaml:3:17: steps[0].split: 4 fractions: give their names (names: [...], one per fraction)"},
		{"[{split: {fractions: [0.5, 0.5], names: [a, b, c]}}]",
			"plan.yaml:3:48: steps[0].split.names: 3 names for 2 fractions: want one per fraction"},
		{"[{split: {fractions: [0.5, 0.4]}}]",
			"plan.yaml:3:17: steps[0].split: fractions [0.5 0.4] add up to 0.9, not 1"},
		{"[{split: {fractions: [0.5, 0.5], names: [a, ..]}}]",
			`plan.yaml:3:17: steps[0].split: names[1] ("..") must be distinct directory names (not empty, . or .., no slash)`},
		{"[{split: {fractions: [0.5]}}]",
			"plan.yaml:3:29: steps[0].split.fractions: want at least 2 items, got 1"},
	} {
		src := "name: x\nread: {parquet: data/sales/}\nsteps: " + tc.steps + "\nwrite: {parquet: out/}\n"
		_, lints := Check("plan.yaml", []byte(src), Vars{})
		if got := lints.Error(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.steps, got, tc.want)
		}
	}
}
