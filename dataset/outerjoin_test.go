package dataset_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// TestOuterJoins: left (id, k, name) with keys x x y null z; right
// (key, v) with keys x w null (v 10, 30, 40), the right's key int32
// against the left's int64 in the second case. Hand-computed, as SQL's
// RIGHT / FULL OUTER JOIN ... USING: a null key matches nothing on either
// side; an unmatched right row has NULL id and name and its own key in k.
func TestOuterJoins(t *testing.T) {
	cfg, _ := testConfig(t)
	type l struct {
		ID   int64   `sluice:"id"`
		K    *string `sluice:"k"`
		Name string  `sluice:"name"`
	}
	type r struct {
		K *string `sluice:"key"`
		V int64   `sluice:"v"`
	}
	type row struct {
		ID   *int64  `sluice:"id"`
		K    *string `sluice:"k"`
		Name *string `sluice:"name"`
		V    *int64  `sluice:"v"`
	}
	s := func(v string) *string { return &v }
	left := dataset.FromItems([]l{{1, s("x"), "a"}, {2, s("x"), "b"}, {3, s("y"), "c"}, {4, nil, "d"}, {5, s("z"), "e"}}).Configure(cfg)
	right := dataset.FromItems([]r{{s("x"), 10}, {s("w"), 30}, {nil, 40}}).Configure(cfg)
	show := func(rows []row) string {
		var out []string
		p := func(v any) string {
			switch v := v.(type) {
			case *int64:
				if v != nil {
					return fmt.Sprint(*v)
				}
			case *string:
				if v != nil {
					return *v
				}
			}
			return "-"
		}
		for _, r := range rows {
			out = append(out, p(r.ID)+" "+p(r.K)+" "+p(r.Name)+" "+p(r.V))
		}
		slices.Sort(out)
		return strings.Join(out, "; ")
	}
	cases := []struct{ how, want string }{
		{"right", "- - - 40; - w - 30; 1 x a 10; 2 x b 10"},
		{"full", "- - - 40; - w - 30; 1 x a 10; 2 x b 10; 3 y c -; 4 - d -; 5 z e -"},
		{"outer", "- - - 40; - w - 30; 1 x a 10; 2 x b 10; 3 y c -; 4 - d -; 5 z e -"},
	}
	for _, c := range cases {
		d := left.Join(right, dataset.JoinOptions{LeftOn: []string{"k"}, RightOn: []string{"key"}, How: c.how})
		rows, err := dataset.Collect[row](context.Background(), d)
		if err != nil {
			t.Fatalf("%s: %v", c.how, err)
		}
		if got := show(rows); got != c.want {
			t.Errorf("%s join:\n got %s\nwant %s", c.how, got, c.want)
		}
		plan, err := d.Explain()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "unmatched right rows") || !strings.Contains(plan, "Union") {
			t.Errorf("%s: Explain does not show the unmatched right rows' union:\n%s", c.how, plan)
		}
	}

	// A filter over the left's columns after a full join keeps its
	// meaning: the unmatched right rows (NULL name) pass "name IS NULL";
	// pushed into the left side before the join it would keep none.
	d := left.Join(right, dataset.JoinOptions{LeftOn: []string{"k"}, RightOn: []string{"key"}, How: "full"}).Filter("name IS NULL")
	rows, err := dataset.Collect[row](context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if got := show(rows); got != "- - - 40; - w - 30" {
		t.Errorf("full join then name IS NULL: %s", got)
	}

	// Keys of different integer widths: the right's int32 keys fill the
	// left's int64 key column.
	type li struct {
		K int64 `sluice:"k"`
		A int64 `sluice:"a"`
	}
	type ri struct {
		K int32 `sluice:"k"`
		B int64 `sluice:"b"`
	}
	type ro struct {
		K *int64 `sluice:"k"`
		A *int64 `sluice:"a"`
		B *int64 `sluice:"b"`
	}
	d = dataset.FromItems([]li{{1, 100}, {2, 200}}).Configure(cfg).
		Join(dataset.FromItems([]ri{{2, 20}, {3, 30}}).Configure(cfg), dataset.JoinOptions{On: []string{"k"}, How: "full"})
	rows2, err := dataset.Collect[ro](context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows2 {
		f := func(p *int64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprint(*p)
		}
		got = append(got, f(r.K)+" "+f(r.A)+" "+f(r.B))
	}
	slices.Sort(got)
	if strings.Join(got, "; ") != "1 100 -; 2 200 20; 3 - 30" {
		t.Errorf("full join on int64 = int32 keys: %v", got)
	}
	if _, err := left.Join(right, dataset.JoinOptions{On: []string{"k"}, How: "cross"}).Schema(); err == nil || !strings.Contains(err.Error(), "right or full") {
		t.Errorf("how cross: %v", err)
	}
}
