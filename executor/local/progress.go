package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// startProgress shows one line per operator (rows out, rows/s, bytes, and
// for a scan that knows its total the share done and an ETA) while the run
// lasts, when w is a terminal. The returned function stops it.
func startProgress(ctx context.Context, w io.Writer, ops []*OpStats) func() {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	p := mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
	start := time.Now()
	var bars []*mpb.Bar
	for _, o := range ops {
		o := o
		bar := p.New(0, mpb.NopStyle(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				rows := o.RowsOut.Load()
				if rows == 0 { // a sink counts what it has received until it commits
					rows = o.RowsIn.Load()
				}
				rate := float64(rows) / max(time.Since(start).Seconds(), 1e-3)
				return fmt.Sprintf("%12d rows %10.0f rows/s %10s %16s  %s", rows, rate, bytesText(o.BytesIn.Load()+o.BytesOut.Load()),
					percentETA(o, time.Now()), trim(o.Name, 60))
			})))
		bars = append(bars, bar)
	}
	return func() {
		for _, b := range bars {
			b.SetTotal(-1, true)
		}
		p.Wait()
	}
}

// percentETA is "42% ETA 1m5s" for a scan that knows what it will read
// (rows from Parquet metadata, else bytes), from its progress since it
// began at the rate so far; "" when the total is unknown.
func percentETA(o *OpStats, now time.Time) string {
	done, total := o.RowsIn.Load(), o.RowsTotal.Load()
	if total <= 0 {
		done, total = o.BytesIn.Load(), o.BytesTotal.Load()
	}
	if total <= 0 {
		return ""
	}
	f := min(float64(done)/float64(total), 1)
	s := fmt.Sprintf("%3.0f%%", 100*f)
	began := o.began.Load()
	if began == 0 || f <= 0 {
		return s
	}
	if o.ended.Load() != 0 || f >= 1 {
		return s + " done"
	}
	elapsed := now.Sub(time.Unix(0, began))
	eta := time.Duration(float64(elapsed) * (1 - f) / f)
	return s + " ETA " + eta.Round(time.Second).String()
}
