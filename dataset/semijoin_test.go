package dataset_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// TestSemiAntiJoin: left ids 1..5 with keys x x y null z; right keys x x w
// null. Semi keeps ids 1 and 2 (once each, though x is twice on the
// right); anti keeps 3, 4 (null key) and 5. Hand-computed.
func TestSemiAntiJoin(t *testing.T) {
	cfg, _ := testConfig(t)
	type l struct {
		ID int64   `sluice:"id"`
		K  *string `sluice:"k"`
	}
	type r struct {
		K *string `sluice:"key"`
		V int64   `sluice:"v"`
	}
	s := func(v string) *string { return &v }
	left := dataset.FromItems([]l{{1, s("x")}, {2, s("x")}, {3, s("y")}, {4, nil}, {5, s("z")}}).Configure(cfg)
	right := dataset.FromItems([]r{{s("x"), 1}, {s("x"), 2}, {s("w"), 3}, {nil, 4}}).Configure(cfg)
	opts := dataset.JoinOptions{LeftOn: []string{"k"}, RightOn: []string{"key"}}
	ids := func(d *dataset.Dataset) string {
		rec := take(t, d)
		if rec.NumCols() != 2 {
			t.Fatalf("columns %s", rec.Schema())
		}
		v := col[int64](t, rec, "id")
		slices.Sort(v)
		return fmt.Sprint(v)
	}
	if got := ids(left.SemiJoin(right, opts)); got != "[1 2]" {
		t.Errorf("semi: %s", got)
	}
	if got := ids(left.AntiJoin(right, opts)); got != "[3 4 5]" {
		t.Errorf("anti: %s", got)
	}
}
