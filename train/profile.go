package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/gpu"
)

// An op profile of the training passes: with SLUICE_TRAIN_PROFILE=1 every
// op of the forward and backward passes waits for the device after it
// and its time is added to a row named for the op and its shapes; the
// table goes to the run's log (stderr for `sluice train`) when the net
// closes. Waiting after every op removes the overlap of the host's
// launches with the device's work, so the rows are each op's device time
// plus one launch, and their sum is more than an unprofiled step's. It is
// for finding where a step goes, not for timing one.

// profiler is the table of op times.
type profiler struct {
	dev  gpu.Device
	rows map[string]*profRow
	err  error
}

type profRow struct {
	calls int
	d     time.Duration
}

// profOps is a pass's Ops and BackwardOps with each op timed.
type profOps struct {
	gpu.Ops
	bw gpu.BackwardOps
	p  *profiler
}

var (
	_ gpu.BackwardOps   = profOps{}
	_ causalAttention   = profOps{}
	_ gpu.EmbedGroupOps = profOps{}

	_ gpu.MatMulBackwardAccOps = profOps{}
)

func newProfiler(dev gpu.Device) *profiler {
	if os.Getenv("SLUICE_TRAIN_PROFILE") != "1" {
		return nil
	}
	return &profiler{dev: dev, rows: map[string]*profRow{}}
}

// wrap returns ops and bw timed by p (p nil: as they are).
func (p *profiler) wrap(ops gpu.Ops, bw gpu.BackwardOps) (gpu.Ops, gpu.BackwardOps) {
	if p == nil {
		return ops, bw
	}
	o := profOps{Ops: ops, bw: bw, p: p}
	return o, o
}

// time runs f, waits for the device and adds the time to row name.
func (p *profiler) time(name string, f func() error) error {
	if err := p.dev.Sync(); err != nil {
		return err
	}
	t0 := time.Now()
	err := f()
	if err == nil {
		err = p.dev.Sync()
	}
	r := p.rows[name]
	if r == nil {
		r = &profRow{}
		p.rows[name] = r
	}
	r.calls++
	r.d += time.Since(t0)
	return err
}

// write prints the rows, longest first, with their share of the total.
func (p *profiler) write(w io.Writer) {
	if p == nil || len(p.rows) == 0 {
		return
	}
	names := make([]string, 0, len(p.rows))
	var total time.Duration
	for n, r := range p.rows {
		names = append(names, n)
		total += r.d
	}
	sort.Slice(names, func(i, j int) bool { return p.rows[names[i]].d > p.rows[names[j]].d })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "op\tcalls\ttotal ms\tms/call\tshare\t\n")
	for _, n := range names {
		r := p.rows[n]
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.3f\t%.1f%%\t\n", n, r.calls, ms(r.d), ms(r.d)/float64(r.calls), 100*float64(r.d)/float64(total))
	}
	fmt.Fprintf(tw, "all\t\t%.1f\t\t\t\n", ms(total))
	tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// shapes names tensors' shapes as "2048x8192,8192" (nil: "-").
func shapes(ts ...*gpu.Tensor) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		if t == nil {
			s[i] = "-"
			continue
		}
		d := make([]string, len(t.Shape()))
		for j, v := range t.Shape() {
			d[j] = fmt.Sprint(v)
		}
		s[i] = strings.Join(d, "x") + " " + t.DType().String()
	}
	return strings.Join(s, ", ")
}

func (o profOps) MatMul(c, a, b, bias *gpu.Tensor) error {
	return o.p.time("MatMul "+shapes(a, b), func() error { return o.Ops.MatMul(c, a, b, bias) })
}

func (o profOps) Embed(dst, table, ids *gpu.Tensor) error {
	return o.p.time("Embed "+shapes(dst), func() error { return o.Ops.Embed(dst, table, ids) })
}

func (o profOps) RMSNorm(dst, x, residual, weight *gpu.Tensor, eps float32) error {
	return o.p.time("RMSNorm "+shapes(x), func() error { return o.Ops.RMSNorm(dst, x, residual, weight, eps) })
}

