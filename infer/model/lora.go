package model

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/safetensors"
	"github.com/sluicehq/sluice/storage"
)

// Multi-LoRA: adapters in PEFT's layout (adapter_config.json and
// adapter_model.safetensors, as `sluice train --lora-rank` and PEFT's
// save_pretrained write them) are loaded beside the base weights and
// applied per sequence, unmerged: for each targeted projection of a
// sequence of adapter i, y = x·Wᵀ + s·(x·A_iᵀ)·B_iᵀ, with s = alpha/r
// (alpha/√r with use_rslora) folded into B at load. A step groups the
// token rows of consecutive sequences of one adapter into a segment (the
// engine lays a batch out by adapter), and each targeted projection runs
// one grouped product over all the segments after its base MatMul, as
// vLLM's Punica wrapper does: on a device with gpu.LoRAOps (cpu), one
// LoRA call, the shrink x·Aᵀ and the expand ·Bᵀ of every segment added
// into the projection's rows, with gate and up as two column slices of
// the merged gate_up output (vLLM's output slices); elsewhere each
// segment's two small products are Ops.MatMul on row views and Ops.Add
// into the projection's rows, with gate and up stacked into one pair (A
// [2r, H], B block-diagonal [2I, 2r]) so that the sum covers whole rows.
//
// Decode steps with adapters replay CUDA graphs like the base's (graph.go)
// on a device with gpu.LoRATableOps too: every layer's projections have a
// gpu.LoRATable of adapter slots, made at the first such step and filled
// as adapters load and unload (each adapter holds a slot while loaded),
// and the step uploads its segments as (lo, hi, slot) rows into a step
// buffer of loraGraphSegs rows, which the kernels read when the graph
// runs: nothing of the batch's adapters is in the graph, padding rows are
// in no segment, and a step whose segments do not fit runs eagerly.

// ErrAdapter: a LoRA adapter is malformed, does not fit the base model, or
// exceeds a limit; the message names the file and the key or tensor.
var ErrAdapter = errors.New("model: invalid LoRA adapter")

// LoRATargets are the projections an adapter may target (PEFT's
// target_modules names); "all-linear" means all of them.
var LoRATargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// LoRAOptions bound the adapters LoadLoRA accepts.
type LoRAOptions struct {
	// MaxRank is vLLM's max_lora_rank: an adapter of a larger r is
	// refused. 0 means 16, vLLM's default.
	MaxRank int
	// Context bounds the reads of an s3:// adapter; nil means Background.
	Context context.Context
}

// loraSlice is one adapter matrix pair of a projection: a [r, in] and b
// [n, r], b scaled, added into the projection's output columns [col,
// col+n).
type loraSlice struct {
	a, b *gpu.Tensor
	col  int
}

// loraLayer is one decoder layer's adapted projections, nil where not
// targeted. Each is one slice over the whole output, but gate_up on a
// gpu.LoRAOps device: a slice for gate (col 0) and one for up (col I),
// either alone when the other is not targeted.
type loraLayer struct{ q, k, v, o, gateUp, down []loraSlice }

// proj names a projection of a layer for a LoRA lookup.
type proj uint8

const (
	projQ proj = iota
	projK
	projV
	projO
	projGateUp
	projDown
	numProj
)

func (l *loraLayer) pair(p proj) []loraSlice {
	switch p {
	case projQ:
		return l.q
	case projK:
		return l.k
	case projV:
		return l.v
	case projO:
		return l.o
	case projGateUp:
		return l.gateUp
	}
	return l.down
}

type loraAdapter struct {
	name, dir string
	rank      int // rows of the widest A (2r for gate_up)
	slot      int // its slot in the LoRA tables
	layers    []loraLayer
	tensors   []*gpu.Tensor
}

func (a *loraAdapter) free() {
	for _, t := range a.tensors {
		t.Free()
	}
	a.tensors = nil
}

