package local

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/dataset/format"
)

// TestPercentETA: a scan's share done and ETA from its totals: rows when
// every split knows them (Parquet), else bytes; nothing when unknown.
// Hand-computed: 250 of 1000 rows in 10 s leaves 30 s at that rate.
func TestPercentETA(t *testing.T) {
	var o OpStats
	if got := percentETA(&o, time.Now()); got != "" {
		t.Errorf("no totals: %q", got)
	}
	o.setTotals([]task{{split: format.Split{Rows: 600, Size: 10}}, {split: format.Split{Rows: 400, Size: 10}}})
	if o.RowsTotal.Load() != 1000 || o.BytesTotal.Load() != 0 {
		t.Fatalf("parquet totals: rows %d bytes %d", o.RowsTotal.Load(), o.BytesTotal.Load())
	}
	t0 := time.Unix(1000, 0)
	o.began.Store(t0.UnixNano())
	o.RowsIn.Store(250)
	if got := percentETA(&o, t0.Add(10*time.Second)); got != " 25% ETA 30s" {
		t.Errorf("rows: %q", got)
	}
	o.RowsIn.Store(1000)
	if got := percentETA(&o, t0.Add(40*time.Second)); got != "100% done" {
		t.Errorf("finished: %q", got)
	}

	var c OpStats // CSV: splits without row counts, by bytes
	c.setTotals([]task{{split: format.Split{Rows: -1, Size: 3000}}, {split: format.Split{Rows: -1, Size: 1000}}})
	if c.RowsTotal.Load() != 0 || c.BytesTotal.Load() != 4000 {
		t.Fatalf("csv totals: rows %d bytes %d", c.RowsTotal.Load(), c.BytesTotal.Load())
	}
	c.began.Store(t0.UnixNano())
	c.BytesIn.Store(1000)
	if got := percentETA(&c, t0.Add(2*time.Second)); got != " 25% ETA 6s" {
		t.Errorf("bytes: %q", got)
	}
}
