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
)

// TestPartitionTypes: hive partition columns read as the declared types
// (year int, day date; a null directory stays NULL), filters compare them
// as those types (year > 2023 is numeric; as strings "10000" < "2024"),
// and a directory value that does not parse is an error naming the file.
func TestPartitionTypes(t *testing.T) {
	cfg, mem := testConfig(t)
	ctx := context.Background()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "year", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "day", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3, 4}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"2023", "2024", "10000", ""}, []bool{true, true, true, false})
	b.Field(2).(*array.StringBuilder).AppendValues([]string{"2023-05-01", "2024-02-29", "2024-01-01", "2024-01-02"}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	dir := t.TempDir()
	if _, err := dataset.FromRecords(rec).Configure(cfg).WriteParquet(ctx, dir, dataset.WriteOptions{PartitionBy: []string{"year", "day"}}); err != nil {
		t.Fatal(err)
	}
	typed := func() *dataset.Dataset {
		return dataset.ReadParquet(dir, dataset.PartitionTypes(map[string]string{"year": "int", "day": "date"})).Configure(cfg)
	}
	s, err := typed().Schema()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Field(1).Type, " ", s.Field(2).Type); got != "int32 date32" {
		t.Fatalf("partition column types %s (schema %s)", got, s)
	}
	got := take(t, typed().Filter("year > 2023").Sort(dataset.Asc("id")))
	if ids := col[int64](t, got, "id"); fmt.Sprint(ids) != "[2 3]" {
		t.Errorf("year > 2023: ids %v", ids)
	}
	if n, err := typed().Filter("year IS NULL AND day = DATE '2024-01-02'").Count(ctx); err != nil || n != 1 {
		t.Errorf("null year: %d rows, %v", n, err)
	}
	if _, err := dataset.ReadParquet(dir, dataset.PartitionTypes(map[string]string{"day": "int"})).Schema(); err == nil ||
		!strings.Contains(err.Error(), "is not int") || !strings.Contains(err.Error(), string(os.PathSeparator)+"part-") {
		t.Errorf("bad value: %v", err)
	}
	if _, err := dataset.ReadParquet(dir, dataset.PartitionTypes(map[string]string{"id": "int"})).Schema(); err == nil ||
		!strings.Contains(err.Error(), `partition column "id": no key=value directories`) {
		t.Errorf("not a partition column: %v", err)
	}
	if _, err := dataset.ReadParquet(filepath.Join(dir), dataset.PartitionTypes(map[string]string{"year": "integer-ish"})).Schema(); err == nil ||
		!strings.Contains(err.Error(), "unknown type") {
		t.Errorf("unknown type: %v", err)
	}
}