func (o profOps) RoPE(q, k, pos *gpu.Tensor, rope gpu.Rope) error {
	return o.p.time("RoPE "+shapes(q), func() error { return o.Ops.RoPE(q, k, pos, rope) })
}

func (o profOps) SiLUMul(dst, gate, up *gpu.Tensor) error {
	return o.p.time("SiLUMul "+shapes(gate), func() error { return o.Ops.SiLUMul(dst, gate, up) })
}

func (o profOps) Add(dst, a, b *gpu.Tensor) error {
	return o.p.time("Add "+shapes(a), func() error { return o.Ops.Add(dst, a, b) })
}

func (o profOps) Attention(out, q, k, v *gpu.Tensor, b gpu.AttnBatch) error {
	return o.p.time("Attention "+shapes(q), func() error { return o.Ops.Attention(out, q, k, v, b) })
}

func (o profOps) CausalAttention(out, q, k, v *gpu.Tensor, seqLen int, scale float32) error {
	ca, ok := o.Ops.(causalAttention)
	if !ok {
		return fmt.Errorf("train: CausalAttention: %w", errors.ErrUnsupported)
	}
	return o.p.time("CausalAttention "+shapes(q), func() error { return ca.CausalAttention(out, q, k, v, seqLen, scale) })
}

func (o profOps) MatMulBackward(da, db, dbias, dc, a, b *gpu.Tensor) error {
	return o.p.time("MatMulBackward "+shapes(dc, a), func() error { return o.bw.MatMulBackward(da, db, dbias, dc, a, b) })
}

func (o profOps) MatMulBackwardAcc(da, db, dbias, dc, a, b *gpu.Tensor) error {
	ma, ok := o.bw.(gpu.MatMulBackwardAccOps)
	if !ok {
		return fmt.Errorf("train: MatMulBackwardAcc: %w", errors.ErrUnsupported)
	}
	return o.p.time("MatMulBackwardAcc "+shapes(dc, a), func() error { return ma.MatMulBackwardAcc(da, db, dbias, dc, a, b) })
}

func (o profOps) EmbedBackward(dtable, dy, ids *gpu.Tensor) error {
	return o.p.time("EmbedBackward "+shapes(dtable, dy), func() error { return o.bw.EmbedBackward(dtable, dy, ids) })
}

func (o profOps) EmbedBackwardGrouped(dtable, dy, order, starts, uniq *gpu.Tensor) error {
	eg, ok := o.bw.(gpu.EmbedGroupOps)
	if !ok {
		return fmt.Errorf("train: EmbedBackwardGrouped: %w", errors.ErrUnsupported)
	}
	return o.p.time("EmbedBackwardGrouped "+shapes(dtable, dy), func() error { return eg.EmbedBackwardGrouped(dtable, dy, order, starts, uniq) })
}

func (o profOps) RMSNormBackward(dx, dweight, dy, x, weight *gpu.Tensor, eps float32) error {
	return o.p.time("RMSNormBackward "+shapes(x), func() error { return o.bw.RMSNormBackward(dx, dweight, dy, x, weight, eps) })
}

func (o profOps) RoPEBackward(dq, dk, pos *gpu.Tensor, rope gpu.Rope) error {
	return o.p.time("RoPEBackward "+shapes(dq), func() error { return o.bw.RoPEBackward(dq, dk, pos, rope) })
}

func (o profOps) SiLUMulBackward(dgate, dup, dy, gate, up *gpu.Tensor) error {
	return o.p.time("SiLUMulBackward "+shapes(gate), func() error { return o.bw.SiLUMulBackward(dgate, dup, dy, gate, up) })
}

func (o profOps) CausalAttentionBackward(dq, dk, dv, dout, q, k, v *gpu.Tensor, seqLen int, scale float32) error {
	return o.p.time("CausalAttentionBackward "+shapes(q), func() error {
		return o.bw.CausalAttentionBackward(dq, dk, dv, dout, q, k, v, seqLen, scale)
	})
}

func (o profOps) CrossEntropy(loss, dlogits, logits, targets *gpu.Tensor, scale float32) error {
	return o.p.time("CrossEntropy "+shapes(logits), func() error { return o.bw.CrossEntropy(loss, dlogits, logits, targets, scale) })
}
