package plans

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOptions: a plan's read takes schema (some columns' types, the
// rest inferred), null_values, infer_rows and the CSV options.
func TestReadOptions(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte("zip;qty;note\n02134;2;NA\n10001;3;x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var jl strings.Builder
	for range 5 {
		jl.WriteString(`{"id": 1}` + "\n")
	}
	jl.WriteString(`{"id": 2, "late": "y"}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(jl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `name: x
read:
  csv: in.csv
  delimiter: ";"
  schema: {zip: int32}
  null_values: [NA]
write: {parquet: out/}
`
	p, lints := Check("plan.yaml", []byte(src), Vars{})
	if len(lints) > 0 {
		t.Fatal(lints)
	}
	job, err := Compile(p, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := job.Dataset.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.String(); !strings.Contains(got, "zip: type=int32") || !strings.Contains(got, "qty: type=int64") || !strings.Contains(got, "note: type=utf8") {
		t.Errorf("schema %s", got)
	}

	// infer_rows -1 sees the late key; the default window fails on it
	// when the job runs, naming the line.
	jsrc := "name: x\nread: {jsonl: in.jsonl, infer_rows: -1}\nsteps: [{select: [id, late]}]\nwrite: {parquet: out/}\n"
	if _, lints := Check("plan.yaml", []byte(jsrc), Vars{}); len(lints) > 0 {
		t.Errorf("infer_rows -1: %v", lints)
	}
	_, lints = Check("plan.yaml", []byte(strings.Replace(jsrc, "infer_rows: -1", "infer_rows: 2", 1)), Vars{})
	if got := lints.Error(); !strings.Contains(got, `unknown column "late"`) {
		t.Errorf("infer_rows 2: %v", got)
	}

	bad := "name: x\nread: {csv: in.csv, schema: {zip: integr}}\nwrite: {parquet: out/}\n"
	_, lints = Check("plan.yaml", []byte(bad), Vars{})
	if got := lints.Error(); !strings.HasPrefix(got, `plan.yaml:2:35: read.schema.zip: unknown type "integr" (want one of int8,`) {
		t.Errorf("bad type: %v", got)
	}
	pq := "name: x\nread: {parquet: in/, infer_rows: 5}\nwrite: {parquet: out/}\n"
	_, lints = Check("plan.yaml", []byte(pq), Vars{})
	if got := lints.Error(); !strings.Contains(got, "infer_rows applies to csv and jsonl sources only, not parquet") {
		t.Errorf("parquet infer_rows: %v", got)
	}
}
