package dataset_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// TestVarStdMedian: hand-computed. Group a: 2, 4, 4, 4, 5, 5, 7, 9 (mean
// 5, squared deviations 32, var 32/7, median 4.5); group b: 1, null, 3
// (var 2, median 2); group c: 10 (var null, median 10).
func TestVarStdMedian(t *testing.T) {
	cfg, _ := testConfig(t)
	type row struct {
		G string `sluice:"g"`
		X *int32 `sluice:"x"`
	}
	var rows []row
	for _, v := range []int32{2, 4, 4, 4, 5, 5, 7, 9} {
		rows = append(rows, row{"a", &v})
	}
	one, three, ten := int32(1), int32(3), int32(10)
	rows = append(rows, row{"b", &one}, row{"b", nil}, row{"b", &three}, row{"c", &ten})
	rec := take(t, dataset.FromItems(rows).Configure(cfg).Repartition(3).
		GroupBy("g").Agg(dataset.Var("x"), dataset.Std("x").As("sd"), dataset.Median("x")).Sort(dataset.Asc("g")))
	vars, sds, meds := col[float64](t, rec, "var_x"), col[float64](t, rec, "sd"), col[float64](t, rec, "median_x")
	if math.Abs(vars[0]-32.0/7) > 1e-12 || vars[1] != 2 || math.Abs(sds[0]-math.Sqrt(32.0/7)) > 1e-12 || math.Abs(sds[1]-math.Sqrt(2)) > 1e-12 {
		t.Fatalf("var %v std %v", vars, sds)
	}
	if c := rec.Column(rec.Schema().FieldIndices("var_x")[0]); !c.IsNull(2) {
		t.Fatalf("var of one value is not null: %v", c)
	}
	if got := fmt.Sprint(meds); got != "[4.5 2 10]" {
		t.Fatalf("median %s", got)
	}
	if err := dataset.FromItems([]row{{"a", nil}}).GroupBy("g").Agg(dataset.Median("g")).Err(); err == nil {
		t.Fatal("median of a string column: no error")
	}
}
