package train

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/sluicehq/sluice/gpu"
)

// Which copy of a param is current: the host's (param.w, m, v) after
// loading, resuming, LoRA's merge or a host optimizer step (param.dirty),
// or the device's (wt, mt, vt) after a device optimizer step
// (param.ahead). A step uploads only dirty weights (all of them once, at
// the first step), zeroes the gradient tensors on the device, lets every
// micro-batch accumulate into them, and then either updates on the device
// (gpu.OptimOps: one download of the squared norms per step) or downloads
// the trainable gradients once and updates on the host. pull brings the
// host copies up to date before a checkpoint or the saved model.

// phaseTimes is where a step's wall-clock time went.
type phaseTimes struct {
	data, forward, backward, optim, transfer time.Duration
}

// since adds the time from t0 to *d and returns now.
func since(d *time.Duration, t0 time.Time) time.Time {
	now := time.Now()
	*d += now.Sub(t0)
	return now
}

// optimOps is the device's optimizer, nil where it has none.
func (n *net) optimOps() gpu.OptimOps {
	oo, _ := n.dev.Ops().(gpu.OptimOps)
	return oo
}

// push uploads the weights whose host copies are newer and, where o (the
// device's optimizer; nil: the host's) is set, their moments.
func (n *net) push(o *optimizer) error {
	if err := n.ensureDevice(); err != nil {
		return err
	}
	for _, p := range n.params {
		if !p.dirty {
			continue
		}
		if err := n.dev.Upload(p.wt, f32Bytes(p.w)); err != nil {
			return fmt.Errorf("train: %s: %w", p.name, err)
		}
		if o != nil && p.m != nil {
			if err := n.ensureMoments(p, o); err != nil {
				return err
			}
			if err := n.dev.Upload(p.mt, f32Bytes(p.m)); err != nil {
				return fmt.Errorf("train: %s: %w", p.name, err)
			}
			if p.v != nil {
				if err := n.dev.Upload(p.vt, f32Bytes(p.v)); err != nil {
					return fmt.Errorf("train: %s: %w", p.name, err)
				}
			}
		}
		p.dirty = false
		n.stale = true
	}
	return nil
}

// ensureMoments gives p its device moments for o, zeroed (before any
// update).
func (n *net) ensureMoments(p *param, o *optimizer) error {
	if p.mt != nil {
		return nil
	}
	oo := n.optimOps()
	var err error
	if p.mt, err = n.dev.Alloc(gpu.F32, p.shape...); err != nil {
		return err
	}
	if err = oo.Zero(p.mt); err != nil {
		return err
	}
	if o.name == "adamw" {
		if p.vt, err = n.dev.Alloc(gpu.F32, p.shape...); err != nil {
			return err
		}
		if err = oo.Zero(p.vt); err != nil {
			return err
		}
	}
	return nil
}

// pull downloads the weights and moments the device updated.
func (n *net) pull() error {
	for _, p := range n.params {
		if !p.ahead {
			continue
		}
		if err := n.dev.Download(f32Bytes(p.w), p.wt); err != nil {
			return fmt.Errorf("train: %s: %w", p.name, err)
		}
		if p.mt != nil {
			if p.m == nil {
				p.m = make([]float32, len(p.w))
			}
			if err := n.dev.Download(f32Bytes(p.m), p.mt); err != nil {
				return fmt.Errorf("train: %s: %w", p.name, err)
			}
		}
		if p.vt != nil {
			if p.v == nil {
				p.v = make([]float32, len(p.w))
			}
			if err := n.dev.Download(f32Bytes(p.v), p.vt); err != nil {
				return fmt.Errorf("train: %s: %w", p.name, err)
			}
		}
		p.ahead = false
	}
	return nil
}

// zeroGrads clears every gradient tensor on the device: with OptimOps.Zero,
// else by uploading zeros.
func (n *net) zeroGrads() error {
	oo := n.optimOps()
	var zero []byte
	for _, p := range n.params {
		var err error
		if oo != nil {
			err = oo.Zero(p.gt)
		} else {
			if len(zero) < p.gt.Bytes() {
				zero = make([]byte, p.gt.Bytes())
			}
			err = n.dev.Upload(p.gt, zero[:p.gt.Bytes()])
		}
		if err != nil {
			return fmt.Errorf("train: %s: %w", p.name, err)
		}
	}
	return nil
}

