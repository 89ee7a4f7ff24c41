package engine

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/gpu"
)

// deviceRunner is a Runner that names its device, so that New can size
// the KV cache from the device's memory and report it.
type deviceRunner interface{ device() gpu.Device }

// memReport is what New learned about the device's memory, for its log
// line.
type memReport struct {
	sizing      string // how NumBlocks was chosen; "" means it was given
	weights     int64  // LiveBytes when New began; -1: no device
	activations int64  // the profiled step's peak above what was live; -1: not profiled
	free, total int64  // the device's memory after profiling
	useful      int64  // the cap on blocks when sized from memory
}

func (m *memReport) attrs(dev gpu.Device, cache KVCache, cfg Config) []any {
	name := "unknown (the Runner names no device)"
	if dev != nil {
		name = dev.Name()
		if s, ok := dev.(fmt.Stringer); ok {
			name += " " + s.String()
		}
	}
	var weights, act any = m.weights, m.activations
	if m.weights < 0 {
		weights = "unknown"
	}
	if m.activations < 0 {
		act = "not profiled"
	}
	sizing := m.sizing
	if sizing == "" {
		sizing = "num_blocks"
	}
	per := cache.BytesPerBlock()
	a := []any{"device", name, "weights_bytes", weights, "activation_bytes", act,
		"kv_block_bytes", per, "kv_blocks", cfg.NumBlocks, "kv_bytes", per * int64(cfg.NumBlocks),
		"max_concurrent_tokens", cfg.NumBlocks * cfg.BlockSize, "kv_sizing", sizing}
	if m.useful > 0 {
		a = append(a, "kv_blocks_cap", m.useful) // max_num_seqs × max_model_len
	}
	if m.total > 0 {
		a = append(a, "device_free_bytes", m.free, "device_total_bytes", m.total)
	}
	return append(a, "block_size", cfg.BlockSize, "max_model_len", cfg.MaxModelLen,
		"max_num_seqs", cfg.MaxNumSeqs, "max_num_batched_tokens", cfg.MaxNumBatchedTokens)
}

// profileBlocks sizes the KV cache as vLLM does with
// gpu_memory_utilization: it runs the largest step the scheduler can form
// (profileBatch) on a cache of a few blocks, measures the step's
// activations with the device's peak counter, reads the device's free
// memory and gives the KV cache what GPUMemoryUtilization leaves
// (kvCacheBlocks). With a draft model (Config.Speculative.Draft), the
// draft runs the same step after the target, and the larger of the two
// steps' peaks counts.
func profileBlocks(r Runner, dev gpu.Device, mi gpu.MemInfo, cfg Config, per, useful int64, mem *memReport) (int, error) {
	const blocks = 4
	c, err := r.NewCache(blocks, cfg.BlockSize)
	if err != nil {
		return 0, fmt.Errorf("infer: profiling: allocating %d KV blocks: %w", blocks, err)
	}
	b := profileBatch(cfg, blocks)
	mi.ResetPeak()
	base := mi.PeakBytes()
	_, err = r.Forward(c, b)
	if err == nil {
		err = dev.Sync()
	}
	peak := mi.PeakBytes()
	if d := cfg.Speculative.Draft; d != nil && err == nil {
		mi.ResetPeak()
		err = profileDraft(d, dev, cfg, b, blocks)
		peak = max(peak, mi.PeakBytes())
	}
	mi.ResetPeak()
	kept := mi.PeakBytes() // what the runner keeps for the next steps: (total − free) counts it
	if err = errors.Join(err, c.Free()); err != nil {
		ntok := 0
		for _, s := range b.Seqs {
			ntok += len(s.Tokens)
		}
		return 0, fmt.Errorf("infer: profiling a step of %d tokens in %d sequences: %w", ntok, len(b.Seqs), err)
	}
	free, total, err := mi.MemInfo()
	if err != nil {
		return 0, fmt.Errorf("infer: sizing the KV cache: %w", err)
	}
	mem.sizing = fmt.Sprintf("gpu_memory_utilization %g", cfg.GPUMemoryUtilization)
	mem.activations, mem.free, mem.total = peak-base, free, total
	return kvCacheBlocks(free, total, cfg.GPUMemoryUtilization, peak-kept, per, useful)
}

