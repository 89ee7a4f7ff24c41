package dataset_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// A join's inputs are scanned for the columns above the join and the keys
// only, and a right column renamed for a clash keeps its name.
func TestJoinPrunesColumns(t *testing.T) {
	ctx := context.Background()
	cfg, _ := testConfig(t)
	salesDir, usersDir := t.TempDir(), t.TempDir()
	rows := sales(400)
	if _, err := dataset.FromItems(rows).Configure(cfg).WriteParquet(ctx, salesDir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	type user struct {
		ID    int64   `sluice:"user_id"`
		Tier  string  `sluice:"tier"`
		Price float64 `sluice:"price"` // clashes with the sales' price: price_right
		Extra string  `sluice:"extra"`
	}
	var users []user
	for i := int64(0); i < 97; i += 2 {
		users = append(users, user{ID: i, Tier: fmt.Sprintf("t%d", i%3), Price: float64(i) / 2, Extra: "x"})
	}
	if _, err := dataset.FromItems(users).Configure(cfg).WriteParquet(ctx, usersDir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	byID := map[int64]user{}
	for _, u := range users {
		byID[u.ID] = u
	}
	join := func() *dataset.Dataset {
		return dataset.ReadParquet(salesDir).Configure(cfg).
			Join(dataset.ReadParquet(usersDir).Configure(cfg), dataset.JoinOptions{On: []string{"user_id"}})
	}
	optimized := func(t *testing.T, d *dataset.Dataset) string {
		t.Helper()
		got, err := d.Explain()
		if err != nil {
			t.Fatal(err)
		}
		_, opt, _ := strings.Cut(got, "== Optimized plan ==")
		opt, _, _ = strings.Cut(opt, "== Stages ==")
		return opt
	}

	t.Run("group-by", func(t *testing.T) {
		d := join().WithColumn("revenue", "price * qty").GroupBy("tier").Agg(dataset.Sum("revenue").As("revenue"), dataset.Count().As("n"))
		opt := optimized(t, d)
		for _, want := range []string{"columns=[user_id, price, qty]", "columns=[user_id, tier]"} {
			if !strings.Contains(opt, want) {
				t.Errorf("optimized plan has no scan with %s:\n%s", want, opt)
			}
		}
		got := take(t, d)
		gotRows := map[string]string{}
		tiers, revs, ns := col[string](t, got, "tier"), col[float64](t, got, "revenue"), col[int64](t, got, "n")
		for i := range tiers {
			gotRows[tiers[i]] = fmt.Sprintf("%.4f/%d", revs[i], ns[i])
		}
		rev, n := map[string]float64{}, map[string]int64{}
		for _, s := range rows {
			if u, ok := byID[s.User]; ok {
				rev[u.Tier] += s.Price * float64(s.Qty)
				n[u.Tier]++
			}
		}
		want := map[string]string{}
		for k := range n {
			want[k] = fmt.Sprintf("%.4f/%d", rev[k], n[k])
		}
		if !maps.Equal(gotRows, want) {
			t.Fatalf("rows %v, want %v", gotRows, want)
		}
	})

	t.Run("clash", func(t *testing.T) {
		// Without the sales' price the users' price would be named price:
		// the left side keeps its columns, the right one is still pruned.
		d := join().Select("id", "price_right")
		opt := optimized(t, d)
		if !strings.Contains(opt, "columns=[user_id, price]") || strings.Contains(opt, "extra") {
			t.Errorf("the users scan is not pruned to user_id, price:\n%s", opt)
		}
		got := take(t, d)
		want := map[int64]float64{}
		for _, s := range rows {
			if u, ok := byID[s.User]; ok {
				want[s.ID] = u.Price
			}
		}
		ids, prices := col[int64](t, got, "id"), col[float64](t, got, "price_right")
		gotRows := map[int64]float64{}
		for i := range ids {
			gotRows[ids[i]] = prices[i]
		}
		if len(ids) != len(want) || !maps.Equal(gotRows, want) {
			t.Fatalf("%d rows, want %d (or values differ)", len(ids), len(want))
		}
	})
}
