package format_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
)

// textFile writes content to a new file called name.
func textFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readText reads a text file with opts and renders its rows as "a|b|c"
// lines (null as ∅), with the schema on the first line.
func readText(t *testing.T, fm format.Format, p string, opts format.ReadOptions) (string, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f := openFile(t, p)
	sc, err := fm.Schema(context.Background(), f, opts)
	if err != nil {
		return "", err
	}
	out, err := readAll(t, fm, f, opts, mem)
	if err != nil {
		return "", err
	}
	defer release(out)
	var b strings.Builder
	for i, fl := range sc.Fields() {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%s", fl.Name, fl.Type)
	}
	b.WriteString("\n")
	for _, r := range out {
		if !r.Schema().Equal(sc) {
			t.Fatalf("batch schema %s, Schema() %s", r.Schema(), sc)
		}
		for i := range int(r.NumRows()) {
			for c := range int(r.NumCols()) {
				if c > 0 {
					b.WriteString("|")
				}
				if r.Column(c).IsNull(i) {
					b.WriteString("∅")
				} else {
					b.WriteString(r.Column(c).ValueStr(i))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String(), nil
}

func TestCSVOptions(t *testing.T) {
	cases := []struct {
		name, content string
		opts          format.ReadOptions
		want          string
	}{
		{"header", "id,qty,name\n1,2,a\n3,,b\n", format.ReadOptions{},
			"id:int64 qty:int64 name:utf8\n1|2|a\n3|∅|b\n"},
		{"crlf-bom-quotes", "\xef\xbb\xbfid,name\r\n1,\"x, \"\"y\"\"\"\r\n2,\"two\nlines\"\r\n", format.ReadOptions{},
			"id:int64 name:utf8\n1|x, \"y\"\n2|two\nlines\n"},
		{"no-header", "1,a\n2,b\n", format.ReadOptions{NoHeader: true},
			"c0:int64 c1:utf8\n1|a\n2|b\n"},
		{"delimiter", "a;b\n1.5;true\n2;FALSE\n", format.ReadOptions{Delimiter: ';'},
			"a:float64 b:bool\n1.5|true\n2|false\n"},
		{"tab", "a\tb\n1\tx\n", format.ReadOptions{Delimiter: '\t'},
			"a:int64 b:utf8\n1|x\n"},
		{"null-values", "a,b\nNA,x\n2,\n", format.ReadOptions{NullValues: []string{"NA"}},
			"a:int64 b:utf8\n∅|x\n2|\n"},
		{"projection", "a,b,c\n1,2,3\n4,5,6\n", format.ReadOptions{Columns: []string{"c", "a"}},
			"c:int64 a:int64\n3|1\n6|4\n"},
		{"times", "t,d\n2024-01-02T03:04:05Z,2024-01-02\n2024-01-02 03:04:05.5,2024-02-03\n", format.ReadOptions{},
			"t:timestamp[us, tz=UTC] d:date32\n2024-01-02T03:04:05Z|2024-01-02\n2024-01-02T03:04:05.5Z|2024-02-03\n"},
		{"int-then-float", "x\n1\n2.5\n", format.ReadOptions{},
			"x:float64\n1\n2.5\n"},
		{"mixed-is-string", "x\n1\nabc\n", format.ReadOptions{},
			"x:utf8\n1\nabc\n"},
		{"inf-word-is-string", "x\nInfinity\nnan\n", format.ReadOptions{},
			"x:utf8\nInfinity\nnan\n"},
		{"all-null-is-string", "x,y\n,1\n,2\n", format.ReadOptions{},
			"x:utf8 y:int64\n∅|1\n∅|2\n"},
		{"schema-by-name", "b,a\nx,1\ny,2\n", format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
			{Name: "a", Type: arrow.PrimitiveTypes.Int16, Nullable: true}}, nil)},
			"a:int16\n1\n2\n"},
		{"empty-header-name", "a,\n1,2\n", format.ReadOptions{},
			"a:int64 c1:int64\n1|2\n"},
		{"header-only", "a,b\n", format.ReadOptions{},
			"a:utf8 b:utf8\n"},
		{"empty", "", format.ReadOptions{},
			"\n"},
		{"count", "a,b\n1,2\n3,4\n", format.ReadOptions{Columns: []string{}},
			"\n\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := textFile(t, "x.csv", c.content)
			got, err := readText(t, format.CSV(), p, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestCSVErrors(t *testing.T) {
	var rows strings.Builder
	rows.WriteString("id,qty,name\n")
	for i := 2; i <= 20; i++ {
		qty := fmt.Sprint(i)
		if i == 17 {
			qty = "abc"
		}
		fmt.Fprintf(&rows, "%d,%s,n%d\n", i, qty, i)
	}
	cases := []struct {
		name, content string
		opts          format.ReadOptions
		want          string // after "format: <path>"
		kind          error
	}{
		{"bad-value", rows.String(), format.ReadOptions{InferRows: 10},
			`:17: column "qty": cannot parse "abc" as int64 (the type was inferred from the first 10 rows: raise infer_rows, -1 reads every row, or set the column's type in a schema)`, format.ErrParse},
		{"bad-value-schema", "a,b\n1,2\n3,x\n", format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
			{Name: "b", Type: arrow.PrimitiveTypes.Uint8}}, nil)},
			`:3: column "b": cannot parse "x" as uint8`, format.ErrParse},
		{"overflow", "a\n1\n300\n", format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
			{Name: "a", Type: arrow.PrimitiveTypes.Int8}}, nil)},
			`:3: column "a": cannot parse "300" as int8`, format.ErrParse},
		{"too-many-fields", "a,b\n1,2\n3,4,5\n", format.ReadOptions{InferRows: 1},
			`:3: row has 3 fields, the header has 2`, format.ErrParse},
		{"too-few-fields-infer", "a,b\n1,2\n3\n", format.ReadOptions{},
			`:3: row has 1 fields, the header has 2`, format.ErrParse},
		{"bare-quote", "a,b\n1,x\"y\n", format.ReadOptions{},
			`:2:4: bare " in non-quoted-field`, format.ErrParse},
		{"missing-column", "a,b\n1,2\n", format.ReadOptions{Columns: []string{"c"}},
			`: no column "c" (have: a, b)`, format.ErrNoColumn},
		{"schema-column-missing", "a,b\n1,2\n", format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
			{Name: "z", Type: arrow.PrimitiveTypes.Int8}}, nil)},
			`: no column "z" (have: a, b)`, format.ErrNoColumn},
		{"unsupported-type", "a\n1\n", format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
			{Name: "a", Type: arrow.ListOf(arrow.PrimitiveTypes.Int8)}}, nil)},
			`: column "a": CSV cannot hold type list<item: int8, nullable>`, format.ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := textFile(t, "x.csv", c.content)
			_, err := readText(t, format.CSV(), p, c.opts)
			want := "format: " + p + c.want
			if err == nil || err.Error() != want || !errors.Is(err, c.kind) {
				t.Fatalf("err = %v\nwant %s (%v)", err, want, c.kind)
			}
		})
	}
}