// loraState is a Model's adapters and the scratch of their products.
type loraState struct {
	adapters []*loraAdapter // id i+1; nil once unloaded
	// Scratch of the MatMul and Add path (no gpu.LoRAOps): xa
	// [tokCap·maxRank] holds x·Aᵀ, xab [tokCap·maxOut] the product with
	// Bᵀ, both flat so that views of any row count and width fit.
	xa, xab        *gpu.Tensor
	xaCap, xabCap  int
	segs           []loraSeg // this step's, from plan
	maxRank, width int       // of loaded adapters; the widest output
	// gsegs is the LoRAOps path's segments of one projection, reused from
	// call to call.
	gsegs []gpu.LoRASegment

	// The graph path (gpu.LoRATableOps): a table per layer and projection,
	// nil until the first padded decode step with adapters; their slots
	// and rank; the loaded adapters with pairs at each site (a site none
	// targets launches nothing). While indexed (a padded decode step runs),
	// matmulLoRA reads the step's segments from dsegs.
	tops             gpu.LoRATableOps
	tabs             [][numProj]gpu.LoRATable
	tabSlots, tabRnk int
	sites            [][numProj]int
	indexed          bool
	dsegs            *gpu.Tensor
}

// loraGraphSegs is the most segments of a decode step replayed from a
// graph (rows of the step's segment buffer): the engine lays a batch out
// by adapter, so a step has one segment per adapter in it (max_loras).
const loraGraphSegs = 64

// loraSeg is the token rows [lo, hi) of one step that use adapter id.
type loraSeg struct{ lo, hi, id int }

func (ls *loraState) free() {
	ls.freeTables()
	for _, a := range ls.adapters {
		if a != nil {
			a.free()
		}
	}
	ls.adapters = nil
	ls.xa.Free()
	ls.xab.Free()
	ls.xa, ls.xab, ls.xaCap, ls.xabCap = nil, nil, 0, 0
}

// peftConfig is what LoadLoRA reads of adapter_config.json.
type peftConfig struct {
	PEFTType      string          `json:"peft_type"`
	R             int             `json:"r"`
	Alpha         *float64        `json:"lora_alpha"`
	Targets       json.RawMessage `json:"target_modules"`
	FanInFanOut   bool            `json:"fan_in_fan_out"`
	Bias          string          `json:"bias"`
	UseRSLoRA     bool            `json:"use_rslora"`
	UseDoRA       bool            `json:"use_dora"`
	RankPattern   map[string]any  `json:"rank_pattern"`
	AlphaPattern  map[string]any  `json:"alpha_pattern"`
	ModulesToSave []string        `json:"modules_to_save"`
	Layers        json.RawMessage `json:"layers_to_transform"`
}

