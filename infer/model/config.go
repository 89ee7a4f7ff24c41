package model

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/storage"
)

// Errors, matched with errors.Is; messages name the file, the key or the
// tensor, and both values where two disagree.
var (
	// ErrUnknownArch: config.json's architectures names no supported model.
	ErrUnknownArch = errors.New("model: unsupported architecture")
	// ErrConfig: config.json or generation_config.json is malformed or
	// describes something this package cannot run.
	ErrConfig = errors.New("model: invalid config")
	// ErrMissingTensor: the checkpoint lacks a weight the config implies.
	ErrMissingTensor = errors.New("model: missing tensor")
	// ErrShape: a weight's shape or dtype disagrees with the config.
	ErrShape = errors.New("model: tensor shape mismatch")
	// ErrUnexpectedTensor: the checkpoint holds a weight the config does not
	// account for (a bias the config says is absent, say), which would be
	// silently ignored otherwise.
	ErrUnexpectedTensor = errors.New("model: unexpected tensor")
	// ErrBatch: a Batch given to Forward is inconsistent with the model or
	// the cache.
	ErrBatch = errors.New("model: invalid batch")
	// ErrClosed: the model was closed or the cache freed.
	ErrClosed = errors.New("model: closed")
)

// Architectures lists the values of config.json's "architectures" that Load
// supports.
var Architectures = []string{"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}

// Config is what Load read from config.json and generation_config.json.
type Config struct {
	// Arch is config.json's architectures[0], one of Architectures.
	Arch string
	// Vocab is the number of logits per position; Hidden the model width;
	// Heads and KVHeads the query and key/value heads (KVHeads < Heads is
	// grouped-query attention); HeadDim the width of one head;
	// Intermediate the MLP width.
	Vocab, Hidden, Layers, Heads, KVHeads, HeadDim, Intermediate int
	// MaxPositions is max_position_embeddings: Forward refuses positions
	// from there on.
	MaxPositions int
	// EOS are the end-of-sequence ids: generation_config.json's
	// eos_token_id (an id or a list) when it has one, else config.json's.
	EOS []int32
	// BOS is the beginning-of-sequence id, or -1 when there is none.
	BOS int32

	// RMSNormEps is rms_norm_eps.
	RMSNormEps float32
	// Rope is rope_theta and rope_scaling (or transformers 5's
	// rope_parameters).
	Rope gpu.Rope
	// TieEmbeddings: the LM head is the embedding table.
	TieEmbeddings bool
	// QKVBias: q, k and v projections have biases (Qwen2; attention_bias);
	// OBias: so does the output projection (attention_bias); MLPBias: the
	// MLP projections have biases (mlp_bias).
	QKVBias, OBias, MLPBias bool
	// QKNorm: per-head RMSNorm of queries and keys before RoPE (Qwen3).
	QKNorm bool
	// SlidingWindow is the attention window when the model uses one, else
	// 0. Forward attends to whole contexts, so it refuses contexts longer
	// than the window rather than compute something else.
	SlidingWindow int
	// TorchDType is config.json's torch_dtype (dtype in transformers 5):
	// the dtype the weights were trained or saved in.
	TorchDType string
	// Quant is config.json's quantization_config, nil for a float
	// checkpoint.
	Quant *QuantConfig
}

// hfConfig is the subset of config.json read; pointers tell absent keys.
type hfConfig struct {
	Architectures         []string        `json:"architectures"`
	VocabSize             int             `json:"vocab_size"`
	HiddenSize            int             `json:"hidden_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	IntermediateSize      int             `json:"intermediate_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	HiddenAct             *string         `json:"hidden_act"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RopeParameters        json.RawMessage `json:"rope_parameters"`
	PartialRotaryFactor   *float64        `json:"partial_rotary_factor"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	SlidingWindow         json.RawMessage `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	LayerTypes            []string        `json:"layer_types"`
	BOS                   json.RawMessage `json:"bos_token_id"`
	EOS                   json.RawMessage `json:"eos_token_id"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"`
}

// ropeJSON is rope_scaling or rope_parameters.
type ropeJSON struct {
	RopeType       string   `json:"rope_type"`
	Type           string   `json:"type"` // the name before transformers 4.45
	RopeTheta      *float64 `json:"rope_theta"`
	Factor         float64  `json:"factor"`
	LowFreqFactor  float64  `json:"low_freq_factor"`
	HighFreqFactor float64  `json:"high_freq_factor"`
	OrigMax        int      `json:"original_max_position_embeddings"`
}

// archDefaults are transformers' defaults for keys a config.json may omit.
type archDefaults struct {
	maxPositions int
	window       int  // sliding_window when the key is absent
	windowOn     bool // whether the window applies without use_sliding_window
	qkvBias      bool
	qkNorm       bool
}

var arches = map[string]archDefaults{
	"LlamaForCausalLM":   {maxPositions: 2048},
	"MistralForCausalLM": {maxPositions: 4096 * 32, window: 4096, windowOn: true},
	"Qwen2ForCausalLM":   {maxPositions: 32768, window: 4096, qkvBias: true},
	"Qwen3ForCausalLM":   {maxPositions: 32768, window: 4096, qkNorm: true},
}

// readConfig reads dir/config.json and dir/generation_config.json.
func readConfig(ctx context.Context, dir string) (Config, error) {
	path := storage.Join(dir, "config.json")
	js, err := storage.ReadPath(ctx, path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := parseConfig(path, js)
	if err != nil {
		return Config{}, err
	}
	if cfg.Quant, err = parseQuant(path, js); err != nil {
		return Config{}, err
	}
	genPath := storage.Join(dir, "generation_config.json")
	gen, err := storage.ReadPath(ctx, genPath)
	switch {
	case errors.Is(err, storage.ErrNotExist):
		return cfg, nil
	case err != nil:
		return Config{}, err
	}
	return cfg, parseGeneration(genPath, gen, &cfg)
}

func configError(path, format string, args ...any) error {
	return fmt.Errorf("model: %s: %s: %w", path, fmt.Sprintf(format, args...), ErrConfig)
}

// parseConfig turns config.json into a Config, with transformers' defaults
// for the keys it omits.
func parseConfig(path string, js []byte) (Config, error) {
	var hf hfConfig
	if err := json.Unmarshal(js, &hf); err != nil {
		return Config{}, configError(path, "not a valid config: %v", err)
	}
	if len(hf.Architectures) == 0 {
		return Config{}, fmt.Errorf("model: %s: no \"architectures\" (want one of %s): %w",
			path, strings.Join(Architectures, ", "), ErrUnknownArch)
	}
	def, ok := arches[hf.Architectures[0]]
	if !ok || len(hf.Architectures) > 1 {
		return Config{}, fmt.Errorf("model: %s: architectures %q is not supported (want one of %s): %w",
			path, hf.Architectures, strings.Join(Architectures, ", "), ErrUnknownArch)
	}
	c := Config{
		Arch:          hf.Architectures[0],
		Vocab:         hf.VocabSize,
		Hidden:        hf.HiddenSize,
		Layers:        hf.NumHiddenLayers,
		Heads:         hf.NumAttentionHeads,
		KVHeads:       hf.NumAttentionHeads,
		Intermediate:  hf.IntermediateSize,
		MaxPositions:  def.maxPositions,
		RMSNormEps:    1e-6,
		BOS:           -1,
		QKVBias:       def.qkvBias,
		QKNorm:        def.qkNorm,
		TieEmbeddings: false, // every supported class defaults to untied
		TorchDType:    hf.TorchDType,
	}
	if c.TorchDType == "" {
		c.TorchDType = hf.DType
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"vocab_size", c.Vocab}, {"hidden_size", c.Hidden}, {"num_hidden_layers", c.Layers},
		{"num_attention_heads", c.Heads}, {"intermediate_size", c.Intermediate},
	} {
		if f.v <= 0 {
			return Config{}, configError(path, "%s (%d) must be positive", f.key, f.v)
		}
	}
	if hf.NumKeyValueHeads != nil {
		c.KVHeads = *hf.NumKeyValueHeads
	}
	if c.KVHeads <= 0 || c.Heads%c.KVHeads != 0 {
		return Config{}, configError(path, "num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)", c.Heads, c.KVHeads)
	}
	if hf.HeadDim != nil {
		c.HeadDim = *hf.HeadDim
	} else {
		if c.Hidden%c.Heads != 0 {
			return Config{}, configError(path, "hidden_size (%d) is not a multiple of num_attention_heads (%d) and head_dim is not given", c.Hidden, c.Heads)
		}
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return Config{}, configError(path, "head_dim (%d) must be positive and even", c.HeadDim)
	}
	if hf.MaxPositionEmbeddings != nil {
		c.MaxPositions = *hf.MaxPositionEmbeddings
	}
	if c.MaxPositions <= 0 {
		return Config{}, configError(path, "max_position_embeddings (%d) must be positive", c.MaxPositions)
	}
	if hf.RMSNormEps != nil {
		c.RMSNormEps = float32(*hf.RMSNormEps)
	}
	if !(c.RMSNormEps > 0) {
		return Config{}, configError(path, "rms_norm_eps (%v) must be positive", c.RMSNormEps)
	}
	if hf.HiddenAct != nil && *hf.HiddenAct != "silu" {
		return Config{}, configError(path, "hidden_act %q is not supported (want silu)", *hf.HiddenAct)
	}
	if f := hf.PartialRotaryFactor; f != nil && *f != 1 {
		return Config{}, configError(path, "partial_rotary_factor %v is not supported (want 1)", *f)
	}
	if hf.TieWordEmbeddings != nil {
		c.TieEmbeddings = *hf.TieWordEmbeddings
	}
	if hf.AttentionBias != nil && *hf.AttentionBias {
		c.QKVBias, c.OBias = true, true
	}
	if hf.MLPBias != nil {
		c.MLPBias = *hf.MLPBias
	}
	rope, err := parseRope(path, hf)
	if err != nil {
		return Config{}, err
	}
	c.Rope = rope
	if c.SlidingWindow, err = slidingWindow(path, hf, def); err != nil {
		return Config{}, err
	}
	if err := parseIDs(path, "bos_token_id", hf.BOS, &c, false); err != nil {
		return Config{}, err
	}
	if err := parseIDs(path, "eos_token_id", hf.EOS, &c, true); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseRope reads transformers 5's rope_parameters, or else rope_theta and
// rope_scaling.
func parseRope(path string, hf hfConfig) (gpu.Rope, error) {
	r := gpu.Rope{Theta: 10000}
	if hf.RopeTheta != nil {
		r.Theta = *hf.RopeTheta
	}
	key, raw := "rope_scaling", hf.RopeScaling
	if !isNull(hf.RopeParameters) {
		key, raw = "rope_parameters", hf.RopeParameters
	}
	if !isNull(raw) {
		var rj ropeJSON
		if err := json.Unmarshal(raw, &rj); err != nil {
			return r, configError(path, "%s: %v", key, err)
		}
		if rj.RopeTheta != nil {
			r.Theta = *rj.RopeTheta
		}
		typ := rj.RopeType
		if typ == "" {
			typ = rj.Type
		}
		switch typ {
		case "", "default":
		case "llama3":
			r.Llama3 = &gpu.Llama3Scaling{Factor: rj.Factor, LowFreqFactor: rj.LowFreqFactor,
				HighFreqFactor: rj.HighFreqFactor, OriginalMaxPositions: rj.OrigMax}
		default:
			return r, configError(path, "%s type %q is not supported (want default or llama3)", key, typ)
		}
	}
	if err := r.Validate(); err != nil {
		return r, configError(path, "rope: %v", err)
	}
	return r, nil
}

func slidingWindow(path string, hf hfConfig, def archDefaults) (int, error) {
	w := def.window
	if hf.SlidingWindow != nil {
		w = 0
		if !isNull(hf.SlidingWindow) {
			if err := json.Unmarshal(hf.SlidingWindow, &w); err != nil {
				return 0, configError(path, "sliding_window: %v", err)
			}
		}
	}
	used := def.windowOn
	if hf.UseSlidingWindow != nil {
		used = *hf.UseSlidingWindow
	}
	for _, t := range hf.LayerTypes {
		if t == "sliding_attention" {
			used = true
		}
	}
	if !used || w <= 0 {
		return 0, nil
	}
	return w, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// parseIDs reads a token id or (for eos) a list of them into c; null or
// absent leaves c as it is.
func parseIDs(path, key string, raw json.RawMessage, c *Config, list bool) error {
	if isNull(raw) {
		return nil
	}
	var ids []int64
	var one int64
	if err := json.Unmarshal(raw, &one); err == nil {
		ids = []int64{one}
	} else if err := json.Unmarshal(raw, &ids); err != nil || !list {
		want := "a token id"
		if list {
			want += " or a list of them"
		}
		return configError(path, "%s %s is not %s", key, raw, want)
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		if id < 0 || id >= int64(c.Vocab) || id > math.MaxInt32 {
			return configError(path, "%s %d is outside the vocabulary [0, %d)", key, id, c.Vocab)
		}
		out[i] = int32(id)
	}
	if list {
		c.EOS = out
	} else {
		c.BOS = out[0]
	}
	return nil
}

// parseGeneration applies generation_config.json's bos and eos ids, which
// are the ones generation uses, over config.json's.
func parseGeneration(path string, js []byte, c *Config) error {
	var g struct {
		BOS json.RawMessage `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(js, &g); err != nil {
		return configError(path, "not a valid generation config: %v", err)
	}
	if err := parseIDs(path, "bos_token_id", g.BOS, c, false); err != nil {
		return err
	}
	return parseIDs(path, "eos_token_id", g.EOS, c, true)
}
