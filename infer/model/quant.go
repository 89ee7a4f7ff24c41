package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/safetensors"
)

// QuantConfig is config.json's quantization_config, as the quantized
// checkpoints of the Hugging Face hub carry it; Load detects the format
// from it (no option is needed). Method is quant_method: "fp8" (AutoFP8,
// vLLM's Fp8Config), "compressed-tensors" (llm-compressor's FP8, format
// float-quantized), "awq" (AutoAWQ, version gemm) or "gptq" (AutoGPTQ /
// GPTQModel, checkpoint_format gptq or gptq_v2).
type QuantConfig struct {
	Method           string   `json:"quant_method"`
	Bits             int      `json:"bits"`
	GroupSize        int      `json:"group_size"`
	DescAct          bool     `json:"desc_act"`
	Sym              *bool    `json:"sym"`
	ZeroPoint        *bool    `json:"zero_point"`
	Version          string   `json:"version"`
	CheckpointFormat string   `json:"checkpoint_format"`
	Format           string   `json:"format"`
	Ignore           []string `json:"ignore"`
	NotConvert       []string `json:"modules_to_not_convert"`
	ConfigGroups     map[string]struct {
		Weights *struct {
			NumBits  int    `json:"num_bits"`
			Type     string `json:"type"`
			Strategy string `json:"strategy"`
		} `json:"weights"`
	} `json:"config_groups"`
}

// parseQuant reads quantization_config from config.json; nil when absent.
func parseQuant(path string, js []byte) (*QuantConfig, error) {
	var top struct {
		Q json.RawMessage `json:"quantization_config"`
	}
	if err := json.Unmarshal(js, &top); err != nil || len(top.Q) == 0 || string(top.Q) == "null" {
		return nil, nil // parseConfig reports a malformed file
	}
	var q QuantConfig
	if err := json.Unmarshal(top.Q, &q); err != nil {
		return nil, configError(path, "quantization_config: %v", err)
	}
	switch q.Method {
	case "fp8":
	case "compressed-tensors":
		if q.Format != "float-quantized" && q.Format != "naive-quantized" {
			return nil, configError(path, "quantization_config.format %q: only float-quantized (FP8) compressed-tensors checkpoints are supported", q.Format)
		}
		for name, g := range q.ConfigGroups {
			if w := g.Weights; w != nil && (w.NumBits != 8 || w.Type != "float" || (w.Strategy != "tensor" && w.Strategy != "channel")) {
				return nil, configError(path, "quantization_config.config_groups.%s.weights: %d-bit %s by %s: want 8-bit float by tensor or channel", name, w.NumBits, w.Type, w.Strategy)
			}
		}
	case "awq", "gptq":
		if q.Bits != 4 {
			return nil, configError(path, "quantization_config.bits is %d: only 4-bit %s is supported", q.Bits, q.Method)
		}
		if q.GroupSize == 0 || q.GroupSize < -1 {
			return nil, configError(path, "quantization_config.group_size is %d: want a positive group size or -1", q.GroupSize)
		}
		if q.Method == "awq" && q.Version != "" && q.Version != "gemm" {
			return nil, configError(path, "quantization_config.version %q: only AWQ gemm checkpoints are supported", q.Version)
		}
		if q.Method == "gptq" && q.CheckpointFormat != "" && q.CheckpointFormat != "gptq" && q.CheckpointFormat != "gptq_v2" {
			return nil, configError(path, "quantization_config.checkpoint_format %q: want gptq or gptq_v2", q.CheckpointFormat)
		}
	default:
		return nil, configError(path, "quantization_config.quant_method %q: want fp8, compressed-tensors, awq or gptq", q.Method)
	}
	return &q, nil
}

// linear is one projection: a float weight or a quantized one.
type linear struct {
	w *gpu.Tensor
	q *gpu.QuantWeight
}

func (m *Model) matmul(c, a *gpu.Tensor, w linear, bias *gpu.Tensor) error {
	if w.q != nil {
		return m.qops.QMatMul(c, a, w.q, bias)
	}
	return m.ops.MatMul(c, a, w.w, bias)
}

