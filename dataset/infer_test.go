package dataset_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/format"
)

func writeText(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestJSONLSchemaAcrossFiles: a key that only a later file holds is a
// column of the dataset (it was dropped: the first file's first 1,000
// lines made the schema), types widen across files, and a key in no
// sampled file fails naming its file and line.
func TestJSONLSchemaAcrossFiles(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	dir := t.TempDir()
	var a strings.Builder
	for i := range 1200 {
		fmt.Fprintf(&a, "{\"id\": %d, \"p\": 1}\n", i)
	}
	writeText(t, filepath.Join(dir, "a.jsonl"), a.String())
	writeText(t, filepath.Join(dir, "b.jsonl"), `{"id": 1200, "p": 2.5, "extra": "x"}`+"\n")
	d := dataset.ReadJSONL(dir).Configure(cfg).Select("id", "p", "extra").Filter("extra IS NOT NULL")
	rec := take(t, d)
	if got := fmt.Sprint(col[int64](t, rec, "id"), col[float64](t, rec, "p"), col[string](t, rec, "extra")); got != "[1200] [2.5] [x]" {
		t.Fatalf("got %s", got)
	}

	// Nine files: the sample of eight misses the eighth, whose key fails the read.
	many := t.TempDir()
	for i := range 9 {
		line := fmt.Sprintf("{\"id\": %d}\n", i)
		if i == 7 {
			line = fmt.Sprintf("{\"id\": %d, \"late\": true}\n", i)
		}
		writeText(t, filepath.Join(many, fmt.Sprintf("f%d.jsonl", i)), line)
	}
	_, err := dataset.ReadJSONL(many).Configure(cfg).Count(ctx)
	want := filepath.Join(many, "f7.jsonl") + `:1:11: key "late" is not in the schema inferred from the first 1000 lines of each file sampled`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant it to contain %s", err, want)
	}
	// InferRows -1 samples every file, whole.
	rec = take(t, dataset.ReadJSONL(many, dataset.WithReadOptions(format.ReadOptions{InferRows: -1})).Configure(cfg).Filter("late"))
	if got := fmt.Sprint(col[int64](t, rec, "id")); got != "[7]" {
		t.Fatalf("got %s", got)
	}
}

// TestHiveNullPartition: a null partition value, written as
// __HIVE_DEFAULT_PARTITION__, reads back as null (it read back as that
// string), and filters on it prune as they should.
func TestHiveNullPartition(t *testing.T) {
	cfg, mem := testConfig(t)
	ctx := context.Background()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "cat", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"a", "", "b"}, []bool{true, false, true})
	rec := b.NewRecordBatch()
	defer rec.Release()
	dir := t.TempDir()
	if _, err := dataset.FromRecords(rec).Configure(cfg).WriteParquet(ctx, dir, dataset.WriteOptions{PartitionBy: []string{"cat"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cat=__HIVE_DEFAULT_PARTITION__")); err != nil {
		t.Fatal(err)
	}
	got := take(t, dataset.ReadParquet(dir).Configure(cfg).Filter("cat IS NULL"))
	if ids := col[int64](t, got, "id"); fmt.Sprint(ids) != "[2]" {
		t.Fatalf("cat IS NULL: ids %v", ids)
	}
	got = take(t, dataset.ReadParquet(dir).Configure(cfg).Sort(dataset.Asc("id")))
	if c := got.Column(got.Schema().FieldIndices("cat")[0]); c.Len() != 3 || !c.IsNull(1) || c.NullN() != 1 {
		t.Fatalf("cat column %v", c)
	}
	if n, err := dataset.ReadParquet(dir).Configure(cfg).Filter("cat = 'a' OR cat > 'a'").Count(ctx); err != nil || n != 2 {
		t.Fatalf("count = %d, %v; want 2", n, err)
	}
}
