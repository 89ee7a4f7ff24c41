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

// startProgress shows one line per operator (rows out, rows/s, bytes) while
// the run lasts, when w is a terminal. The returned function stops it.
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
				return fmt.Sprintf("%12d rows %10.0f rows/s %10s  %s", rows, rate, bytesText(o.BytesIn.Load()+o.BytesOut.Load()), trim(o.Name, 60))
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
