package plans

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAbsPaths: the relative local paths of read, write, union, join and
// an existing infer model directory become absolute under the directory,
// in place (same lines); URLs, absolute paths and a model name stay; a
// path starting with a template is an error naming its position.
func TestAbsPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "models", "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := `name: x
read: {parquet: data/in/}
steps:
  - union: [{csv: "more.csv"}, {jsonl: s3://b/k/}]
  - join: {read: {jsonl: 'dims.jsonl'}, on: [k]}
  - infer: {model: models/m, input: p, output: c}
  - infer: {model: some-model-name, input: p, output: c}
write:
  parquet: /abs/out/day={{ .Params.day }}/
`
	got, changed, err := AbsPaths("plan.yaml", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(
		"data/in/", dir+"/data/in/",
		`"more.csv"`, `"`+dir+`/more.csv"`,
		`'dims.jsonl'`, `'`+dir+`/dims.jsonl'`,
		"model: models/m", "model: "+dir+"/models/m",
	).Replace(src)
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Join(changed, " ") != "data/in/ more.csv dims.jsonl models/m" {
		t.Errorf("changed %q", changed)
	}
	// The rewritten plan parses and reads from the directory.
	if p, _ := Parse("plan.yaml", got); p == nil || p.Read.Path != dir+"/data/in/" {
		t.Errorf("parse: %+v", p)
	}
	_, _, err = AbsPaths("plan.yaml", []byte("name: x\nread: {parquet: \"{{ .Params.src }}/in/\"}\nwrite: {parquet: out/}\n"), dir)
	if err == nil || !strings.Contains(err.Error(), "plan.yaml:2:17") || !strings.Contains(err.Error(), "starts with a template") {
		t.Errorf("template path: %v", err)
	}
}
