package model

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
)

// kvScaleNames are where FP8 checkpoints keep a layer's KV cache scales,
// after "model.layers.N.self_attn.", as vLLM's maybe_remap_kv_scale_name
// finds them: k then v of each layout. The deprecated kv_scale serves both.
var kvScaleNames = [][2]string{
	{"k_scale", "v_scale"},                         // vLLM fp8, llm-compressor
	{"k_proj.output_scale", "v_proj.output_scale"}, // compressed-tensors
	{"k_proj.k_scale", "v_proj.v_scale"},           // ModelOpt
	{"kv_scale", "kv_scale"},                       // older AutoFP8
}

// kvScales reads the layer's k and v scales (attn is its
// "model.layers.N.self_attn." prefix): 0, which the cache reads as 1, where
// the checkpoint has none. Every scale tensor found is checked (a scalar or
// one element, positive and finite) and marked used; only an FP8 cache
// applies them, as in vLLM.
func (l *loader) kvScales(attn string) (k, v float32, err error) {
	var out [2]float32
	found := ""
	for _, names := range kvScaleNames {
		for i, n := range names {
			name := attn + n
			if _, _, ok := l.ckpt.Tensor(name); !ok {
				continue
			}
			t, b, err := l.raw(name, floatDTypes, []int{}, []int{1})
			if err != nil {
				return 0, 0, err
			}
			s := floats(t, b)
			if err := l.checkScales(name, s); err != nil {
				return 0, 0, err
			}
			if out[i] != 0 && out[i] != s[0] {
				return 0, 0, fmt.Errorf("model: %s: tensor %q (%v) disagrees with another %s scale of the layer (%v): %w",
					l.ckpt.Dir(), name, s[0], []string{"k", "v"}[i], out[i], ErrShape)
			}
			out[i], found = s[0], name
		}
	}
	if l.m.kvDType != gpu.F8E4M3 {
		return 0, 0, nil
	}
	if found != "" {
		if _, ok := l.m.ops.(gpu.ScaledKV); !ok {
			return 0, 0, fmt.Errorf("model: %s: tensor %q: the %s device cannot write an FP8 KV cache with scales: %w",
				l.ckpt.Dir(), found, l.m.dev.Name(), ErrConfig)
		}
	}
	return out[0], out[1], nil
}

// writeKV stores layer i's new keys and values, through the checkpoint's
// scales where it has them (an FP8 cache).
func (m *Model) writeKV(c *Cache, i int, v *views) error {
	ly := &m.layers[i]
	if ly.kScale == 0 && ly.vScale == 0 {
		return m.ops.WriteKV(c.k[i], c.v[i], v.k3, v.v3, v.slots)
	}
	return m.ops.(gpu.ScaledKV).WriteKVScaled(c.k[i], c.v[i], v.k3, v.v3, v.slots, ly.kScale, ly.vScale)
}