// LoadLoRA loads the PEFT LoRA adapter in dir (local or s3://) under name
// and returns its id, which SeqInput.LoRA takes (ids start at 1; 0 is the
// base model). The adapter's tensors must have this model's shapes: an
// adapter trained on another base is refused, naming the tensor. Like
// Forward, LoadLoRA follows the device's threading rule.
func (m *Model) LoadLoRA(name, dir string, opts LoRAOptions) (int, error) {
	if m.closed {
		return 0, fmt.Errorf("model: LoadLoRA: %w", ErrClosed)
	}
	maxRank := opts.MaxRank
	if maxRank == 0 {
		maxRank = 16
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	for _, a := range m.lora.adapters {
		if a != nil && a.name == name {
			return 0, fmt.Errorf("model: LoRA adapter %q is already loaded (from %s): %w", name, a.dir, ErrAdapter)
		}
	}
	cpath := storage.Join(dir, "adapter_config.json")
	js, err := storage.ReadPath(ctx, cpath)
	if err != nil {
		return 0, fmt.Errorf("model: LoRA adapter %q: %w", name, err)
	}
	var pc peftConfig
	if err := json.Unmarshal(js, &pc); err != nil {
		return 0, fmt.Errorf("model: %s: %v: %w", cpath, err, ErrAdapter)
	}
	targets, err := pc.check(cpath, maxRank)
	if err != nil {
		return 0, err
	}
	scale := float32(*pc.Alpha / float64(pc.R))
	if pc.UseRSLoRA {
		scale = float32(*pc.Alpha / math.Sqrt(float64(pc.R)))
	}
	tpath := storage.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.Open(ctx, tpath)
	if err != nil {
		return 0, fmt.Errorf("model: LoRA adapter %q: %w", name, err)
	}
	defer f.Close()
	ad := &loraAdapter{name: name, dir: dir, layers: make([]loraLayer, m.cfg.Layers)}
	ld := &loraLoader{m: m, f: f, path: tpath, r: pc.R, scale: scale, used: map[string]bool{}, ad: ad}
	if err := ld.load(targets); err != nil {
		ad.free()
		return 0, err
	}
	ls := &m.lora
	ad.slot = ls.freeSlot()
	if err := ls.addSites(m, ad); err != nil {
		_ = ls.dropSites(ad) // the device failed already; this undoes the counts
		ad.free()
		return 0, fmt.Errorf("model: LoRA adapter %q: %w", name, err)
	}
	ls.adapters = append(ls.adapters, ad)
	ls.maxRank = max(ls.maxRank, ad.rank)
	c := m.cfg
	ls.width = max(ls.width, c.Heads*c.HeadDim, c.Hidden, 2*c.Intermediate)
	return len(ls.adapters), nil
}

// UnloadLoRA frees adapter id; its id is not reused.
func (m *Model) UnloadLoRA(id int) error {
	if id < 1 || id > len(m.lora.adapters) || m.lora.adapters[id-1] == nil {
		return fmt.Errorf("model: UnloadLoRA: no adapter %d is loaded: %w", id, ErrAdapter)
	}
	// Empty its slots before its tensors go: the tables keep addresses.
	if err := m.lora.dropSites(m.lora.adapters[id-1]); err != nil {
		return fmt.Errorf("model: UnloadLoRA: %w", err)
	}
	m.lora.adapters[id-1].free()
	m.lora.adapters[id-1] = nil
	return nil
}

// LoRAName is the name adapter id was loaded under, and whether it is
// loaded.
func (m *Model) LoRAName(id int) (string, bool) {
	if id < 1 || id > len(m.lora.adapters) || m.lora.adapters[id-1] == nil {
		return "", false
	}
	return m.lora.adapters[id-1].name, true
}

// check validates a PEFT config and returns its target modules.
func (pc *peftConfig) check(path string, maxRank int) (map[string]bool, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("model: %s: %s: %w", path, fmt.Sprintf(format, args...), ErrAdapter)
	}
	switch {
	case pc.PEFTType != "LORA":
		return nil, bad("peft_type is %q, want \"LORA\"", pc.PEFTType)
	case pc.R < 1:
		return nil, bad("r is %d, want a positive rank", pc.R)
	case pc.R > maxRank:
		return nil, bad("r (%d) is larger than max_lora_rank (%d): raise --max-lora-rank", pc.R, maxRank)
	case pc.Alpha == nil:
		return nil, bad("lora_alpha is missing")
	case pc.FanInFanOut:
		return nil, bad("fan_in_fan_out is true (a Conv1D base such as GPT-2), which Llama-style models do not have")
	case pc.Bias != "" && pc.Bias != "none":
		return nil, bad("bias is %q: adapters with trained biases are not supported, want \"none\"", pc.Bias)
	case pc.UseDoRA:
		return nil, bad("use_dora is true: DoRA adapters are not supported")
	case len(pc.RankPattern) > 0:
		return nil, bad("rank_pattern is set: per-module ranks are not supported")
	case len(pc.AlphaPattern) > 0:
		return nil, bad("alpha_pattern is set: per-module alphas are not supported")
	case len(pc.ModulesToSave) > 0:
		return nil, bad("modules_to_save %v: adapters that replace whole modules are not supported", pc.ModulesToSave)
	case len(pc.Layers) > 0 && string(pc.Layers) != "null":
		return nil, bad("layers_to_transform is set: adapters of some layers only are not supported")
	}
	var list []string
	var one string
	if err := json.Unmarshal(pc.Targets, &list); err != nil {
		if err := json.Unmarshal(pc.Targets, &one); err != nil || one != "all-linear" {
			return nil, bad("target_modules must be a list of module names or \"all-linear\", got %s", pc.Targets)
		}
		list = LoRATargets
	}
	if len(list) == 0 {
		return nil, bad("target_modules is empty")
	}
	out := map[string]bool{}
	for _, t := range list {
		if !slices.Contains(LoRATargets, t) {
			return nil, bad("target_modules names %q, which is not a projection of this model (want some of %s)", t, strings.Join(LoRATargets, ", "))
		}
		out[t] = true
	}
	return out, nil
}

// loraLoader uploads one adapter's tensors.
type loraLoader struct {
	m     *Model
	f     *safetensors.File
	path  string
	r     int
	scale float32
	used  map[string]bool
	ad    *loraAdapter
}

