package dataset_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

// TestExplode: by hand, split then explode: id 1 "a,b" gives two rows, a
// NULL list none, "c" one, ",x" an empty string and x.
func TestExplode(t *testing.T) {
	cfg, _ := testConfig(t)
	type row struct {
		ID   int64   `sluice:"id"`
		Tags *string `sluice:"tags"`
	}
	s := func(v string) *string { return &v }
	d := dataset.FromItems([]row{{1, s("a,b")}, {2, nil}, {3, s("c")}, {4, s(",x")}}).Configure(cfg).
		WithColumn("tags", "split(tags, ',')").Explode("tags")
	rec := take(t, d)
	var got []string
	ids, tags := col[int64](t, rec, "id"), col[string](t, rec, "tags")
	for i := range ids {
		got = append(got, fmt.Sprintf("%d:%s", ids[i], tags[i]))
	}
	if g := strings.Join(got, " "); g != "1:a 1:b 3:c 4: 4:x" {
		t.Fatalf("got %s", g)
	}
	if ex, err := d.Explain(); err != nil || !strings.Contains(ex, "Explode(tags)") {
		t.Fatalf("Explain: %v\n%s", err, ex)
	}
	if err := dataset.FromItems([]row{{1, s("a")}}).Explode("id").Err(); err == nil || !strings.Contains(err.Error(), `column "id" is int64, not a list`) {
		t.Fatalf("explode of an int column: %v", err)
	}
}
