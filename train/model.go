package train

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cpu"  // the cpu device parses and checks the model
	_ "github.com/sluicehq/sluice/gpu/cuda" // --device cuda, found at run time where a driver is
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/safetensors"
)

// param is one trainable tensor in float32 (master weights), with its
// gradient and the optimizer's state, on the host (w, g, m, v) and on the
// net's device (wt, gt, mt, vt: see resident.go for which copy is current).
type param struct {
	name  string
	shape []int
	w, g  []float32
	m, v  []float32 // AdamW moments or (m) SGD momentum

	wt, gt *gpu.Tensor // w and the step's gradient on the net's device
	mt, vt *gpu.Tensor // m and v on the device, when the device optimizes

	// dirty: the host's w (and m, v) changed since they were uploaded;
	// ahead: the device's wt, mt, vt changed since they were downloaded.
	dirty, ahead bool
}

// net is a decoder's weights by role; nil where the architecture has none.
type net struct {
	cfg    model.Config
	dev    gpu.Device // the forward and backward passes run here; close frees it
	embed  *param
	norm   *param
	lmHead *param // embed when tied
	layers []blockParams
	params []*param // every param, in checkpoint order
	byName map[string]*param
	chunk  int         // target rows per cross-entropy chunk (0: logitElems/Vocab)
	norms  *gpu.Tensor // the device's squared gradient norms (resident.go)
	prof   *profiler   // SLUICE_TRAIN_PROFILE=1's op times (profile.go), or nil
	stale  bool        // weights changed since the device's bf16 copies (bf16Cacher)
	// acts is the dtype of the activations only GEMMs read (the norms'
	// outputs h1 and h2, and the MLP's gate, up and their SiLU product):
	// BF16 at --precision bf16 on cuda with SLUICE_TRAIN_BF16_ACTS=1
	// (setPrecision), else F32.
	acts gpu.DType
}

type blockParams struct {
	inNorm, postNorm    *param
	q, k, v, o          *param
	qBias, kBias, vBias *param
	oBias               *param
	qNorm, kNorm        *param
	gate, up, down      *param
	gateBias, upBias    *param
	downBias            *param
}