func (l *loraLoader) load(targets map[string]bool) error {
	c := l.m.cfg
	h, qd, kvd, im := c.Hidden, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim, c.Intermediate
	for i := range l.ad.layers {
		ly := &l.ad.layers[i]
		p := fmt.Sprintf("base_model.model.model.layers.%d.", i)
		var err error
		one := func(dst *[]loraSlice, mod string, out, in int) {
			if err != nil || !targets[mod] {
				return
			}
			sec := "self_attn."
			if mod == "down_proj" {
				sec = "mlp."
			}
			*dst, err = l.pair([]string{p + sec + mod}, out, in)
		}
		one(&ly.q, "q_proj", qd, h)
		one(&ly.k, "k_proj", kvd, h)
		one(&ly.v, "v_proj", kvd, h)
		one(&ly.o, "o_proj", h, qd)
		one(&ly.down, "down_proj", h, im)
		if err == nil && (targets["gate_proj"] || targets["up_proj"]) {
			var stems []string
			for _, mod := range []string{"gate_proj", "up_proj"} {
				s := ""
				if targets[mod] {
					s = p + "mlp." + mod
				}
				stems = append(stems, s)
			}
			ly.gateUp, err = l.pair(stems, im, h)
		}
		if err != nil {
			return err
		}
	}
	for _, t := range l.f.Header().Tensors {
		if name := t.Name; !l.used[name] {
			return fmt.Errorf("model: %s: tensor %q is not a LoRA weight of a target module of this %d-layer %s (another base model's adapter?): %w",
				l.path, name, c.Layers, c.Arch, ErrAdapter)
		}
	}
	return nil
}

// read returns tensor name as float32 after checking its shape.
func (l *loraLoader) read(name string, shape ...int) ([]float32, error) {
	t, ok := l.f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("model: %s: tensor %q is missing: %w", l.path, name, ErrAdapter)
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("model: %s: tensor %q has shape %v, this base model wants %v (an adapter of another base model?): %w",
			l.path, name, t.Shape, shape, ErrAdapter)
	}
	src, err := l.f.Data(name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.Len())
	le := binary.LittleEndian
	for i := range out {
		switch t.DType {
		case safetensors.F32:
			out[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		case safetensors.BF16:
			out[i] = gpu.BFloat16(le.Uint16(src[2*i:])).Float32()
		case safetensors.F16:
			out[i] = gpu.Float16(le.Uint16(src[2*i:])).Float32()
		default:
			return nil, fmt.Errorf("model: %s: tensor %q has dtype %s, want F32, BF16 or F16: %w", l.path, name, t.DType, ErrAdapter)
		}
	}
	l.used[name] = true
	return out, nil
}

// pair loads the A and B of stems (one projection, or gate and up of the
// merged gate_up where "" marks one not targeted), B scaled: on a
// gpu.LoRAOps device one slice per targeted stem, stem s over columns
// [s·out, (s+1)·out); elsewhere one slice of them stacked, A [n·r, in]
// and B [n·out, n·r] block-diagonal.
func (l *loraLoader) pair(stems []string, out, in int) ([]loraSlice, error) {
	if _, ok := l.m.ops.(gpu.LoRAOps); !ok {
		sl, err := l.stack(stems, out, in)
		if err != nil {
			return nil, err
		}
		return []loraSlice{sl}, nil
	}
	var sls []loraSlice
	for s, stem := range stems {
		if stem == "" {
			continue
		}
		sl, err := l.stack([]string{stem}, out, in)
		if err != nil {
			return nil, err
		}
		sl.col = s * out
		sls = append(sls, sl)
	}
	return sls, nil
}