// hostQuant is a quantized weight on the host in gpu.QuantWeight's layout.
type hostQuant struct {
	format        gpu.QuantFormat
	n, k          int
	data          []byte // F8E4M3 bytes, or int4 words little-endian
	scales, zeros []float32
	groups        []int32 // [segs, k]
	segs, ngroups int
}

// linear loads projection base ("model.layers.0.mlp.down_proj") of [n, k]:
// quantized when the checkpoint holds it so (or Options.Quantization asks),
// else a float weight.
func (l *loader) linear(base string, n, k int) (linear, error) {
	return l.mergedLinear([]string{base}, n, k)
}

// mergedLinear loads projections of one shape stacked along the output
// dimension, as merged does for float weights.
func (l *loader) mergedLinear(bases []string, n, k int) (linear, error) {
	var parts []*hostQuant
	for _, b := range bases {
		hq, err := l.hostQuant(b, n, k)
		if err != nil {
			return linear{}, err
		}
		if hq == nil {
			break
		}
		parts = append(parts, hq)
	}
	if len(parts) == 0 {
		names := make([]string, len(bases))
		for i, b := range bases {
			names[i] = b + ".weight"
		}
		var t *gpu.Tensor
		var err error
		if len(names) == 1 {
			t, err = l.tensor(names[0], n, k)
		} else {
			t, err = l.merged(names, n, k)
		}
		return linear{w: t}, err
	}
	if len(parts) != len(bases) {
		return linear{}, fmt.Errorf("model: %s: %s is quantized but %s is not: %w", l.ckpt.Dir(), bases[0], bases[len(parts)], ErrShape)
	}
	all := parts[0]
	for _, p := range parts[1:] {
		if p.format != all.format || p.ngroups != all.ngroups {
			return linear{}, fmt.Errorf("model: %s: %s and %s are quantized differently (%v, %d groups / %v, %d groups): %w", l.ckpt.Dir(), bases[0], bases[1], all.format, all.ngroups, p.format, p.ngroups, ErrShape)
		}
		all = &hostQuant{format: all.format, n: all.n + p.n, k: k, data: append(slices.Clip(all.data), p.data...),
			scales: append(slices.Clip(all.scales), p.scales...), zeros: append(slices.Clip(all.zeros), p.zeros...),
			groups: append(slices.Clip(all.groups), p.groups...), segs: all.segs + p.segs, ngroups: all.ngroups}
	}
	q, err := l.uploadQuant(all)
	return linear{q: q}, err
}

func (l *loader) uploadQuant(h *hostQuant) (*gpu.QuantWeight, error) {
	dev := l.m.dev
	w := &gpu.QuantWeight{Format: h.format, N: h.n, K: h.k}
	l.m.quant = append(l.m.quant, w)
	var err error
	up := func(dt gpu.DType, b []byte, shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		if t, err = dev.Alloc(dt, shape...); err == nil {
			err = dev.Upload(t, b)
		}
		return t
	}
	f32 := func(v []float32) []byte {
		b := make([]byte, 4*len(v))
		for i, f := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
		}
		return b
	}
	if h.format == gpu.QuantFP8 {
		w.Data = up(gpu.F8E4M3, h.data, h.n, h.k)
		w.Scales = up(gpu.F32, f32(h.scales), h.n)
	} else {
		w.Data = up(gpu.I32, h.data, h.n, h.k/8)
		w.Scales = up(gpu.F32, f32(h.scales), h.n, h.ngroups)
		w.Zeros = up(gpu.F32, f32(h.zeros), h.n, h.ngroups)
		g := make([]byte, 4*len(h.groups))
		for i, v := range h.groups {
			binary.LittleEndian.PutUint32(g[4*i:], uint32(v))
		}
		w.Groups = up(gpu.I32, g, h.segs, h.k)
	}
	if err != nil {
		return nil, fmt.Errorf("model: uploading a quantized [%d, %d] weight: %w", h.n, h.k, err)
	}
	return w, w.Check()
}