// loadNet reads a Hugging Face model directory: infer/model parses and
// checks config.json and every weight (a Load on a cpu device opened for
// it), then the weights are read again from the checkpoint as float32
// master copies on the host. The net trains on the device named device
// (a gpu registry name), which it owns until close; the device must have
// gpu.BackwardOps. Its f32 GEMMs compute at bf16 where it can
// (setPrecision).
func loadNet(ctx context.Context, dir, device string) (_ *net, err error) {
	check, err := gpu.Open("cpu")
	if err != nil {
		return nil, err
	}
	m, err := model.Load(dir, check, model.Options{DType: gpu.F32, Context: ctx})
	if err != nil {
		check.Close()
		return nil, fmt.Errorf("train: --model %s: %w", dir, err)
	}
	cfg := m.Config()
	m.Close()
	check.Close()
	dev, err := openDevice(device)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			dev.Close()
		}
	}()
	ck, err := safetensors.OpenDir(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("train: --model %s: %w", dir, err)
	}
	defer ck.Close()
	n := &net{cfg: cfg, dev: dev, byName: map[string]*param{}}
	h, qd, kvd := cfg.Hidden, cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	var lerr error
	w := func(on bool, name string, shape ...int) *param {
		if !on || lerr != nil {
			return nil
		}
		p, err := readParam(ck, name, shape)
		if err != nil {
			lerr = err
			return nil
		}
		n.params = append(n.params, p)
		n.byName[name] = p
		return p
	}
	n.embed = w(true, "model.embed_tokens.weight", cfg.Vocab, h)
	n.layers = make([]blockParams, cfg.Layers)
	for i := range n.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		a := p + "self_attn."
		b := &n.layers[i]
		b.inNorm = w(true, p+"input_layernorm.weight", h)
		b.q = w(true, a+"q_proj.weight", qd, h)
		b.qBias = w(cfg.QKVBias, a+"q_proj.bias", qd)
		b.k = w(true, a+"k_proj.weight", kvd, h)
		b.kBias = w(cfg.QKVBias, a+"k_proj.bias", kvd)
		b.v = w(true, a+"v_proj.weight", kvd, h)
		b.vBias = w(cfg.QKVBias, a+"v_proj.bias", kvd)
		b.o = w(true, a+"o_proj.weight", h, qd)
		b.oBias = w(cfg.OBias, a+"o_proj.bias", h)
		b.qNorm = w(cfg.QKNorm, a+"q_norm.weight", cfg.HeadDim)
		b.kNorm = w(cfg.QKNorm, a+"k_norm.weight", cfg.HeadDim)
		b.postNorm = w(true, p+"post_attention_layernorm.weight", h)
		b.gate = w(true, p+"mlp.gate_proj.weight", cfg.Intermediate, h)
		b.gateBias = w(cfg.MLPBias, p+"mlp.gate_proj.bias", cfg.Intermediate)
		b.up = w(true, p+"mlp.up_proj.weight", cfg.Intermediate, h)
		b.upBias = w(cfg.MLPBias, p+"mlp.up_proj.bias", cfg.Intermediate)
		b.down = w(true, p+"mlp.down_proj.weight", h, cfg.Intermediate)
		b.downBias = w(cfg.MLPBias, p+"mlp.down_proj.bias", h)
	}
	n.norm = w(true, "model.norm.weight", h)
	if cfg.TieEmbeddings {
		n.lmHead = n.embed
	} else {
		n.lmHead = w(true, "lm_head.weight", cfg.Vocab, h)
	}
	if lerr != nil {
		return nil, fmt.Errorf("train: --model %s: %w", dir, lerr)
	}
	// --precision's default, which Run may change.
	if err = n.setPrecision(""); err != nil {
		return nil, err
	}
	return n, nil
}

// openDevice opens the training device: any backend of the gpu registry
// whose Ops implement gpu.BackwardOps.
func openDevice(name string) (gpu.Device, error) {
	dev, err := gpu.Open(name)
	if err != nil {
		return nil, fmt.Errorf("train: --device %s: %w: %w", name, err, ErrConfig)
	}
	if _, ok := dev.Ops().(gpu.BackwardOps); !ok {
		dev.Close()
		return nil, fmt.Errorf("train: --device %s: the %s backend has no backward ops (gpu.BackwardOps), so it cannot train; use --device cpu: %w",
			name, dev.Name(), ErrConfig)
	}
	return dev, nil
}

func readParam(ck *safetensors.Checkpoint, name string, shape []int) (*param, error) {
	info, _, ok := ck.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %q is missing: %w", name, model.ErrMissingTensor)
	}
	if !slices.Equal(info.Shape, shape) {
		return nil, fmt.Errorf("tensor %q has shape %v, want %v: %w", name, info.Shape, shape, model.ErrShape)
	}
	raw, err := ck.Data(name)
	if err != nil {
		return nil, err
	}
	w, err := decodeF32(raw, info.DType)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return &param{name: name, shape: slices.Clone(shape), w: w, g: make([]float32, len(w)), dirty: true}, nil
}

func decodeF32(raw []byte, dt safetensors.DType) ([]float32, error) {
	le := binary.LittleEndian
	switch dt {
	case safetensors.F32:
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return out, nil
	case safetensors.BF16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = gpu.BFloat16(le.Uint16(raw[2*i:])).Float32()
		}
		return out, nil
	case safetensors.F16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = gpu.Float16(le.Uint16(raw[2*i:])).Float32()
		}
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s, want F32, BF16 or F16: %w", dt, model.ErrShape)
}

func encodeF32(w []float32) []byte {
	out := make([]byte, 4*len(w))
	for i, f := range w {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}

func (n *net) zeroGrad() {
	for _, p := range n.params {
		clear(p.g)
	}
}
