package local

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/plan"
)

// Run executes an optimized plan and calls fn with every batch the root
// produces, in order when cfg.PreserveOrder is set, from one goroutine. fn
// must not retain a batch past its return without calling Retain. For a
// plan whose root is a Write, fn may be nil. A failed or cancelled run
// publishes nothing.
func Run(ctx context.Context, root plan.Node, cfg Config, fn func(arrow.RecordBatch) error) (*Stats, error) {
	x, err := newExec(cfg)
	if err != nil {
		return nil, err
	}
	top, err := x.compile(root)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	stopProgress := startProgress(ctx, cfg.Progress, x.ops)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	out := x.start(gctx, g, top)
	var rows int64
	var fnErr error
	for b := range out {
		if fnErr == nil && fn != nil {
			rows += b.rec.NumRows()
			if fnErr = fn(b.rec); fnErr != nil {
				cancel() // the consumer is done: stop the producers
			}
		}
		x.drop(b)
	}
	err = g.Wait()
	x.drain()
	stopProgress()
	if fnErr != nil {
		err = fnErr
	}
	if w, ok := top.(*writeOp); ok {
		rows = w.st.RowsOut.Load()
	}
	st := &Stats{Ops: x.ops, Wall: time.Since(start), PeakBudget: x.budget.peak.Load(), Files: x.written, Rows: rows}
	return st, err
}

// Stage is one pipelined group of operators of the physical plan: a source
// or an exchange followed by the row-local operators fused behind it.
type Stage struct {
	Ops []string
}

// Stages describes the physical plan of an optimized logical plan, sources first.
func Stages(root plan.Node) []Stage {
	var out []Stage
	var walk func(n plan.Node) []string
	// walk returns the operators of n's stage that end at n, after
	// recording the stages of n's inputs that end at an exchange.
	walk = func(n plan.Node) []string {
		switch n := n.(type) {
		case *plan.Filter, *plan.Project, *plan.MapBatches:
			ops := walk(n.Children()[0])
			if m, ok := n.(*plan.MapBatches); ok && m.BatchRows > 0 {
				out = append(out, Stage{Ops: ops})
				ops = []string{fmt.Sprintf("Rebatch %d", m.BatchRows)}
			}
			return append(ops, n.Describe())
		case *plan.Limit:
			return append(walk(n.Input), n.Describe())
		case *plan.Write:
			return append(walk(n.Input), n.Describe())
		}
		for _, c := range n.Children() {
			if ops := walk(c); len(ops) > 0 {
				out = append(out, Stage{Ops: ops})
			}
		}
		return []string{n.Describe()}
	}
	if ops := walk(root); len(ops) > 0 {
		out = append(out, Stage{Ops: ops})
	}
	return out
}

// FormatStages prints stages one per line, operators joined by arrows.
func FormatStages(stages []Stage) string {
	var b strings.Builder
	for i, s := range stages {
		fmt.Fprintf(&b, "Stage %d: %s\n", i+1, strings.Join(s.Ops, " -> "))
	}
	return b.String()
}

// Summary prints the per-operator stats as a table.
func (s *Stats) Summary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows in\trows out\tbatches\tbytes read\tbytes written\twall\tcpu\toperator\t")
	for _, o := range s.Ops {
		cpu := "-"
		if threadCPUKnown {
			cpu = o.CPU().Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", o.RowsIn.Load(), o.RowsOut.Load(), o.Batches.Load(),
			bytesText(o.BytesIn.Load()), bytesText(o.BytesOut.Load()), o.Wall().Round(time.Millisecond), cpu, trim(o.Name, 70))
	}
	tw.Flush()
	fmt.Fprintf(w, "total %s, peak in flight %s\n", s.Wall.Round(time.Millisecond), bytesText(s.PeakBudget))
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