// hostQuant reads projection base as a quantized weight, or returns nil
// when the checkpoint holds it in float and no load-time quantization is
// asked for. The format is read off the tensors themselves (a qweight, an
// F8_E4M3 weight), so the layers a config's ignore or
// modules_to_not_convert list keeps in float load as float.
func (l *loader) hostQuant(base string, n, k int) (*hostQuant, error) {
	qc := l.m.cfg.Quant
	_, _, hasQ := l.ckpt.Tensor(base + ".qweight")
	wi, _, hasW := l.ckpt.Tensor(base + ".weight")
	switch {
	case hasQ:
		if qc == nil || (qc.Method != "awq" && qc.Method != "gptq") {
			return nil, fmt.Errorf("model: %s: tensor %q is int4 but config.json has no awq or gptq quantization_config: %w", l.ckpt.Dir(), base+".qweight", ErrConfig)
		}
		if qc.Method == "awq" {
			return l.awq(base, n, k)
		}
		return l.gptq(base, n, k)
	case hasW && wi.DType == safetensors.F8E4M3:
		if qc == nil || (qc.Method != "fp8" && qc.Method != "compressed-tensors") {
			return nil, fmt.Errorf("model: %s: tensor %q is F8_E4M3 but config.json has no fp8 or compressed-tensors quantization_config: %w", l.ckpt.Dir(), base+".weight", ErrConfig)
		}
		return l.fp8(base, n, k)
	case hasW && l.quantize == "fp8":
		return l.fp8AtLoad(base, n, k)
	}
	return nil, nil
}

// raw finds a tensor of one of dts and one of shapes, marking it used.
func (l *loader) raw(name string, dts []safetensors.DType, shapes ...[]int) (safetensors.TensorInfo, []byte, error) {
	t, f, ok := l.ckpt.Tensor(name)
	if !ok {
		return t, nil, fmt.Errorf("model: %s: tensor %q is missing from the checkpoint: %w", l.ckpt.Dir(), name, ErrMissingTensor)
	}
	if !slices.Contains(dts, t.DType) {
		return t, nil, fmt.Errorf("model: %s: tensor %q has dtype %s, want %v: %w", f.Path(), name, t.DType, dts, ErrShape)
	}
	if !slices.ContainsFunc(shapes, func(s []int) bool { return slices.Equal(s, t.Shape) }) {
		return t, nil, fmt.Errorf("model: %s: tensor %q has shape %v, want %v: %w", f.Path(), name, t.Shape, shapes, ErrShape)
	}
	b, err := f.Data(name)
	if err != nil {
		return t, nil, err
	}
	l.used[name] = true
	return t, b, nil
}

var floatDTypes = []safetensors.DType{safetensors.F32, safetensors.BF16, safetensors.F16}

// floats decodes a float tensor's bytes.
func floats(t safetensors.TensorInfo, b []byte) []float32 {
	n := len(b) / t.DType.Size()
	out := make([]float32, n)
	le := binary.LittleEndian
	for i := range out {
		switch t.DType {
		case safetensors.F32:
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		case safetensors.BF16:
			out[i] = gpu.BFloat16(le.Uint16(b[2*i:])).Float32()
		default:
			out[i] = gpu.Float16(le.Uint16(b[2*i:])).Float32()
		}
	}
	return out
}

// checkScales refuses scales that are not positive finite numbers.
func (l *loader) checkScales(name string, s []float32) error {
	for i, v := range s {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("model: %s: tensor %q: scale %d is %v, want a positive finite number: %w", l.ckpt.Dir(), name, i, v, ErrShape)
		}
	}
	return nil
}

func (l *loader) fp8(base string, n, k int) (*hostQuant, error) {
	_, data, err := l.raw(base+".weight", []safetensors.DType{safetensors.F8E4M3}, []int{n, k})
	if err != nil {
		return nil, err
	}
	sname := base + ".weight_scale"
	st, sb, err := l.raw(sname, floatDTypes, []int{}, []int{1}, []int{n, 1}, []int{n})
	if err != nil {
		return nil, err
	}
	s := floats(st, sb)
	if err := l.checkScales(sname, s); err != nil {
		return nil, err
	}
	if len(s) == 1 {
		s = slices.Repeat(s, n)
	}
	// Activations stay float (weight-only FP8), so a static input_scale
	// is read only to be checked.
	if _, _, ok := l.ckpt.Tensor(base + ".input_scale"); ok {
		it, ib, err := l.raw(base+".input_scale", floatDTypes, []int{}, []int{1})
		if err != nil {
			return nil, err
		}
		if err := l.checkScales(base+".input_scale", floats(it, ib)); err != nil {
			return nil, err
		}
	}
	return &hostQuant{format: gpu.QuantFP8, n: n, k: k, data: slices.Clone(data), scales: s, segs: 1}, nil
}