// stack loads stems as one slice: A [n·r, in] and B [n·out, n·r]
// block-diagonal and scaled, zero where a stem is "".
func (l *loraLoader) stack(stems []string, out, in int) (loraSlice, error) {
	r, n := l.r, len(stems)
	a := make([]float32, n*r*in)
	b := make([]float32, n*out*n*r)
	for s, stem := range stems {
		if stem == "" {
			continue
		}
		as, err := l.read(stem+".lora_A.weight", r, in)
		if err != nil {
			return loraSlice{}, err
		}
		bs, err := l.read(stem+".lora_B.weight", out, r)
		if err != nil {
			return loraSlice{}, err
		}
		copy(a[s*r*in:], as)
		for i := range out {
			row := b[(s*out+i)*n*r+s*r:]
			for k := range r {
				row[k] = l.scale * bs[i*r+k]
			}
		}
	}
	at, err := l.upload(a, n*r, in)
	if err != nil {
		return loraSlice{}, err
	}
	bt, err := l.upload(b, n*out, n*r)
	if err != nil {
		return loraSlice{}, err
	}
	l.ad.rank = max(l.ad.rank, n*r)
	return loraSlice{a: at, b: bt}, nil
}

func (l *loraLoader) upload(w []float32, shape ...int) (*gpu.Tensor, error) {
	m := l.m
	t, err := m.dev.Alloc(m.dtype, shape...)
	if err != nil {
		return nil, fmt.Errorf("model: %s: allocating %v adapter weights: %w", l.path, shape, err)
	}
	l.ad.tensors = append(l.ad.tensors, t)
	raw := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if m.dtype != gpu.F32 {
		raw = (&loader{m: m}).convert(raw, safetensors.F32, m.dtype)
	}
	if err := m.dev.Upload(t, raw); err != nil {
		return nil, fmt.Errorf("model: %s: uploading adapter weights: %w", l.path, err)
	}
	return t, nil
}

// planLoRA checks the sequences' adapter ids and groups their token rows
// into segments.
func (ls *loraState) plan(b *Batch) error {
	ls.segs = ls.segs[:0]
	row := 0
	for s := range b.Seqs {
		q := &b.Seqs[s]
		n := len(q.Tokens)
		if id := q.LoRA; id != 0 {
			if id < 0 || id > len(ls.adapters) || ls.adapters[id-1] == nil {
				return batchError("sequence %d: LoRA is %d, which names no loaded adapter", s, id)
			}
			if k := len(ls.segs); k > 0 && ls.segs[k-1].id == id && ls.segs[k-1].hi == row {
				ls.segs[k-1].hi += n
			} else {
				ls.segs = append(ls.segs, loraSeg{lo: row, hi: row + n, id: id})
			}
		}
		row += n
	}
	return nil
}

// reserve grows the scratch of the MatMul and Add path to hold a step of
// tokens rows.
func (ls *loraState) reserve(m *Model, tokens int) error {
	if _, ok := m.ops.(gpu.LoRAOps); ok || len(ls.segs) == 0 {
		return nil
	}
	need := func(t **gpu.Tensor, capN *int, n int) error {
		if n <= *capN {
			return nil
		}
		(*t).Free()
		n = max(n, 2**capN)
		var err error
		if *t, err = m.dev.Alloc(m.dtype, n); err != nil {
			*t, *capN = nil, 0
			return fmt.Errorf("model: Forward: allocating LoRA scratch of %d elements: %w", n, err)
		}
		*capN = n
		return nil
	}
	if err := need(&ls.xa, &ls.xaCap, tokens*ls.maxRank); err != nil {
		return err
	}
	return need(&ls.xab, &ls.xabCap, tokens*ls.width)
}

// matmulLoRA is matmul followed, for the rows of each adapter segment of
// the step, by c += (a·Aᵀ)·Bᵀ of that adapter's slices for projection p
// of layer i.
func (m *Model) matmulLoRA(c, a *gpu.Tensor, w linear, bias *gpu.Tensor, i int, p proj) error {
	if err := m.matmul(c, a, w, bias); err != nil {
		return err
	}
	ls := &m.lora
	if ls.indexed {
		if ls.sites[i][p] == 0 {
			return nil
		}
		if err := ls.tops.LoRAIndexed(c, a, ls.tabs[i][p], ls.dsegs); err != nil {
			return fmt.Errorf("LoRA: %w", err)
		}
		return nil
	}
	if len(ls.segs) == 0 {
		return nil
	}
	if lo, ok := m.ops.(gpu.LoRAOps); ok {
		ls.gsegs = ls.gsegs[:0]
		for _, sg := range ls.segs {
			for _, sl := range ls.adapters[sg.id-1].layers[i].pair(p) {
				ls.gsegs = append(ls.gsegs, gpu.LoRASegment{Lo: sg.lo, Hi: sg.hi, A: sl.a, B: sl.b, Col: sl.col})
			}
		}
		if len(ls.gsegs) == 0 {
			return nil
		}
		if err := lo.LoRA(c, a, ls.gsegs); err != nil {
			return fmt.Errorf("LoRA: %w", err)
		}
		return nil
	}
	for _, sg := range ls.segs {
		for _, sl := range ls.adapters[sg.id-1].layers[i].pair(p) {
			if err := m.loraSegment(c, a, sl, sg.lo, sg.hi); err != nil {
				return fmt.Errorf("LoRA adapter %q: %w", ls.adapters[sg.id-1].name, err)
			}
		}
	}
	return nil
}

