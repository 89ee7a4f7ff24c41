package plans

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMoreSteps: distinct, drop_null, fill_null and sample compile to the
// dataset operators (expected counts by hand from the rows below).
func TestMoreSteps(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	rows := `{"a": 1, "b": "x"}` + "\n" + `{"a": 1, "b": "x"}` + "\n" + `{"a": 2, "b": null}` + "\n" + `{"a": null, "b": "y"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.jsonl"), []byte(`{"a": 1}`+"\n"+`{"a": 1}`+"\n"+`{"a": 7}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		steps string
		want  int64
	}{
		{"[{distinct: []}]", 3},
		{"[{distinct: [a]}]", 3},
		{"[{drop_null: []}]", 2},
		{"[{drop_null: [b]}]", 3},
		{"[{fill_null: {a: 0, b: none}}, {filter: \"a = 0 OR b = 'none'\"}]", 2},
		{"[{sample: {fraction: 1, seed: 3}}]", 4},
		{"[{sample: {fraction: 0}}]", 0},
		// a = 1 twice on the left (once on the right, twice): semi 2, anti
		// keeps a = 2 and a = null.
		{"[{join: {read: {jsonl: keys.jsonl}, on: [a], how: semi}}]", 2},
		{"[{join: {read: {jsonl: keys.jsonl}, on: [a], how: anti}}]", 2},
	} {
		src := "name: x\nread: {jsonl: in.jsonl}\nsteps: " + tc.steps + "\nwrite: {parquet: out/}\n"
		p, lints := Check("plan.yaml", []byte(src), Vars{})
		if len(lints) > 0 {
			t.Fatalf("%s: %v", tc.steps, lints)
		}
		job, err := Compile(p, Vars{})
		if err != nil {
			t.Fatalf("%s: %v", tc.steps, err)
		}
		n, err := job.Dataset.Configure(testConfig(t)).Count(context.Background())
		if err != nil || n != tc.want {
			t.Errorf("%s: %d rows, %v; want %d", tc.steps, n, err, tc.want)
		}
	}
	_, lints := Check("plan.yaml", []byte("name: x\nread: {jsonl: in.jsonl}\nsteps: [{drop_null: [z]}]\nwrite: {parquet: out/}\n"), Vars{})
	if got := lints.Error(); !strings.Contains(got, `unknown column "z"`) {
		t.Errorf("drop_null unknown column: %v", got)
	}
}
