package cpu

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// MatMulGroup computes c[i] = a[i]·b[i]ᵀ for every i, or c[i] += a[i]·b[i]ᵀ
// with acc, as one parallel dispatch: the blocks of all the products are
// the items the workers share. It is the grouped GEMM of multi-LoRA, where
// each adapter segment of a step is a small product of its own (16 rows
// by a rank of 16, say) that alone would run on one worker, and where one
// MatMul call and one Add per segment and projection cost more in dispatch
// than in arithmetic. B (an adapter's A or B, F32 or BF16) is read in
// place when a product has one block row, as MatMul does, so nothing of
// the adapter is packed per step.
func (d *Device) MatMulGroup(c, a, b []*gpu.Tensor, acc bool) error {
	if len(a) != len(c) || len(b) != len(c) {
		return fmt.Errorf("cpu: MatMulGroup: %d outputs, %d a and %d b", len(c), len(a), len(b))
	}
	d.group = d.group[:0]
	items := 0
	for i := range c {
		m, n, k, err := check.MatMul(c[i], a[i], b[i], nil)
		if err != nil {
			return fmt.Errorf("product %d: %w", i, err)
		}
		if m == 0 || n == 0 {
			continue
		}
		var g gemmTask
		op := fmt.Sprintf("MatMulGroup[%d]", i)
		if g.c, err = d.span(op, "c", c[i]); err != nil {
			return err
		}
		if g.a, err = d.span(op, "a", a[i]); err != nil {
			return err
		}
		if g.b, err = d.span(op, "b", b[i]); err != nil {
			return err
		}
		d.packGen++
		g.d, g.m, g.n, g.k, g.gen, g.acc = d, m, n, k, d.packGen, acc
		g.blocking(1)
		g.direct = g.nbm == 1 && (g.b.dt == gpu.F32 || g.b.dt == gpu.BF16)
		g.items = g.nbm * ((n + g.nc - 1) / g.nc)
		items += g.items
		d.group = append(d.group, g)
	}
	if items == 0 {
		return nil
	}
	d.pool.parallel(groupTask{d.group}, items, 1)
	return nil
}

// groupTask maps the items of a MatMulGroup onto its products' items.
type groupTask struct{ g []gemmTask }

func (t groupTask) run(w, lo, hi int) {
	i, base := 0, 0
	for it := lo; it < hi; it++ {
		for it-base >= t.g[i].items {
			base += t.g[i].items
			i++
		}
		t.g[i].run(w, it-base, it-base+1)
	}
}
