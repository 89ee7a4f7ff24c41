package engine

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/model"
)

// modelRunner adapts a *model.Model to Runner.
type modelRunner struct {
	m     *model.Model
	batch model.Batch
}

var (
	_ GreedyRunner   = (*modelRunner)(nil)
	_ SamplingRunner = (*modelRunner)(nil)
)

// FromModel returns a Runner over a loaded model. The model stays the
// caller's to close, after the engines that use it.
func FromModel(m *model.Model) Runner { return &modelRunner{m: m} }

func (r *modelRunner) Spec() ModelSpec {
	c := r.m.Config()
	return ModelSpec{Vocab: c.Vocab, MaxPositions: c.MaxPositions, EOS: c.EOS}
}

func (r *modelRunner) NewCache(numBlocks, blockSize int) (KVCache, error) {
	return r.m.NewCache(numBlocks, blockSize)
}

func (r *modelRunner) Forward(c KVCache, b *Batch) ([]float32, error) {
	mc, err := r.prepare(c, b)
	if err != nil {
		return nil, err
	}
	return r.m.Forward(mc, &r.batch)
}

func (r *modelRunner) ForwardArgmax(c KVCache, b *Batch) ([]int32, error) {
	mc, err := r.prepare(c, b)
	if err != nil {
		return nil, err
	}
	return r.m.ForwardArgmax(mc, &r.batch)
}

func (r *modelRunner) ForwardSample(c KVCache, b *Batch, s *gpu.SamplePack) ([]int32, error) {
	mc, err := r.prepare(c, b)
	if err != nil {
		return nil, err
	}
	return r.m.ForwardSample(mc, &r.batch, s)
}

// prepare converts b into r.batch and c into the model's cache.
func (r *modelRunner) prepare(c KVCache, b *Batch) (*model.Cache, error) {
	mc, ok := c.(*model.Cache)
	if !ok {
		return nil, fmt.Errorf("infer: Forward with a %T, not the model's cache", c)
	}
	seqs := r.batch.Seqs[:0]
	for _, s := range b.Seqs {
		seqs = append(seqs, model.SeqInput(s))
	}
	r.batch.Seqs = seqs
	return mc, nil
}

// device is the model's device (see deviceRunner).
func (r *modelRunner) device() gpu.Device { return r.m.Device() }
