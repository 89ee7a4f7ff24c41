package model

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/safetensors"
	"github.com/sluicehq/sluice/storage"
)

// Options configures Load.
type Options struct {
	// DType is the element type of the weights, the activations and the KV
	// cache on the device: F32, BF16 or F16. Zero means F32 on the "cpu"
	// device, where exactness is what tests want, and BF16 elsewhere.
	DType gpu.DType
	// Context bounds the reads of an s3:// model; nil means Background.
	Context context.Context
	// EnforceEager runs every step op by op, as vLLM's enforce_eager:
	// decode steps are neither padded nor recorded as graphs on a device
	// that has them (gpu.Grapher). SLUICE_CUDA_GRAPHS=0 does the same.
	EnforceEager bool
	// Quantization "fp8" quantizes a float checkpoint's linear layers to
	// FP8 E4M3 at load, per tensor, as vLLM's --quantization fp8; "" loads
	// the checkpoint as it is (a quantized one is detected from
	// config.json's quantization_config).
	Quantization string
	// KVCacheDType "fp8" stores the KV cache in FP8 E4M3 with the
	// checkpoint's per-layer k_scale and v_scale (kvscale.go lists the
	// layouts read), or 1 where it has none, as vLLM: a quarter of
	// float32's bytes and half of bf16's; "" or "auto" uses DType.
	KVCacheDType string
}

// DefaultOptions picks the dtype by device.
func DefaultOptions() Options { return Options{} }

// Validate reports Options Load would refuse.
func (o Options) Validate() error {
	if o.DType != 0 && !o.DType.IsFloat() {
		return fmt.Errorf("model: Options.DType (%v) must be f32, bf16 or f16: %w", o.DType, ErrConfig)
	}
	if o.KVCacheDType != "" && o.KVCacheDType != "auto" && o.KVCacheDType != "fp8" {
		return fmt.Errorf("model: Options.KVCacheDType %q: want auto or fp8: %w", o.KVCacheDType, ErrConfig)
	}
	if o.Quantization != "" && o.Quantization != "fp8" {
		return fmt.Errorf("model: Options.Quantization %q: want fp8 or none: %w", o.Quantization, ErrConfig)
	}
	return nil
}

// Model is a decoder-only transformer's weights on a device, with the
// buffers of its forward pass. A Model follows its Device's threading rule:
// one goroutine at a time.
type Model struct {
	cfg     Config
	dtype   gpu.DType
	kvDType gpu.DType // the cache's: dtype, or F8E4M3
	dev     gpu.Device
	ops     gpu.Ops

	embed, norm, lmHead *gpu.Tensor // lmHead is embed when tied
	layers              []layer
	weights             []*gpu.Tensor // every tensor Close frees
	quant               []*gpu.QuantWeight
	qops                gpu.QuantOps // the device's, when a weight is quantized

	step   step
	samp   sampleBufs // ForwardSample's parameters (sample.go)
	lora   loraState  // LoRA adapters (lora.go)
	closed bool
}

// layer is one decoder block's weights; biases and q/k norms are nil when
// the architecture has none. gate and up are merged into one [2·I, H]
// weight so that one MatMul feeds SiLUMul.
type layer struct {
	inNorm, postNorm     *gpu.Tensor
	q, k, v, o           linear
	qBias, kBias, vBias  *gpu.Tensor
	oBias                *gpu.Tensor
	qNorm, kNorm         *gpu.Tensor
	gateUp, down         linear
	gateUpBias, downBias *gpu.Tensor
	kScale, vScale       float32 // an FP8 cache's, from the checkpoint; 0 means 1 (kvscale.go)
}

// Load reads a Hugging Face model directory (a local directory or an s3://
// prefix: config.json, generation_config.json when present, and
// model.safetensors or its sharded index) and uploads the weights to dev in
// opts.DType. Close the Model to free them.
func Load(dir string, dev gpu.Device, opts Options) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := readConfig(ctx, dir)
	if err != nil {
		return nil, err
	}
	dt := opts.DType
	if dt == 0 {
		dt = gpu.BF16
		if dev.Name() == "cpu" {
			dt = gpu.F32
		}
	}
	ckpt, err := safetensors.OpenDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer ckpt.Close()
	if err := checkLayers(storage.Join(dir, "config.json"), cfg, ckpt); err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, dtype: dt, kvDType: dt, dev: dev, ops: dev.Ops()}
	if opts.KVCacheDType == "fp8" {
		m.kvDType = gpu.F8E4M3
	}
	if cfg.Quant != nil || opts.Quantization != "" {
		qo, ok := m.ops.(gpu.QuantOps)
		if !ok {
			return nil, fmt.Errorf("model: %s: the %s device has no quantized matrix product for this checkpoint's quantization: %w", dir, dev.Name(), ErrConfig)
		}
		m.qops = qo
	}
	m.step.initGraphs(dev, opts.EnforceEager)
	l := &loader{m: m, ckpt: ckpt, used: map[string]bool{}, quantize: opts.Quantization}
	if err := l.load(); err != nil {
		m.free()
		return nil, err
	}
	return m, nil
}

