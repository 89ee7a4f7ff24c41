package format_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// TestCSVLeadingZeros: codes written with leading zeros stay text, as in
// DuckDB; a plain 0 and 0.5 stay numbers; a schema can still ask for ints.
func TestCSVLeadingZeros(t *testing.T) {
	cases := []struct {
		name, content string
		opts          format.ReadOptions
		want          string
	}{
		{"zip", "zip,n\n02134,1\n10001,2\n", format.ReadOptions{},
			"zip:utf8 n:int64\n02134|1\n10001|2\n"},
		{"phone-first-row-plain", "phone\n612345678\n0612345678\n", format.ReadOptions{},
			"phone:utf8\n612345678\n0612345678\n"},
		{"signed-and-float", "a,b,c\n-007,00.5,0\n1,1,0.5\n", format.ReadOptions{},
			"a:utf8 b:utf8 c:float64\n-007|00.5|0\n1|1|0.5\n"},
		{"schema-says-int", "zip\n02134\n", format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
			{Name: "zip", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)},
			"zip:int64\n2134\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readText(t, format.CSV(), textFile(t, "x.csv", c.content), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// TestCSVInvalidUTF8: a string column's invalid UTF-8 fails naming the
// line and column, or is replaced when asked; a binary column keeps bytes.
func TestCSVInvalidUTF8(t *testing.T) {
	content := "id,name\n1,ok\n2,b\xffd\n"
	p := textFile(t, "x.csv", content)
	_, err := readText(t, format.CSV(), p, format.ReadOptions{})
	want := "format: " + p + `:3:3: column "name": invalid UTF-8 at byte 2 of the value (replace_invalid_utf8 reads it as U+FFFD)`
	if err == nil || err.Error() != want || !errors.Is(err, format.ErrParse) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	got, err := readText(t, format.CSV(), p, format.ReadOptions{ReplaceInvalidUTF8: true})
	if err != nil {
		t.Fatal(err)
	}
	if w := "id:int64 name:utf8\n1|ok\n2|b\uFFFDd\n"; got != w {
		t.Fatalf("got\n%s\nwant\n%s", got, w)
	}
	bin := arrow.NewSchema([]arrow.Field{{Name: "name", Type: arrow.BinaryTypes.Binary, Nullable: true}}, nil)
	if _, err := readText(t, format.CSV(), p, format.ReadOptions{Schema: bin}); err != nil {
		t.Fatalf("binary column: %v", err)
	}
	hp := textFile(t, "h.csv", "id,n\xe9\n1,2\n")
	_, err = readText(t, format.CSV(), hp, format.ReadOptions{})
	if want := "format: " + hp + `:1:4: header name "n\xe9" is not valid UTF-8`; err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// jsonlLines is n lines of {"id": i}, then one line with an extra key.
func jsonlLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"id\": %d}\n", i)
	}
	fmt.Fprintf(&b, "{\"id\": %d, \"extra\": \"late\"}\n", n)
	return b.String()
}

