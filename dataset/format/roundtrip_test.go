package format_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
)

// TestRoundTrip writes every supported type with each format's writer and
// reads it back, comparing with the generated Go values.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"parquet", "csv", "jsonl"} {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)

			cols := allTypes(3000, 1)
			sc := schemaOf(cols)
			recs := batches(mem, cols, 1000)
			p := filepath.Join(t.TempDir(), "all."+name)
			writeFile(t, name, p, sc, format.WriteOptions{RowGroupRows: 700, CSVHeader: true}, mem, recs...)
			release(recs)

			fm, err := format.ForPath(p)
			if err != nil {
				t.Fatal(err)
			}
			if fm.Name() != name {
				t.Fatalf("ForPath(%s).Name() = %q", p, fm.Name())
			}
			f := openFile(t, p)
			opts := format.ReadOptions{BatchRows: 512}
			if name != "parquet" {
				opts.Schema = sc // text formats need the schema to get int8, uint64, ... back
			}
			got, err := fm.Schema(context.Background(), f, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(sc) {
				t.Fatalf("Schema:\n got %s\nwant %s", got, sc)
			}
			out, err := readAll(t, fm, f, opts, mem)
			if err != nil {
				t.Fatal(err)
			}
			defer release(out)
			for _, r := range out {
				if !r.Schema().Equal(got) {
					t.Fatalf("batch schema %s, Schema() said %s", r.Schema(), got)
				}
				if r.NumRows() > 512 {
					t.Fatalf("batch of %d rows, BatchRows is 512", r.NumRows())
				}
			}
			checkRows(t, out, cols, nil)
		})
	}
}

// TestInfer reads CSV and JSONL without a schema: integers come back as
// int64, floats as float64, timestamps as timestamp[us, UTC], dates as
// date32, and strings as strings.
func TestInfer(t *testing.T) {
	for _, name := range []string{"csv", "jsonl"} {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)

			cols := pick(allTypes(2500, 2), "i8", "i32", "i64", "u32", "f32", "f64", "b", "s", "ts", "ts_ms", "ts_ns", "d")
			recs := batches(mem, cols, 1000)
			p := filepath.Join(t.TempDir(), "infer."+name)
			writeFile(t, name, p, schemaOf(cols), format.WriteOptions{CSVHeader: true}, mem, recs...)
			release(recs)

			ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
			want := map[string]arrow.DataType{
				"i8": arrow.PrimitiveTypes.Int64, "i32": arrow.PrimitiveTypes.Int64, "i64": arrow.PrimitiveTypes.Int64,
				"u32": arrow.PrimitiveTypes.Int64, "f32": arrow.PrimitiveTypes.Float64, "f64": arrow.PrimitiveTypes.Float64,
				"b": arrow.FixedWidthTypes.Boolean, "s": arrow.BinaryTypes.String,
				"ts": ts, "ts_ms": ts, "ts_ns": ts, "d": arrow.FixedWidthTypes.Date32,
			}
			fm, _ := format.ByName(name)
			f := openFile(t, p)
			sc, err := fm.Schema(context.Background(), f, format.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range sc.Fields() {
				if !arrow.TypeEqual(fl.Type, want[fl.Name]) || !fl.Nullable {
					t.Errorf("column %q inferred as %s (nullable %v), want nullable %s", fl.Name, fl.Type, fl.Nullable, want[fl.Name])
				}
			}
			out, err := readAll(t, fm, f, format.ReadOptions{}, mem)
			if err != nil {
				t.Fatal(err)
			}
			defer release(out)
			checkRows(t, out, cols, func(col string, v any) any {
				switch v := v.(type) {
				case int8:
					return int64(v)
				case int32:
					return int64(v)
				case uint32:
					return int64(v)
				case float32: // the text holds float32's shortest form
					f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
					return f
				case arrow.Timestamp:
					switch col {
					case "ts_ms":
						return arrow.Timestamp(time.UnixMilli(int64(v)).UnixMicro())
					case "ts_ns":
						return arrow.Timestamp(time.Unix(0, int64(v)).UnixMicro()) // floors, as parsing does
					}
				}
				return v
			})
		})
	}
}
