package dataset_test

import (
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// TestExplainOperators: Distinct, Sample, Split, SemiJoin, AntiJoin,
// WithSplit and Explode show in Explain as the operators they are, then
// what they are built from (testdata/explain-operators.golden).
func TestExplainOperators(t *testing.T) {
	d := dataset.Range(100).WithColumn("k", "id % 3")
	r := dataset.Range(10).WithColumn("k", "id % 2").WithColumn("j", "id % 5")
	train, test := d.Split(0.8, 1)
	var got string
	for _, c := range []struct {
		name string
		d    *dataset.Dataset
	}{
		{"distinct", d.Distinct("k")},
		{"distinct all", r.Distinct()},
		{"sample", d.Sample(0.25, 3)},
		{"split", train},
		{"split rest", test},
		{"with split", d.WithSplit("part", []float64{0.6, 0.2, 0.2}, []string{"a", "b", "c"}, 4)},
		{"semi join", d.SemiJoin(r, dataset.JoinOptions{On: []string{"k"}})},
		{"anti join", d.AntiJoin(r, dataset.JoinOptions{LeftOn: []string{"id"}, RightOn: []string{"j"}})},
		{"explode", d.WithColumn("l", "split('a,b', ',')").Explode("l")},
	} {
		text, err := c.d.Explain()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got += "### " + c.name + "\n" + text
	}
	checkGolden(t, "explain-operators", got)
}