// fp8AtLoad quantizes a float weight per tensor as vLLM's
// --quantization fp8 does: scale = max|w|/448, w/scale rounded to E4M3.
// Both passes run on every core in chunks (bench-8b's 7 billion linear
// weights take about 8 ns each on one).
func (l *loader) fp8AtLoad(base string, n, k int) (*hostQuant, error) {
	t, b, err := l.raw(base+".weight", floatDTypes, []int{n, k})
	if err != nil {
		return nil, err
	}
	size := t.DType.Size()
	chunks := chunksOf(n * k)
	maxes := make([]float32, len(chunks)-1)
	parallel(chunks, func(c int, lo, hi int) {
		var amax float32
		for _, v := range floats(t, b[lo*size:hi*size]) {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		maxes[c] = amax
	})
	amax := slices.Max(maxes)
	scale := amax / gpu.MaxFloat8E4M3
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) {
			return nil, fmt.Errorf("model: %s: tensor %q holds a NaN or Inf, so it cannot be quantized to fp8: %w", l.ckpt.Dir(), base+".weight", ErrShape)
		}
		scale = 1 // an all-zero weight
	}
	data := make([]byte, n*k)
	parallel(chunks, func(_ int, lo, hi int) {
		for i, v := range floats(t, b[lo*size:hi*size]) {
			data[lo+i] = byte(gpu.ToFloat8E4M3(v / scale))
		}
	})
	return &hostQuant{format: gpu.QuantFP8, n: n, k: k, data: data, scales: slices.Repeat([]float32{scale}, n), segs: 1}, nil
}

// chunksOf splits n elements into at most GOMAXPROCS chunks of at least
// 1<<16 (the start of each, then n).
func chunksOf(n int) []int {
	parts := max(1, min(runtime.GOMAXPROCS(0), n>>16))
	bounds := make([]int, parts+1)
	for i := range bounds {
		bounds[i] = n * i / parts
	}
	return bounds
}

// parallel runs fn over the chunks bounds gives (chunk c is
// [bounds[c], bounds[c+1])), one goroutine each, and returns when all are
// done.
func parallel(bounds []int, fn func(c, lo, hi int)) {
	var wg sync.WaitGroup
	for c := range len(bounds) - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(c, bounds[c], bounds[c+1])
		}()
	}
	wg.Wait()
}

// groupsOf is the group count of a k-wide input and the group size.
func (l *loader) groupsOf(base string, k int) (ngroups, size int, err error) {
	g := l.m.cfg.Quant.GroupSize
	if g == -1 {
		g = k
	}
	if k%g != 0 || k%8 != 0 {
		return 0, 0, fmt.Errorf("model: %s: %s has %d inputs, not a multiple of group_size %d and of 8: %w", l.ckpt.Dir(), base, k, g, ErrShape)
	}
	return k / g, g, nil
}

var i32 = []safetensors.DType{safetensors.I32}