// loraSegment adds rows [lo, hi) of a times slice sl into c with MatMul
// and Add: sl spans c's whole rows (col 0, as pair loads it on a device
// without gpu.LoRAOps).
func (m *Model) loraSegment(c, a *gpu.Tensor, sl loraSlice, lo, hi int) error {
	ls, rows := &m.lora, hi-lo
	r, n := sl.a.Dim(0), sl.b.Dim(0)
	view := func(t *gpu.Tensor, w int) (*gpu.Tensor, error) {
		s, err := t.Slice(0, rows*w)
		if err != nil {
			return nil, err
		}
		return s.View(rows, w)
	}
	xs, err := a.Slice(lo, hi)
	if err != nil {
		return err
	}
	cs, err := c.Slice(lo, hi)
	if err != nil {
		return err
	}
	xa, err := view(ls.xa, r)
	if err != nil {
		return err
	}
	xab, err := view(ls.xab, n)
	if err != nil {
		return err
	}
	if err := m.ops.MatMul(xa, xs, sl.a, nil); err != nil {
		return err
	}
	if err := m.ops.MatMul(xab, xa, sl.b, nil); err != nil {
		return err
	}
	return m.ops.Add(cs, cs, xab)
}

// freeSlot is the lowest slot no loaded adapter holds.
func (ls *loraState) freeSlot() int {
	for slot := 0; ; slot++ {
		used := false
		for _, a := range ls.adapters {
			used = used || a != nil && a.slot == slot
		}
		if !used {
			return slot
		}
	}
}

// indexable reports whether a step with segments can run on the graph
// path: the device has gpu.LoRATableOps (and gpu.LoRAOps, whose layout of
// gate and up the tables hold) and the segments fit the step's buffer.
//
// On cuda the path is opt-in (SLUICE_CUDA_LORA_GRAPHS=1): on an H100
// (2026-12-07) its tests pass (TestLoRAIndexedGraph, TestLoRAGraphs:
// replays equal padded eager steps, new adapters after a replay), but
// offline-512 on bench-1b with 16 adapters ran at 0.48x the base with it,
// as without it, so the graphs are not what costs the time.
func (ls *loraState) indexable(m *Model) bool {
	if _, ok := m.ops.(gpu.LoRAOps); !ok {
		return false
	}
	if m.dev.Name() == "cuda" && os.Getenv("SLUICE_CUDA_LORA_GRAPHS") != "1" {
		return false
	}
	_, ok := m.ops.(gpu.LoRATableOps)
	return ok && len(ls.segs) <= loraGraphSegs
}

// siteShape is the LoRA table shape of projection p with slots slots of
// rank ranks: A [r, in] and one pair (gate and up: two) of B [n, r].
func (m *Model) siteShape(p proj, slots, rank int) gpu.LoRATableShape {
	c := m.cfg
	h, qd, kvd, im := c.Hidden, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim, c.Intermediate
	s := gpu.LoRATableShape{Slots: slots, Pairs: 1, Rank: rank, In: h}
	switch p {
	case projQ:
		s.N = qd
	case projK, projV:
		s.N = kvd
	case projO:
		s.In, s.N = qd, h
	case projGateUp:
		s.Pairs, s.N = 2, im
	case projDown:
		s.In, s.N = im, h
	}
	return s
}

