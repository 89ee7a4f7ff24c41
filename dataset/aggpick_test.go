package dataset_test

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
)

// TestQuantileFirstLastCollect: hand-computed. In input order, group a
// has x 2, null, 4, 7 and s p, q, r, s; group b x null, 3; group c x null.
// quantile(x, 0.25) of a: sorted 2 4 7, position 0.5, so 3; 0.9: position
// 1.8, so 4 + 0.8*3 = 6.4. The input comes in two batches, read by one
// goroutine so that input order is defined.
func TestQuantileFirstLastCollect(t *testing.T) {
	cfg, mem := testConfig(t)
	cfg.Concurrency = 1
	type row struct {
		G string `sluice:"g"`
		X *int64 `sluice:"x"`
		S string `sluice:"s"`
	}
	p := func(v int64) *int64 { return &v }
	batches := [][]row{
		{{"a", p(2), "p"}, {"b", nil, "t"}, {"a", nil, "q"}},
		{{"c", nil, "v"}, {"a", p(4), "r"}, {"b", p(3), "u"}, {"a", p(7), "s"}},
	}
	var recs []arrow.RecordBatch
	for _, b := range batches {
		r, err := dataset.ItemsRecord(mem, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Release)
		recs = append(recs, r)
	}
	rec := take(t, dataset.FromRecords(recs...).Configure(cfg).GroupBy("g").Agg(
		dataset.Quantile("x", 0.25).As("q25"), dataset.Quantile("x", 0.9).As("q90"),
		dataset.First("x"), dataset.Last("x"), dataset.First("s"), dataset.Last("s"),
		dataset.CollectList("x")).Sort(dataset.Asc("g")))
	str := func(name string) string {
		c := rec.Column(rec.Schema().FieldIndices(name)[0])
		var out []string
		for i := range c.Len() {
			out = append(out, c.ValueStr(i))
		}
		return fmt.Sprint(out)
	}
	for name, want := range map[string]string{
		"q25":            "[3 3 (null)]",
		"q90":            "[6.4 3 (null)]",
		"first_x":        "[2 (null) (null)]",
		"last_x":         "[7 3 (null)]",
		"first_s":        "[p t v]",
		"last_s":         "[s u v]",
		"collect_list_x": "[[2,4,7] [3] []]",
	} {
		if got := str(name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if _, ok := rec.Column(rec.Schema().FieldIndices("collect_list_x")[0]).(*array.List); !ok {
		t.Errorf("collect_list is %s, want a list", rec.Schema().Field(rec.Schema().FieldIndices("collect_list_x")[0]).Type)
	}
	if err := dataset.FromItems(batches[0]).GroupBy("g").Agg(dataset.Quantile("x", 1.5)).Err(); err == nil {
		t.Error("quantile 1.5: no error")
	}
	// Over no rows at all, the one global group is NULL for first and
	// an empty list for collect_list.
	empty := take(t, dataset.FromRecords(recs...).Configure(cfg).Filter("x > 100").GroupBy().Agg(dataset.First("s"), dataset.CollectList("s")))
	if c := empty.Column(0); empty.NumRows() != 1 || !c.IsNull(0) || empty.Column(1).ValueStr(0) != "[]" {
		t.Errorf("empty input: %v", empty)
	}
}
