//go:build linux

package dataset_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
)

func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The summary's cpu column is CPU time, so over all operators it cannot
// exceed the process's: a stage that waits (here a sleep standing for a
// GPU or a remote call) counted its waiting as cpu when it was wall time.
// The scan line shows the rows decoded and the rows its pushed-down
// filter kept.
func TestStatsCPUAndScanFilterRows(t *testing.T) {
	cfg, _ := testConfig(t)
	dir := filepath.Join(t.TempDir(), "in")
	// One writer, so one file whose row group holds every id: with several
	// files, a file of ids >= 300 alone is skipped by its statistics and
	// the rows decoded depend on how the writers split the rows.
	one := cfg
	one.Concurrency = 1
	if _, err := ds(t, one, sales(1000)).WriteParquet(context.Background(), dir, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait := func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		time.Sleep(150 * time.Millisecond)
		rec.Retain()
		return rec, nil
	}
	d := dataset.ReadParquet(dir).Configure(cfg).Filter("id < 300")
	sch, err := d.Schema()
	if err != nil {
		t.Fatal(err)
	}
	d = d.MapBatches(wait, dataset.MapOptions{Name: "wait", Schema: sch})
	before := processCPU(t)
	st, err := d.WriteJSONL(context.Background(), filepath.Join(t.TempDir(), "out"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used := processCPU(t) - before
	var sum time.Duration
	var sb strings.Builder
	st.Summary(&sb)
	t.Log("\n" + sb.String())
	for _, o := range st.Ops {
		sum += o.CPU()
		if strings.HasPrefix(o.Name, "Scan") {
			if !strings.Contains(o.Name, "filter=") {
				t.Errorf("scan line %q does not show its filter", o.Name)
			}
			if in, out := o.RowsIn.Load(), o.RowsOut.Load(); in != 1000 || out != 300 {
				t.Errorf("scan rows in %d, out %d; want 1000 decoded, 300 kept by the filter", in, out)
			}
		}
	}
	if sum > used {
		t.Errorf("operators' cpu sums to %s, more than the process used (%s)", sum, used)
	}
}