// makeTables makes the LoRA tables, if they are not made, and fills the
// loaded adapters' slots: slots and rank are at least 16 (vLLM's default
// max_lora_rank), else the next power of two that holds every loaded
// adapter.
func (ls *loraState) makeTables(m *Model) error {
	if ls.tabs != nil {
		return nil
	}
	slots, rank := 16, 16
	for _, a := range ls.adapters {
		if a != nil {
			for slots <= a.slot {
				slots *= 2
			}
			for rank < a.rank {
				rank *= 2
			}
		}
	}
	ls.tops = m.ops.(gpu.LoRATableOps)
	ls.tabs = make([][numProj]gpu.LoRATable, m.cfg.Layers)
	ls.tabSlots, ls.tabRnk = slots, rank
	for i := range ls.tabs {
		for p := range proj(numProj) {
			t, err := ls.tops.NewLoRATable(m.siteShape(p, slots, rank))
			if err != nil {
				ls.freeTables()
				return fmt.Errorf("model: Forward: LoRA tables of %d slots: %w", slots, err)
			}
			ls.tabs[i][p] = t
		}
	}
	for _, a := range ls.adapters {
		if a != nil {
			if err := ls.setSlot(a, false); err != nil {
				ls.freeTables()
				return fmt.Errorf("model: Forward: %w", err)
			}
		}
	}
	return nil
}

func (ls *loraState) freeTables() {
	for i := range ls.tabs {
		for _, t := range ls.tabs[i] {
			if t != nil {
				t.Free()
			}
		}
	}
	ls.tabs, ls.tabSlots, ls.tabRnk = nil, 0, 0
}

// setSlot puts adapter a's pairs into its slot of every table, or empties
// the slot with clear.
func (ls *loraState) setSlot(a *loraAdapter, clear bool) error {
	var pairs [2]gpu.LoRAPair
	for i := range ls.tabs {
		for p := range proj(numProj) {
			sls := a.layers[i].pair(p)
			if len(sls) == 0 {
				continue
			}
			n := 0
			if !clear {
				for _, sl := range sls {
					pairs[n] = gpu.LoRAPair{A: sl.a, B: sl.b, Col: sl.col}
					n++
				}
			}
			if err := ls.tabs[i][p].Set(a.slot, pairs[:n]); err != nil {
				return fmt.Errorf("LoRA adapter %q: layer %d: %w", a.name, i, err)
			}
		}
	}
	return nil
}

// addSites counts adapter a at the sites it targets and, once the tables
// are made, puts it into its slot. The recorded graphs go when a site
// starts to be targeted (the graphs launch no products there) or the
// tables must grow (which drops them: the next step makes them again).
func (ls *loraState) addSites(m *Model, a *loraAdapter) error {
	if ls.sites == nil {
		ls.sites = make([][numProj]int, m.cfg.Layers)
	}
	stale := false
	for i := range ls.sites {
		for p := range proj(numProj) {
			if len(a.layers[i].pair(p)) > 0 {
				ls.sites[i][p]++
				stale = stale || ls.sites[i][p] == 1
			}
		}
	}
	if ls.tabs == nil {
		return nil
	}
	if a.slot >= ls.tabSlots || a.rank > ls.tabRnk {
		if err := m.step.freeGraphs(); err != nil {
			return err
		}
		ls.freeTables()
		return nil
	}
	if stale {
		if err := m.step.freeGraphs(); err != nil {
			return err
		}
	}
	return ls.setSlot(a, false)
}

// dropSites is addSites undone, for an adapter being unloaded: its slot
// emptied, its sites uncounted. The graphs stay: a site that no adapter
// targets any more adds nothing.
func (ls *loraState) dropSites(a *loraAdapter) error {
	if ls.tabs != nil && a.slot < ls.tabSlots {
		if err := ls.setSlot(a, true); err != nil {
			return err
		}
	}
	for i := range ls.sites {
		for p := range proj(numProj) {
			if len(a.layers[i].pair(p)) > 0 {
				ls.sites[i][p]--
			}
		}
	}
	a.slot = -1
	return nil
}

// graphSegs writes the step's segments into dst as (lo, hi, slot) rows,
// ended by a row of slot −1 when they are fewer than its rows.
func (ls *loraState) graphSegs(dst []int32) {
	k := 0
	for _, sg := range ls.segs {
		dst[k], dst[k+1], dst[k+2] = int32(sg.lo), int32(sg.hi), int32(ls.adapters[sg.id-1].slot)
		k += 3
	}
	for ; k < len(dst); k += 3 {
		dst[k], dst[k+1], dst[k+2] = 0, 0, -1
	}
}
