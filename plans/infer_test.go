package plans

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An infer step over a real model directory validates, and its output
// columns are known to the steps after it.
func TestInferStepValidates(t *testing.T) {
	model, err := filepath.Abs("../infer/model/testdata/fixtures/llama3")
	if err != nil {
		t.Fatal(err)
	}
	data, err := filepath.Abs("../examples/data/sales")
	if err != nil {
		t.Fatal(err)
	}
	src := `name: infer-ok
read: {parquet: ` + data + `/}
steps:
  - with_column: {name: prompt, expr: "note"}
  - infer: {model: ` + model + `, input: prompt, output: completion, max_tokens: 8}
  - select: [id, completion, completion_tokens, finish_reason]
write: {parquet: ` + filepath.Join(t.TempDir(), "out") + `/}
`
	f := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, lints := Check(f, []byte(src), Vars{})
	if lints.HasErrors() {
		t.Fatalf("lints:\n%v", lints)
	}
	job, err := Compile(p, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := job.Explain(); err != nil || !strings.Contains(ex, "MapBatches infer "+model) {
		t.Fatalf("explain %v:\n%s", err, ex)
	}
}