func TestJSONLOptions(t *testing.T) {
	cases := []struct {
		name, content string
		opts          format.ReadOptions
		want          string
	}{
		{"basic", `{"id": 1, "name": "a", "ok": true, "price": 1.5}` + "\n" + `{"id": 2, "name": null, "ok": false, "price": 2}` + "\n",
			format.ReadOptions{},
			"id:int64 name:utf8 ok:bool price:float64\n1|a|true|1.5\n2|∅|false|2\n"},
		{"keys-in-first-seen-order-missing-null", `{"b": 1}` + "\n\n" + `{"a": "x", "b": 2}` + "\r\n" + `{"a": "y"}`,
			format.ReadOptions{},
			"b:int64 a:utf8\n1|∅\n2|x\n∅|y\n"},
		{"nested-as-json-text", `{"o": {"k": [1, 2]}, "l": [1, "two"]}` + "\n" + `{"o": "plain", "l": []}` + "\n",
			format.ReadOptions{},
			"o:utf8 l:utf8\n{\"k\": [1, 2]}|[1, \"two\"]\nplain|[]\n"},
		{"escapes", `{"s": "a\"b\\c\u00e9\n", "k\u0031": 1}` + "\n",
			format.ReadOptions{},
			"s:utf8 k1:int64\na\"b\\cé\n|1\n"},
		{"mixed-number-string", `{"x": 1}` + "\n" + `{"x": "one"}` + "\n",
			format.ReadOptions{},
			"x:utf8\n1\none\n"},
		{"big-int-is-float", `{"x": 1}` + "\n" + `{"x": 12345678901234567890}` + "\n",
			format.ReadOptions{},
			"x:float64\n1\n1.2345678901234567e+19\n"},
		{"times", `{"t": "2024-01-02T03:04:05+02:00", "d": "2024-01-02"}` + "\n",
			format.ReadOptions{},
			"t:timestamp[us, tz=UTC] d:date32\n2024-01-02T01:04:05Z|2024-01-02\n"},
		{"duplicate-key-last-wins", `{"x": 1, "x": 2}` + "\n",
			format.ReadOptions{},
			"x:int64\n2\n"},
		{"projection", `{"a": 1, "b": 2, "c": 3}` + "\n",
			format.ReadOptions{Columns: []string{"c", "a"}},
			"c:int64 a:int64\n3|1\n"},
		{"schema-lenient", `{"a": "12", "b": 1, "z": 0}` + "\n",
			format.ReadOptions{Schema: arrow.NewSchema([]arrow.Field{
				{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
				{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
				{Name: "c", Type: arrow.PrimitiveTypes.Int32, Nullable: true}}, nil)},
			"a:int32 b:utf8 c:int32\n12|1|∅\n"},
		{"empty", "", format.ReadOptions{}, "\n"},
		{"empty-object", "{}\n{}\n", format.ReadOptions{}, "\n\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := textFile(t, "x.jsonl", c.content)
			got, err := readText(t, format.JSONL(), p, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestJSONLErrors(t *testing.T) {
	good := `{"id": 1, "qty": 2}` + "\n" + `{"id": 2, "qty": 3}` + "\n" + `{"id": 3, "qty": 4}` + "\n"
	cases := []struct {
		name, content string
		opts          format.ReadOptions
		want          string
		kind          error
	}{
		{"missing-value", good + `{"id": 4, "qty": }` + "\n",
			format.ReadOptions{}, `:4:18: invalid JSON: want a value, found '}'`, format.ErrParse},
		{"missing-value-after-inference", good + `{"id": 4, "qty": }` + "\n",
			format.ReadOptions{InferRows: 2}, `:4:18: invalid JSON: want a value, found '}'`, format.ErrParse},
		{"not-an-object", good + `[1, 2]` + "\n",
			format.ReadOptions{}, `:4:1: invalid JSON: want an object, found '['`, format.ErrParse},
		{"trailing", good + `{"id": 4} x` + "\n",
			format.ReadOptions{}, `:4:11: invalid JSON: unexpected 'x' after the object (one object per line)`, format.ErrParse},
		{"unterminated-string", `{"id": "abc` + "\n",
			format.ReadOptions{}, `:1:12: invalid JSON: unterminated string`, format.ErrParse},
		{"bad-number", `{"id": 01}` + "\n",
			format.ReadOptions{}, `:1:9: invalid JSON: want ',' or '}', found '1'`, format.ErrParse},
		{"bad-nested", `{"o": {"a" 1}}` + "\n",
			format.ReadOptions{}, `:1:7: invalid JSON: invalid nested value`, format.ErrParse},
		{"bad-value", good + `{"id": 4, "qty": "abc"}` + "\n",
			format.ReadOptions{InferRows: 3}, `:4:18: column "qty": cannot parse "abc" as int64 (the type was inferred from the first 3 rows: raise infer_rows, -1 reads every row, or set the column's type in a schema)`, format.ErrParse},
		{"missing-column", good,
			format.ReadOptions{Columns: []string{"qyt"}}, `: no column "qyt" (have: id, qty)`, format.ErrNoColumn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := textFile(t, "x.jsonl", c.content)
			_, err := readText(t, format.JSONL(), p, c.opts)
			want := "format: " + p + c.want
			if err == nil || err.Error() != want || !errors.Is(err, c.kind) {
				t.Fatalf("err = %v\nwant %s (%v)", err, want, c.kind)
			}
		})
	}
}

// TestTextStops: Read stops at a cancelled context and returns emit's error as is.
func TestTextStops(t *testing.T) {
	for _, name := range []string{"csv", "jsonl"} {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)

			cols := pick(allTypes(5000, 5), "i64", "s")
			recs := batches(mem, cols, 5000)
			p := filepath.Join(t.TempDir(), "x."+name)
			writeFile(t, name, p, schemaOf(cols), format.WriteOptions{CSVHeader: true}, mem, recs...)
			release(recs)
			fm, _ := format.ByName(name)
			f := openFile(t, p)
			opts := format.ReadOptions{BatchRows: 100}

			stop := errors.New("stop")
			calls := 0
			err := fm.Read(context.Background(), f, format.Split{Path: p, Rows: -1}, opts, mem, func(r arrow.RecordBatch) error {
				r.Release()
				if calls++; calls == 3 {
					return stop
				}
				return nil
			})
			if err != stop || calls != 3 {
				t.Fatalf("err = %v after %d batches; want stop after 3", err, calls)
			}
			ctx, cancel := context.WithCancel(context.Background())
			calls = 0
			err = fm.Read(ctx, f, format.Split{Path: p, Rows: -1}, opts, mem, func(r arrow.RecordBatch) error {
				r.Release()
				if calls++; calls == 2 {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) || calls != 2 {
				t.Fatalf("err = %v after %d batches; want context.Canceled after 2", err, calls)
			}
		})
	}
}

// TestJSONLWriterOutput: every line the writer produces is one valid JSON
// object, readable by encoding/json.
func TestJSONLWriterOutput(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	cols := allTypes(300, 6)
	cols[11].vals[1] = "bad utf8 \xff\xfe and \u2028" // the "s" column
	recs := batches(mem, cols, 300)
	p := filepath.Join(t.TempDir(), "x.jsonl")
	writeFile(t, "jsonl", p, schemaOf(cols), format.WriteOptions{}, mem, recs...)
	release(recs)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 300 {
		t.Fatalf("%d lines, want 300", len(lines))
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || len(m) != len(cols) {
			t.Fatalf("line %d: %v (%d keys): %s", i+1, err, len(m), l)
		}
	}
	var m map[string]any
	json.Unmarshal([]byte(lines[1]), &m)
	if m["s"] != "bad utf8 \ufffd\ufffd and \u2028" {
		t.Fatalf("s = %q", m["s"])
	}
}