func words(b []byte) []uint32 {
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

// awqReverse[j] is the nibble of an AWQ word holding column 8i+j (AutoAWQ
// packs columns in the order 0 2 4 6 1 3 5 7).
var awqReverse = [8]int{0, 4, 1, 5, 2, 6, 3, 7}

// awq repacks AutoAWQ gemm tensors: qweight [k, n/8] and qzeros [G, n/8]
// packed along the outputs, scales [G, n].
func (l *loader) awq(base string, n, k int) (*hostQuant, error) {
	G, size, err := l.groupsOf(base, k)
	if err != nil {
		return nil, err
	}
	if n%8 != 0 {
		return nil, fmt.Errorf("model: %s: %s has %d outputs, not a multiple of 8: %w", l.ckpt.Dir(), base, n, ErrShape)
	}
	_, qb, err := l.raw(base+".qweight", i32, []int{k, n / 8})
	if err != nil {
		return nil, err
	}
	_, zb, err := l.raw(base+".qzeros", i32, []int{G, n / 8})
	if err != nil {
		return nil, err
	}
	st, sb, err := l.raw(base+".scales", floatDTypes, []int{G, n})
	if err != nil {
		return nil, err
	}
	qw, qz, sc := words(qb), words(zb), floats(st, sb)
	if err := l.checkScales(base+".scales", sc); err != nil {
		return nil, err
	}
	h := newInt4(n, k, G)
	zp := l.m.cfg.Quant.ZeroPoint == nil || *l.m.cfg.Quant.ZeroPoint
	for r := range n {
		shift := 4 * awqReverse[r%8]
		for c := range k {
			h.set(r, c, qw[c*(n/8)+r/8]>>shift&0xf)
		}
		for g := range G {
			h.scales[r*G+g] = sc[g*n+r]
			if zp {
				h.zeros[r*G+g] = float32(qz[g*(n/8)+r/8] >> shift & 0xf)
			} else {
				h.zeros[r*G+g] = 8
			}
		}
	}
	for c := range k {
		h.groups[c] = int32(c / size)
	}
	return h, nil
}

// gptq repacks AutoGPTQ tensors: qweight [k/8, n] packed along the inputs,
// qzeros [G, n/8] along the outputs (holding z − 1 in the v1 format),
// scales [G, n], g_idx [k] (act_order's column groups).
func (l *loader) gptq(base string, n, k int) (*hostQuant, error) {
	G, size, err := l.groupsOf(base, k)
	if err != nil {
		return nil, err
	}
	if n%8 != 0 {
		return nil, fmt.Errorf("model: %s: %s has %d outputs, not a multiple of 8: %w", l.ckpt.Dir(), base, n, ErrShape)
	}
	_, qb, err := l.raw(base+".qweight", i32, []int{k / 8, n})
	if err != nil {
		return nil, err
	}
	_, zb, err := l.raw(base+".qzeros", i32, []int{G, n / 8})
	if err != nil {
		return nil, err
	}
	st, sb, err := l.raw(base+".scales", floatDTypes, []int{G, n})
	if err != nil {
		return nil, err
	}
	qw, qz, sc := words(qb), words(zb), floats(st, sb)
	if err := l.checkScales(base+".scales", sc); err != nil {
		return nil, err
	}
	h := newInt4(n, k, G)
	if _, _, ok := l.ckpt.Tensor(base + ".g_idx"); ok {
		_, gb, err := l.raw(base+".g_idx", i32, []int{k})
		if err != nil {
			return nil, err
		}
		for c, g := range words(gb) {
			if int32(g) < 0 || int(g) >= G {
				return nil, fmt.Errorf("model: %s: tensor %q: entry %d is group %d, want 0 to %d: %w", l.ckpt.Dir(), base+".g_idx", c, int32(g), G-1, ErrShape)
			}
			h.groups[c] = int32(g)
		}
	} else {
		for c := range k {
			h.groups[c] = int32(c / size)
		}
	}
	var one float32 = 1 // v1 stores z − 1; the kernels add it back
	if l.m.cfg.Quant.CheckpointFormat == "gptq_v2" {
		one = 0
	}
	for r := range n {
		for c := range k {
			h.set(r, c, qw[(c/8)*n+r]>>(4*(c%8))&0xf)
		}
		for g := range G {
			h.scales[r*G+g] = sc[g*n+r]
			h.zeros[r*G+g] = float32(qz[g*(n/8)+r/8]>>(4*(r%8))&0xf) + one
		}
	}
	return h, nil
}

func newInt4(n, k, G int) *hostQuant {
	return &hostQuant{format: gpu.QuantInt4, n: n, k: k, data: make([]byte, n*k/2),
		scales: make([]float32, n*G), zeros: make([]float32, n*G), groups: make([]int32, k), segs: 1, ngroups: G}
}

// set stores nibble q at row r, column c: word r·k/8 + c/8, bits 4·(c%8).
func (h *hostQuant) set(r, c int, q uint32) {
	i := (r*h.k + c) / 2 // little-endian words: the low nibble of byte i is the even column
	if c%2 == 0 {
		h.data[i] |= byte(q)
	} else {
		h.data[i] |= byte(q) << 4
	}
}
