package dataset_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluicehq/sluice/dataset"
)

// TestBadInputsWrite runs scan -> filter -> WriteParquet over bad inputs: the
// error names the file, the operator (the ReadParquet source when the input
// fails at build time, the Scan at run time), and the row group and column
// where they apply; the destination holds nothing afterwards, not even a
// staging file.
func TestBadInputsWrite(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	dir := t.TempDir()
	// one writes rows as one Parquet file and returns its bytes.
	one := func(name string, d *dataset.Dataset) []byte {
		t.Helper()
		if _, err := d.WriteParquet(ctx, filepath.Join(dir, name), dataset.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, name, "*.parquet"))
		if len(files) != 1 {
			t.Fatalf("%s: %d files", name, len(files))
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c1 := cfg
	c1.Concurrency = 1
	data := one("good", ds(t, c1, sales(3000)))
	ids := one("range", dataset.Range(5).Configure(c1))
	noPrice := one("noprice", ds(t, c1, sales(50)).Drop("price"))
	stringIDs := one("strings", dataset.FromItems([]struct {
		ID    string  `sluice:"id"`
		Price float64 `sluice:"price"`
	}{{"a", 1}}).Configure(c1))

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// damage flips every byte of one column's chunk: the footer reads, that
	// column's first page header does not. The error names the damaged
	// column whether the scan decodes it before its filter runs (price, the
	// filter's column, read first by late materialization) or after (id).
	damage := func(col string) []byte {
		t.Helper()
		pr, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		md := pr.MetaData()
		cc, err := md.RowGroup(0).ColumnChunk(md.Schema.ColumnIndexByName(col))
		if err != nil {
			t.Fatal(err)
		}
		off := cc.DataPageOffset()
		if cc.HasDictionaryPage() && cc.DictionaryPageOffset() < off {
			off = cc.DictionaryPageOffset()
		}
		b := append([]byte(nil), data...)
		for i := off; i < off+cc.TotalCompressedSize(); i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	write("mixed/a.parquet", data)
	write("mixed/b.parquet", ids)
	write("missing/a.parquet", data)
	write("missing/b.parquet", noPrice)
	write("types/a.parquet", data)
	write("types/b.parquet", stringIDs)
	underFile := filepath.Join(write("file.txt", []byte("x")), "x")

	for _, tc := range []struct {
		name, src string
		want      []string
		cols      []string // read only these columns
	}{
		{"truncated", write("trunc/a.parquet", data[:len(data)/2]), []string{"read parquet", "trunc/a.parquet", "not a parquet file"}, nil},
		{"corrupt", write("corrupt/a.parquet", append([]byte("PAR1"), make([]byte, 200)...)), []string{"read parquet", "corrupt/a.parquet", "not a parquet file"}, nil},
		{"corrupt page", write("page/a.parquet", damage("id")), []string{"Scan parquet", "page/a.parquet", "row group 0", `column "id"`}, nil},
		{"corrupt note page", write("npage/a.parquet", damage("note")), []string{"Scan parquet", "npage/a.parquet", "row group 0", `column "note"`}, nil},
		{"corrupt filter page", write("fpage/a.parquet", damage("price")), []string{"Scan parquet", "fpage/a.parquet", "row group 0", `column "price"`}, nil},
		{"incompatible schemas", filepath.Join(dir, "mixed"), []string{"Scan parquet", "mixed/b.parquet", `no column "user_id"`}, nil},
		{"incompatible types", filepath.Join(dir, "types"), []string{"Scan parquet", "types/b.parquet", `column "id" is utf8 here but int64`}, []string{"id", "price"}},
		{"missing column", filepath.Join(dir, "missing"), []string{"Scan parquet", "missing/b.parquet", `no column "price"`}, nil},
		{"path under a file", underFile, []string{"read parquet", underFile, "not a directory"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			dest := filepath.Join(dir, "out", strings.ReplaceAll(tc.name, " ", "-"))
			var opts []dataset.ReadOption
			if tc.cols != nil {
				opts = append(opts, dataset.Columns(tc.cols...))
			}
			_, err := dataset.ReadParquet(tc.src, opts...).Configure(cfg).Filter("price >= 0").WriteParquet(ctx, dest, dataset.WriteOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if files := listFiles(t, dest); len(files) != 0 {
				t.Fatalf("a failed job left %v", files)
			}
		})
	}
}