// accumulate runs one micro-batch, its gradient added into the gradient
// tensors.
func (n *net) accumulate(b *batch, scale float32, tm *phaseTimes) (float64, error) {
	p := n.newPass()
	defer p.free()
	sum, _ := n.run(p, b, scale, tm)
	if p.err != nil {
		return 0, fmt.Errorf("train: %w", p.err)
	}
	return sum, nil
}

// downloadGrads sets the host gradients of ps from their device tensors.
func (n *net) downloadGrads(ps []*param) error {
	for _, p := range ps {
		if err := n.dev.Download(f32Bytes(p.g), p.gt); err != nil {
			return fmt.Errorf("train: %s: %w", p.name, err)
		}
	}
	return nil
}

// uploadGrads sets the device gradients of ps from the host's.
func (n *net) uploadGrads(ps []*param) error {
	for _, p := range ps {
		if err := n.dev.Upload(p.gt, f32Bytes(p.g)); err != nil {
			return fmt.Errorf("train: %s: %w", p.name, err)
		}
	}
	return nil
}

// deviceNorm is the global L2 norm of the params' device gradients, summed
// as clipGrads sums them (each param's squares in float64, then the params
// in order), in one download.
func (n *net) deviceNorm(ps []*param) (float64, error) {
	oo := n.optimOps()
	if n.norms == nil || n.norms.Len() != 2*len(ps) {
		n.norms.Free()
		var err error
		if n.norms, err = n.dev.Alloc(gpu.I32, 2*len(ps)); err != nil {
			return 0, err
		}
	}
	gts := make([]*gpu.Tensor, len(ps))
	for i, p := range ps {
		gts[i] = p.gt
	}
	if err := oo.SumSquares(n.norms, gts); err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	raw := make([]byte, 8*len(ps))
	if err := n.dev.Download(raw, n.norms); err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	var sq float64
	for i := range ps {
		sq += math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return math.Sqrt(sq), nil
}

// deviceUpdate runs the optimizer's step on the device with the gradients
// scaled by c (clipping).
func (n *net) deviceUpdate(o *optimizer, ps []*param, lr float64, c float32) error {
	oo := n.optimOps()
	o.step++
	for _, p := range ps {
		if err := n.ensureMoments(p, o); err != nil {
			return err
		}
		var err error
		if o.name == "adamw" {
			err = oo.AdamWStep(p.wt, p.gt, p.mt, p.vt, o.adamw(lr, c))
		} else {
			err = oo.SGDStep(p.wt, p.gt, p.mt, o.sgd(lr, c))
		}
		if err != nil {
			return fmt.Errorf("train: %s: %w", p.name, err)
		}
		p.ahead = true
	}
	n.stale = true
	return nil
}

// bf16Cacher is a device whose bf16 GEMMs keep bf16 copies of the weights
// (cuda.Device.CacheBF16): the copies are remade before a pass whenever
// the weights changed since (net.stale), and freed with the net.
type bf16Cacher interface {
	Precision() string
	CacheBF16(ts ...*gpu.Tensor) error
	DropBF16()
}

// gemmWeights are the params the GEMMs multiply by: the LM head and each
// layer's projections.
func (n *net) gemmWeights() []*param {
	ps := []*param{n.lmHead}
	for i := range n.layers {
		ly := &n.layers[i]
		ps = append(ps, ly.q, ly.k, ly.v, ly.o, ly.gate, ly.up, ly.down)
	}
	return ps
}

// refreshBF16 remakes the device's bf16 copies of the GEMMs' weights
// where it keeps them and they are stale.
func (n *net) refreshBF16() error {
	c, ok := n.dev.(bf16Cacher)
	if !ok || !n.stale || c.Precision() != "bf16" {
		return nil
	}
	var ws []*gpu.Tensor
	for _, p := range n.gemmWeights() {
		ws = append(ws, p.wt)
	}
	if err := c.CacheBF16(ws...); err != nil {
		return fmt.Errorf("train: bf16 copies of the weights: %w", err)
	}
	n.stale = false
	return nil
}
