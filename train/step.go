package train

import (
	"fmt"
	"time"
)

// stepper is the part of Run that turns a step's micro-batches into an
// update: the passes on the device, then the optimizer on the device
// (devOpt: the device has gpu.OptimOps and every weight trains) or on the
// host (LoRA, or a device without OptimOps), the data-parallel reduction
// between them.
type stepper struct {
	cfg       Config
	n         *net
	lora      *loraSet
	opt       *optimizer
	rg        *ring
	trainable []*param
	devOpt    bool
}

func newStepper(cfg Config, n *net, lora *loraSet, opt *optimizer, rg *ring) *stepper {
	st := &stepper{cfg: cfg, n: n, lora: lora, opt: opt, rg: rg, trainable: n.params}
	if lora != nil {
		st.trainable = lora.params
	}
	st.devOpt = lora == nil && n.optimOps() != nil
	return st
}

// step runs mbs (count targets in all, on every worker) and updates: it
// returns the step's mean loss, the gradient norm before clipping and the
// learning rate, and adds the time of each phase to tm.
func (st *stepper) step(mbs []*batch, count int, tm *phaseTimes) (loss, norm, lr float64, err error) {
	n, cfg, s := st.n, st.cfg, st.opt.step
	t := time.Now()
	if st.lora != nil {
		st.lora.zeroGrad()
		st.lora.merge() // marks the targets dirty: they go up below
	}
	var devO *optimizer
	if st.devOpt {
		devO = st.opt
	}
	if err := n.push(devO); err != nil {
		return 0, 0, 0, err
	}
	if err := n.zeroGrads(); err != nil {
		return 0, 0, 0, err
	}
	t = since(&tm.transfer, t)
	var sum float64
	for _, b := range mbs {
		if st.rg != nil {
			if b = b.share(cfg.Rank, len(cfg.Workers)); b == nil {
				continue
			}
		}
		ls, err := n.accumulate(b, float32(1)/float32(count), tm)
		if err != nil {
			return 0, 0, 0, err
		}
		sum += ls
	}
	t = time.Now()
	// The host needs the gradients for a host optimizer (LoRA's only for
	// its targets) and for the data-parallel reduction.
	hostGrads := st.trainable
	if st.lora != nil {
		hostGrads = hostGrads[:0:0]
		for _, ad := range st.lora.adapts {
			hostGrads = append(hostGrads, ad.base)
		}
	}
	if !st.devOpt || st.rg != nil {
		if err := n.downloadGrads(hostGrads); err != nil {
			return 0, 0, 0, err
		}
		if st.lora != nil {
			st.lora.backprop()
		}
	}
	if st.rg != nil {
		if sum, err = reduceGrads(st.rg, st.trainable, sum); err != nil {
			return 0, 0, 0, fmt.Errorf("train: step %d: %w", s+1, err)
		}
		if st.devOpt {
			if err := n.uploadGrads(st.trainable); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	t = since(&tm.transfer, t)
	lr = lrAt(cfg.LR, cfg.LRSchedule, s, cfg.WarmupSteps, cfg.Steps)
	if st.devOpt {
		if norm, err = n.deviceNorm(st.trainable); err != nil {
			return 0, 0, 0, err
		}
		if err := n.deviceUpdate(st.opt, st.trainable, lr, clipScale(norm, cfg.MaxGradNorm)); err != nil {
			return 0, 0, 0, err
		}
		if err := n.dev.Sync(); err != nil {
			return 0, 0, 0, fmt.Errorf("train: %w", err)
		}
	} else {
		norm = clipGrads(st.trainable, cfg.MaxGradNorm)
		st.opt.update(st.trainable, lr)
	}
	since(&tm.optim, t)
	return sum / float64(count), norm, lr, nil
}