// TestJSONLLateKey: a key first seen after the inference window fails the
// read naming the file, line and column, instead of being dropped; a
// negative InferRows reads every line and keeps it; a user's schema skips
// the keys it leaves out, as documented.
func TestJSONLLateKey(t *testing.T) {
	p := textFile(t, "x.jsonl", jsonlLines(1500))
	_, err := readText(t, format.JSONL(), p, format.ReadOptions{})
	want := "format: " + p + `:1501:14: key "extra" is not in the schema inferred from the first 1000 lines: raise infer_rows (-1 reads every line) or give a schema`
	if err == nil || err.Error() != want || !errors.Is(err, format.ErrParse) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	// A projection of other keys still refuses a key inference never saw.
	if _, err := readText(t, format.JSONL(), p, format.ReadOptions{Columns: []string{"id"}}); err == nil {
		t.Fatal("projected read: no error for the late key")
	}
	got, err := readText(t, format.JSONL(), p, format.ReadOptions{InferRows: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "id:int64 extra:utf8\n") || !strings.HasSuffix(got, "1500|late\n") {
		t.Fatalf("got %q...%q", got[:40], got[len(got)-40:])
	}
	user := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	if _, err := readText(t, format.JSONL(), p, format.ReadOptions{Schema: user}); err != nil {
		t.Fatalf("user schema: %v", err)
	}
}

// TestInferSchema: the files sampled widen each other's types (a column
// null in one file takes the other's type, int and float give float) and
// every file then reads with the one schema; a file with a key no sample
// saw fails naming it.
func TestInferSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := context.Background()
	dir := t.TempDir()
	a := textIn(t, dir, "a.jsonl", `{"id": 1, "x": null, "p": 2}`+"\n")
	b := textIn(t, dir, "b.jsonl", `{"id": 2, "x": "s", "p": 2.5, "tag": true}`+"\n")
	c := textIn(t, dir, "c.jsonl", `{"id": 3, "new": 1}`+"\n")
	files := []storage.File{openFile(t, a), openFile(t, b)}
	sc, err := format.InferSchema(ctx, format.JSONL(), files, format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fieldList(sc), "id:int64 x:utf8 p:float64 tag:bool"; got != want {
		t.Fatalf("schema %s, want %s", got, want)
	}
	opts := format.ReadOptions{Schema: sc, Inferred: true}
	got, err := readText(t, format.JSONL(), a, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "id:int64 x:utf8 p:float64 tag:bool\n1|∅|2|∅\n"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	_, err = readText(t, format.JSONL(), c, opts)
	want := "format: " + c + `:1:11: key "new" is not in the schema inferred from the first 1000 lines of each file sampled: raise infer_rows (-1 reads every line) or give a schema`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}

	// CSV: the same widening by header name; a header the sample lacks fails.
	ca := textIn(t, dir, "a.csv", "id,p\n1,\n")
	cb := textIn(t, dir, "b.csv", "id,p\n2,2.5\n")
	cc := textIn(t, dir, "c.csv", "id,p,q\n3,1,x\n")
	sc, err = format.InferSchema(ctx, format.CSV(), []storage.File{openFile(t, ca), openFile(t, cb)}, format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fieldList(sc), "id:int64 p:float64"; got != want {
		t.Fatalf("csv schema %s, want %s", got, want)
	}
	opts = format.ReadOptions{Schema: sc, Inferred: true}
	_, err = readText(t, format.CSV(), cc, opts)
	want = "format: " + cc + `:1: column "q": header column is not in the schema inferred from the files sampled (their headers differ): give a schema, or read the files separately`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func fieldList(s *arrow.Schema) string {
	var parts []string
	for _, f := range s.Fields() {
		parts = append(parts, f.Name+":"+f.Type.String())
	}
	return strings.Join(parts, " ")
}

// textIn writes content to dir/name.
func textIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadTypes: Types sets some columns' types and infers the others; a
// name the file lacks is an error.
func TestReadTypes(t *testing.T) {
	p := textFile(t, "x.csv", "zip,qty,name\n02134,2,a\n10001,3,b\n")
	types := map[string]arrow.DataType{"zip": arrow.PrimitiveTypes.Int32, "qty": arrow.PrimitiveTypes.Float64}
	got, err := readText(t, format.CSV(), p, format.ReadOptions{Types: types})
	if err != nil {
		t.Fatal(err)
	}
	if want := "zip:int32 qty:float64 name:utf8\n2134|2|a\n10001|3|b\n"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	j := textFile(t, "x.jsonl", `{"a": 1, "b": "x"}`+"\n")
	got, err = readText(t, format.JSONL(), j, format.ReadOptions{Types: map[string]arrow.DataType{"a": arrow.BinaryTypes.String}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a:utf8 b:utf8\n1|x\n"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	_, err = readText(t, format.CSV(), p, format.ReadOptions{Types: map[string]arrow.DataType{"zpi": arrow.PrimitiveTypes.Int32}})
	if want := "format: " + p + `: no column "zpi" (have: zip, qty, name)`; err == nil || err.Error() != want || !errors.Is(err, format.ErrNoColumn) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}
