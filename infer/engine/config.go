package engine

import (
	"fmt"
	"log/slog"
)

// Config tunes an Engine. Start from DefaultConfig.
type Config struct {
	// BlockSize is the number of tokens per KV cache block.
	BlockSize int `json:"block_size,omitempty" yaml:"block_size,omitempty"`
	// NumBlocks is the size of the KV cache in blocks. When 0, it is sized
	// from memory, capped at what MaxNumSeqs sequences of the max model
	// length can use: on a device that reports its memory (gpu.MemInfo:
	// cuda), from GPUMemoryUtilization after a profiling step; elsewhere
	// (cpu), CacheBytes divided by the model's bytes per block.
	NumBlocks int `json:"num_blocks,omitempty" yaml:"num_blocks,omitempty"`
	// CacheBytes is the KV cache's memory when NumBlocks is 0 and the
	// device does not report its memory.
	CacheBytes int64 `json:"cache_bytes,omitempty" yaml:"cache_bytes,omitempty"`
	// GPUMemoryUtilization is the share of the device's total memory this
	// engine may use, weights, activations and KV cache together, when
	// NumBlocks is 0 and the device reports its memory (vLLM's
	// gpu_memory_utilization). Memory other processes or engines hold
	// counts against it.
	GPUMemoryUtilization float64 `json:"gpu_memory_utilization,omitempty" yaml:"gpu_memory_utilization,omitempty"`
	// MaxNumSeqs bounds the sequences in the running batch.
	MaxNumSeqs int `json:"max_num_seqs,omitempty" yaml:"max_num_seqs,omitempty"`
	// MaxNumBatchedTokens bounds the tokens computed in one step.
	MaxNumBatchedTokens int `json:"max_num_batched_tokens,omitempty" yaml:"max_num_batched_tokens,omitempty"`
	// MaxModelLen bounds prompt plus output tokens; 0 means the model's
	// MaxPositions. It is capped so that one sequence fits in the cache.
	MaxModelLen int `json:"max_model_len,omitempty" yaml:"max_model_len,omitempty"`
	// EnablePrefixCaching lets prompts that share a prefix share its
	// cache blocks (and skip computing it).
	EnablePrefixCaching bool `json:"enable_prefix_caching,omitempty" yaml:"enable_prefix_caching,omitempty"`
	// EnableChunkedPrefill computes long prompts over several steps, so
	// that running sequences keep decoding meanwhile. Without it, each
	// prompt is computed in one step, and MaxNumBatchedTokens must hold
	// the max model length.
	EnableChunkedPrefill bool `json:"enable_chunked_prefill,omitempty" yaml:"enable_chunked_prefill,omitempty"`
	// Speculative turns on speculative decoding (speculative.go).
	Speculative SpeculativeConfig `json:"speculative_config,omitempty" yaml:"speculative_config,omitempty"`
	// MaxLoRAs bounds the distinct LoRA adapters of one batch (vLLM's
	// max_loras); requests of another adapter wait. 0 means 1.
	MaxLoRAs int `json:"max_loras,omitempty" yaml:"max_loras,omitempty"`
	// MaxLoRARank bounds the rank of the adapters LoadLoRA accepts (vLLM's
	// max_lora_rank). 0 means 16.
	MaxLoRARank int `json:"max_lora_rank,omitempty" yaml:"max_lora_rank,omitempty"`
	// MaxLogprobs bounds SamplingParams.Logprobs.
	MaxLogprobs int `json:"max_logprobs,omitempty" yaml:"max_logprobs,omitempty"`
	// Seed seeds the generators of requests that set no seed.
	Seed uint64 `json:"seed,omitempty" yaml:"seed,omitempty"`
	// Logger receives the engine's start-up facts; nil is slog.Default().
	Logger *slog.Logger `json:"-" yaml:"-"`
}

// DefaultConfig returns vLLM's V1 defaults, scaled for small models:
// 16-token blocks, a KV cache of 90% of a GPU's memory less the weights and
// activations (256 MiB on the cpu), 256 sequences, 2048 tokens per step,
// prefix caching and chunked prefill on.
func DefaultConfig() Config {
	return Config{
		BlockSize:            16,
		CacheBytes:           256 << 20,
		GPUMemoryUtilization: 0.9,
		MaxNumSeqs:           256,
		MaxNumBatchedTokens:  2048,
		EnablePrefixCaching:  true,
		EnableChunkedPrefill: true,
		MaxLogprobs:          20,
	}
}

// Validate checks the fields on their own and against each other.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.BlockSize < 1:
		return bad("BlockSize must be positive, got %d", c.BlockSize)
	case c.NumBlocks < 0:
		return bad("NumBlocks must be non-negative, got %d", c.NumBlocks)
	case c.NumBlocks == 0 && c.CacheBytes <= 0:
		return bad("CacheBytes must be positive when NumBlocks is 0, got %d", c.CacheBytes)
	case !(c.GPUMemoryUtilization > 0 && c.GPUMemoryUtilization <= 1): // NaN too
		return bad("GPUMemoryUtilization must be in (0, 1], got %g", c.GPUMemoryUtilization)
	case c.MaxNumSeqs < 1:
		return bad("MaxNumSeqs must be positive, got %d", c.MaxNumSeqs)
	case c.MaxNumBatchedTokens < 1:
		return bad("MaxNumBatchedTokens must be positive, got %d", c.MaxNumBatchedTokens)
	case c.MaxNumBatchedTokens < c.MaxNumSeqs:
		return bad("MaxNumBatchedTokens (%d) cannot be smaller than MaxNumSeqs (%d)", c.MaxNumBatchedTokens, c.MaxNumSeqs)
	case c.Speculative.Validate() != nil:
		return c.Speculative.Validate()
	case c.MaxModelLen < 0:
		return bad("MaxModelLen must be non-negative, got %d", c.MaxModelLen)
	case !c.EnableChunkedPrefill && c.MaxModelLen > 0 && c.MaxNumBatchedTokens < c.MaxModelLen:
		return bad("MaxNumBatchedTokens (%d) cannot be smaller than MaxModelLen (%d) when EnableChunkedPrefill is false",
			c.MaxNumBatchedTokens, c.MaxModelLen)
	case c.MaxLoRAs < 0:
		return bad("MaxLoRAs must be non-negative, got %d", c.MaxLoRAs)
	case c.MaxLoRARank < 0:
		return bad("MaxLoRARank must be non-negative, got %d", c.MaxLoRARank)
	case c.MaxLogprobs < 0:
		return bad("MaxLogprobs must be non-negative, got %d", c.MaxLogprobs)
	}
	return nil
}
