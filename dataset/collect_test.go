package dataset_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dataset"
)

// TestCollect: rows come back as the structs they were made from, with
// widening (int32 column into an int64 field) and clear errors.
func TestCollect(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx := context.Background()
	in := sales(20)
	got, err := dataset.Collect[sale](ctx, dataset.FromItems(in).Configure(cfg).Sort(dataset.Asc("id")))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("%d rows, want %d", len(got), len(in))
	}
	for i := range in {
		a, b := got[i], in[i]
		if a.ID != b.ID || a.User != b.User || a.Category != b.Category || a.Price != b.Price || a.Qty != b.Qty ||
			!a.TS.Equal(b.TS) || (a.Note == nil) != (b.Note == nil) || a.Note != nil && *a.Note != *b.Note {
			t.Fatalf("row %d: %+v, want %+v", i, a, b)
		}
	}
	type wide struct {
		Qty  int64     `sluice:"qty"`
		Note *string   `sluice:"note"`
		When time.Time `sluice:"ts"`
	}
	if w, err := dataset.Collect[wide](ctx, dataset.FromItems(in).Configure(cfg).Limit(3)); err != nil || len(w) != 3 {
		t.Fatalf("wide: %v, %v", w, err)
	}
	type strict struct {
		Note string `sluice:"note"`
	}
	_, err = dataset.Collect[strict](ctx, dataset.FromItems(in).Configure(cfg).Sort(dataset.Asc("id")))
	if err == nil || !strings.Contains(err.Error(), `dataset: Collect: row 0, column "note": NULL, but field of type string is not a pointer`) {
		t.Fatalf("null into string: %v", err)
	}
	type narrow struct {
		ID int8 `sluice:"id"`
	}
	_, err = dataset.Collect[narrow](ctx, dataset.Range(200).Configure(cfg).Sort(dataset.Asc("id")))
	if err == nil || !strings.Contains(err.Error(), `row 128, column "id": 128 overflows a field of type int8`) {
		t.Fatalf("overflow: %v", err)
	}
	type missing struct {
		Z int64 `sluice:"z"`
	}
	if _, err := dataset.Collect[missing](ctx, dataset.Range(2).Configure(cfg)); err == nil || !strings.Contains(err.Error(), `unknown column "z"`) {
		t.Fatalf("missing: %v", err)
	}
}

// TestShow prints a table of the first rows.
func TestShow(t *testing.T) {
	cfg, _ := testConfig(t)
	var b strings.Builder
	d := dataset.FromItems(dupRows()).Configure(cfg).Limit(3)
	if err := d.Show(context.Background(), &b, 2); err != nil {
		t.Fatal(err)
	}
	want := "a     | b    | c\n" +
		"int32 | utf8 | int32\n" +
		"------+------+------\n" +
		"1     | x    | 1\n" +
		"1     | x    | 1\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