// Config returns what Load read.
func (m *Model) Config() Config { return m.cfg }

// DType is the element type of the weights, activations and cache.
func (m *Model) DType() gpu.DType { return m.dtype }

// Device is the device holding the model.
func (m *Model) Device() gpu.Device { return m.dev }

// Close frees the weights and the step buffers; caches are freed by their
// own Free. A second Close does nothing.
func (m *Model) Close() error {
	if m.closed {
		return nil
	}
	m.free()
	return nil
}

func (m *Model) free() {
	m.closed = true
	for _, t := range m.weights {
		t.Free()
	}
	m.weights = nil
	for _, q := range m.quant {
		q.Free()
	}
	m.quant = nil
	m.step.free()
	m.samp.free()
	m.lora.free()
}

// loader uploads one checkpoint's weights, converting their dtype on the
// host through reused buffers.
type loader struct {
	m    *Model
	ckpt *safetensors.Checkpoint
	used map[string]bool
	// quantize is Options.Quantization.
	quantize string
	f32      []float32
	out      []byte
}

func (l *loader) load() error {
	c, m := l.m.cfg, l.m
	h, qd, kvd := c.Hidden, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	var err error
	w := func(name string, shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		t, err = l.tensor(name, shape...)
		return t
	}
	opt := func(on bool, name string, shape ...int) *gpu.Tensor {
		if !on {
			return nil
		}
		return w(name, shape...)
	}
	m.embed = w("model.embed_tokens.weight", c.Vocab, h)
	m.norm = w("model.norm.weight", h)
	if c.TieEmbeddings {
		m.lmHead = m.embed
		l.used["lm_head.weight"] = true // transformers ties over a saved copy
	} else {
		m.lmHead = w("lm_head.weight", c.Vocab, h)
	}
	m.layers = make([]layer, c.Layers)
	for i := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		a := p + "self_attn."
		ly := &m.layers[i]
		ly.inNorm = w(p+"input_layernorm.weight", h)
		ly.postNorm = w(p+"post_attention_layernorm.weight", h)
		lin := func(base string, n, k int) linear {
			if err != nil {
				return linear{}
			}
			var li linear
			li, err = l.linear(base, n, k)
			return li
		}
		ly.q = lin(a+"q_proj", qd, h)
		ly.k = lin(a+"k_proj", kvd, h)
		ly.v = lin(a+"v_proj", kvd, h)
		ly.o = lin(a+"o_proj", h, qd)
		ly.qBias = opt(c.QKVBias, a+"q_proj.bias", qd)
		ly.kBias = opt(c.QKVBias, a+"k_proj.bias", kvd)
		ly.vBias = opt(c.QKVBias, a+"v_proj.bias", kvd)
		ly.oBias = opt(c.OBias, a+"o_proj.bias", h)
		ly.qNorm = opt(c.QKNorm, a+"q_norm.weight", c.HeadDim)
		ly.kNorm = opt(c.QKNorm, a+"k_norm.weight", c.HeadDim)
		if err == nil {
			ly.kScale, ly.vScale, err = l.kvScales(a)
		}
		if err == nil {
			ly.gateUp, err = l.mergedLinear([]string{p + "mlp.gate_proj", p + "mlp.up_proj"}, c.Intermediate, h)
		}
		if err == nil && c.MLPBias {
			ly.gateUpBias, err = l.merged([]string{p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias"}, c.Intermediate)
		}
		ly.down = lin(p+"mlp.down_proj", h, c.Intermediate)
		ly.downBias = opt(c.MLPBias, p+"mlp.down_proj.bias", h)
	}
	if err != nil {
		return err
	}
	for _, name := range l.ckpt.Names() {
		if !l.used[name] && !strings.HasSuffix(name, "rotary_emb.inv_freq") {
			return fmt.Errorf("model: %s: checkpoint tensor %q is not part of a %s with this config: %w",
				l.ckpt.Dir(), name, c.Arch, ErrUnexpectedTensor)
		}
	}
	return nil
}

// info finds a weight and checks its shape and dtype.
func (l *loader) info(name string, shape ...int) (safetensors.TensorInfo, *safetensors.File, error) {
	t, f, ok := l.ckpt.Tensor(name)
	if !ok {
		return t, nil, fmt.Errorf("model: %s: tensor %q is missing from the checkpoint: %w", l.ckpt.Dir(), name, ErrMissingTensor)
	}
	if !slices.Equal(t.Shape, shape) {
		return t, nil, fmt.Errorf("model: %s: tensor %q has shape %v, the config wants %v: %w", f.Path(), name, t.Shape, shape, ErrShape)
	}
	switch t.DType {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
	default:
		return t, nil, fmt.Errorf("model: %s: tensor %q has dtype %s, want F32, BF16 or F16: %w", f.Path(), name, t.DType, ErrShape)
	}
	l.used[name] = true
	return t, f, nil
}

// tensor uploads one weight.
func (l *loader) tensor(name string, shape ...int) (*gpu.Tensor, error) {
	t, f, err := l.info(name, shape...)
	if err != nil {
		return nil, err
	}
	dst, err := l.alloc(shape...)
	if err != nil {
		return nil, err
	}
	return dst, l.upload(dst, f, t)
}

// merged uploads weights of one shape stacked along dimension 0.
func (l *loader) merged(names []string, shape ...int) (*gpu.Tensor, error) {
	all := slices.Clone(shape)
	all[0] *= len(names)
	dst, err := l.alloc(all...)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		t, f, err := l.info(name, shape...)
		if err != nil {
			return nil, err
		}
		part, err := dst.Slice(i*shape[0], (i+1)*shape[0])
		if err != nil {
			return nil, err
		}
		if err := l.upload(part, f, t); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

func (l *loader) alloc(shape ...int) (*gpu.Tensor, error) {
	t, err := l.m.dev.Alloc(l.m.dtype, shape...)
	if err != nil {
		return nil, fmt.Errorf("model: allocating %v weights: %w", shape, err)
	}
	l.m.weights = append(l.m.weights, t)
	return t, nil
}

// upload copies a checkpoint tensor into dst: the mapped bytes themselves
// when the dtypes agree, else converted through float32.
func (l *loader) upload(dst *gpu.Tensor, f *safetensors.File, t safetensors.TensorInfo) error {
	src, err := f.Data(t.Name)
	if err != nil {
		return err
	}
	if dtypeOf(t.DType) != dst.DType() {
		src = l.convert(src, t.DType, dst.DType())
	}
	if err := l.m.dev.Upload(dst, src); err != nil {
		return fmt.Errorf("model: uploading %q: %w", t.Name, err)
	}
	return nil
}

func dtypeOf(d safetensors.DType) gpu.DType {
	switch d {
	case safetensors.F32:
		return gpu.F32
	case safetensors.BF16:
		return gpu.BF16
	case safetensors.F16:
		return gpu.F16
	}
	return 0
}

// convert re-encodes little-endian src of dtype from as to, rounding to
// nearest even as torch's .to() does.
func (l *loader) convert(src []byte, from safetensors.DType, to gpu.DType) []byte {
	n := len(src) / safetensors.DType(from).Size()
	l.f32 = slices.Grow(l.f32[:0], n)[:n]
	le := binary.LittleEndian
	for i := range l.f32 {
		switch from {
		case safetensors.F32:
			l.f32[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		case safetensors.BF16:
			l.f32[i] = gpu.BFloat16(le.Uint16(src[2*i:])).Float32()
		default:
			l.f32[i] = gpu.Float16(le.Uint16(src[2*i:])).Float32()
		}
	}
	out := slices.Grow(l.out[:0], n*to.Size())[:n*to.Size()]
	for i, f := range l.f32 {
		switch to {
		case gpu.F32:
			le.PutUint32(out[4*i:], math.Float32bits(f))
		case gpu.BF16:
			le.PutUint16(out[2*i:], uint16(gpu.ToBFloat16(f)))
		default:
			le.PutUint16(out[2*i:], uint16(gpu.ToFloat16(f)))
		}
	}
	l.out = out
	return out
}

// checkLayers compares num_hidden_layers with the layers the weight files
// hold, before anything is allocated for them: a config that claims 1e9
// layers fails at once, naming the key and the weight file, rather than
// after gigabytes of layer structs.
func checkLayers(configPath string, c Config, ckpt *safetensors.Checkpoint) error {
	n, last := 0, ""
	for _, name := range ckpt.Names() {
		rest, ok := strings.CutPrefix(name, "model.layers.")
		if !ok {
			continue
		}
		num, _, ok := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if !ok || err != nil || i < 0 {
			continue // an unexpected tensor, reported by load
		}
		if i+1 > n {
			n, last = i+1, name
		}
	}
	if n == c.Layers {
		return nil
	}
	file := ckpt.Dir()
	if last == "" {
		last = "model.embed_tokens.weight"
	}
	if _, f, ok := ckpt.Tensor(last); ok {
		file = f.Path()
	}
	return fmt.Errorf("model: %s: num_hidden_layers (%d) does not match the weights: %s holds %d layers (model.layers.0 to model.layers.%d): fix the config or the weight files: %w",
		configPath, c.Layers, file, n, n-1, ErrConfig)
}