// profileDraft runs the profiling step b on the draft model, on a cache
// of its own.
func profileDraft(d Runner, dev gpu.Device, cfg Config, b *Batch, blocks int) error {
	c, err := d.NewCache(blocks, cfg.BlockSize)
	if err != nil {
		return fmt.Errorf("infer: profiling the draft model: allocating %d KV blocks: %w", blocks, err)
	}
	_, err = d.Forward(c, b)
	if err == nil {
		err = dev.Sync()
	}
	if err = errors.Join(err, c.Free()); err != nil {
		return fmt.Errorf("infer: profiling the draft model: %w", err)
	}
	return nil
}

// profileBatch is the largest step the scheduler can form: MaxNumSeqs
// sequences holding MaxNumBatchedTokens new tokens, every one wanting
// logits as a decoding one does. The model's step buffers are sized by new
// tokens, sequences, rows of logits and block-table length together (and
// all grow when one does), so the step maxes all four: the first sequence
// decodes one token at the end of a MaxModelLen context (the longest block
// table), the prompt tokens fill the next ones from position 0 in as few
// sequences as MaxModelLen allows, and the rest decode one token each.
// With speculative decoding, a decode computes its drafts too, with
// logits after each: the tokens first give each sequence that many (1 +
// NumSpeculativeTokens rows), so the rows of logits are the most a step
// can ask for. Every block table cycles over the cache's few blocks, so sequences write
// blocks others read, which the Runner contract otherwise rules out: what
// the step computes is garbage, its shapes are the largest.
func profileBatch(cfg Config, blocks int) *Batch {
	bs, maxLen := cfg.BlockSize, cfg.MaxModelLen
	seqs := min(cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens)
	table := make([]int32, (maxLen+bs-1)/bs)
	for j := range table {
		table[j] = int32(j % blocks)
	}
	toks := make([]int32, min(cfg.MaxNumBatchedTokens, maxLen)) // token 0
	// per is what a decoding sequence computes: its last token, and with
	// speculation its drafts, each with a row of logits.
	per := 1
	if cfg.Speculative.Method != "" {
		per += cfg.Speculative.NumSpeculativeTokens
	}
	lens := make([]int, seqs)
	for i := range lens {
		lens[i] = 1
	}
	left := cfg.MaxNumBatchedTokens - seqs
	if seqs == 1 {
		lens[0], left = len(toks), 0
	}
	for i := 0; i < seqs && left > 0 && per > 1; i++ { // speculative decodes first: the most rows
		add := min(per-1, left, maxLen-1)
		lens[i] += add
		left -= add
	}
	for i := 1; i < seqs && left > 0; i++ { // then prompts from position 0
		add := min(left, maxLen-lens[i])
		lens[i] += add
		left -= add
	}
	b := &Batch{Seqs: make([]SeqInput, 0, seqs)}
	for i, n := range lens {
		in := SeqInput{Tokens: toks[:n], BlockTable: table[:(n+bs-1)/bs], WantLogits: true, NumLogits: min(n, per)}
		if i == 0 {
			in.StartPos, in.BlockTable = maxLen-n, table
		}
		b.Seqs = append(b.Seqs, in)
	}
	return b
}

// kvCacheBlocks is the gpu_memory_utilization arithmetic: of the device's
// total bytes, the engine may use the share util; what is in use already
// (total − free: the weights, the activations the runner keeps between
// steps, the driver's context, libraries' workspaces, other processes) and
// the activations of the largest step that are freed after it (transient)
// come off; the rest is KV cache, in whole blocks of perBlock bytes, capped
// at useful blocks.
func kvCacheBlocks(free, total int64, util float64, transient, perBlock, useful int64) (int, error) {
	used := total - free
	kv := int64(float64(total)*util) - used - transient
	n := kv / max(perBlock, 1)
	if n < 1 {
		return 0, fmt.Errorf("%w: GPUMemoryUtilization (%g) leaves %d bytes for the KV cache, less than one block (%d bytes): "+
			"%g × %d total − %d in use − %d of activations; raise gpu_memory_utilization or set num_blocks",
			ErrInvalidConfig, util, kv, perBlock, util, total, used, transient)
	}
	return int(min(n, useful)), nil
}
