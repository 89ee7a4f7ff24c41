package infer

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/tokenizer"
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
	case c.MaxModelLen < 0:
		return bad("MaxModelLen must be non-negative, got %d", c.MaxModelLen)
	case !c.EnableChunkedPrefill && c.MaxModelLen > 0 && c.MaxNumBatchedTokens < c.MaxModelLen:
		return bad("MaxNumBatchedTokens (%d) cannot be smaller than MaxModelLen (%d) when EnableChunkedPrefill is false",
			c.MaxNumBatchedTokens, c.MaxModelLen)
	case c.MaxLogprobs < 0:
		return bad("MaxLogprobs must be non-negative, got %d", c.MaxLogprobs)
	}
	return nil
}

// Engine generates completions with continuous batching over a paged KV
// cache. One goroutine, started by New and ended by Close, owns the
// scheduler, the cache and the Runner, and loops on step: schedule, run
// the model and sample, postprocess. Generate and Submit may be called from
// any number of goroutines; their requests join the running batch at the
// next step, and leave it as they finish.
type Engine struct {
	runner Runner
	tok    *tokenizer.Tokenizer // nil: prompts and outputs are ids only
	cfg    Config               // resolved: NumBlocks and MaxModelLen set
	spec   ModelSpec
	eos    []int32

	// Owned by the loop goroutine.
	cache   KVCache
	sched   *scheduler
	bm      *blockManager
	sampler *sampler
	pack    gpu.SamplePack // runSampled's rows
	batch   Batch
	toks    []int32
	lps     []*TokenLogprobs

	mu       sync.Mutex
	wake     *sync.Cond
	incoming []*request
	aborts   []*request
	closing  bool
	exited   chan struct{}

	nextSeq, nextSeed atomic.Uint64
	stats             engineStats
	gauges            loadGauges // Gauges' counts (gauges.go)
}

// New starts an engine on a model. tok may be nil when prompts are token
// ids and outputs need no text. The engine allocates its KV cache from the
// Runner and frees it on Close; the Runner stays the caller's.
func New(r Runner, tok *tokenizer.Tokenizer, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spec := r.Spec()
	if spec.Vocab < 1 || spec.MaxPositions < 1 {
		return nil, fmt.Errorf("%w: model spec has Vocab %d, MaxPositions %d", ErrInvalidConfig, spec.Vocab, spec.MaxPositions)
	}
	if cfg.MaxModelLen == 0 {
		cfg.MaxModelLen = spec.MaxPositions
	} else if cfg.MaxModelLen > spec.MaxPositions {
		return nil, fmt.Errorf("%w: MaxModelLen (%d) cannot be larger than the model's max positions (%d)", ErrInvalidConfig, cfg.MaxModelLen, spec.MaxPositions)
	}
	var dev gpu.Device // nil: the runner does not say
	if dr, ok := r.(deviceRunner); ok {
		dev = dr.device()
	}
	mem := memReport{weights: -1, activations: -1}
	if dev != nil {
		mem.weights = dev.LiveBytes()
	}
	if cfg.NumBlocks == 0 {
		probe, err := r.NewCache(1, cfg.BlockSize)
		if err != nil {
			return nil, fmt.Errorf("infer: sizing the KV cache: %w", err)
		}
		per := probe.BytesPerBlock()
		if err := probe.Free(); err != nil {
			return nil, fmt.Errorf("infer: sizing the KV cache: %w", err)
		}
		useful := int64(cfg.MaxNumSeqs) * int64((cfg.MaxModelLen+cfg.BlockSize-1)/cfg.BlockSize)
		mem.useful = useful
		if mi, ok := dev.(gpu.MemInfo); ok {
			if cfg.NumBlocks, err = profileBlocks(r, dev, mi, cfg, per, useful, &mem); err != nil {
				return nil, err
			}
		} else {
			cfg.NumBlocks = int(min(cfg.CacheBytes/max(per, 1), useful))
			if cfg.NumBlocks < 1 {
				return nil, fmt.Errorf("%w: CacheBytes (%d) cannot be smaller than one block (%d bytes)", ErrInvalidConfig, cfg.CacheBytes, per)
			}
			mem.sizing = "cache_bytes"
		}
	}
	cfg.MaxModelLen = min(cfg.MaxModelLen, cfg.NumBlocks*cfg.BlockSize)
	if !cfg.EnableChunkedPrefill && cfg.MaxNumBatchedTokens < cfg.MaxModelLen {
		return nil, fmt.Errorf("%w: MaxNumBatchedTokens (%d) cannot be smaller than the max model length (%d) when EnableChunkedPrefill is false",
			ErrInvalidConfig, cfg.MaxNumBatchedTokens, cfg.MaxModelLen)
	}
	cache, err := r.NewCache(cfg.NumBlocks, cfg.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("infer: allocating %d KV blocks: %w", cfg.NumBlocks, err)
	}
	e := &Engine{runner: r, tok: tok, cfg: cfg, spec: spec, cache: cache, exited: make(chan struct{})}
	e.eos = validIDs(spec.EOS, spec.Vocab)
	if tok != nil {
		if id, ok := tok.EOS(); ok && int(id) < spec.Vocab && !slices.Contains(e.eos, id) {
			e.eos = append(e.eos, id)
		}
	}
	e.bm = newBlockManager(cfg.NumBlocks, cfg.BlockSize, cfg.EnablePrefixCaching)
	e.sched = newScheduler(schedulerConfig{
		maxNumSeqs:          cfg.MaxNumSeqs,
		maxNumBatchedTokens: cfg.MaxNumBatchedTokens,
		maxModelLen:         cfg.MaxModelLen,
		chunkedPrefill:      cfg.EnableChunkedPrefill,
	}, e.bm)
	e.sampler = newSampler(spec.Vocab, e.eos)
	e.wake = sync.NewCond(&e.mu)
	e.nextSeed.Store(cfg.Seed * 0x9E3779B97F4A7C15)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Info("infer: engine started", mem.attrs(dev, cache, cfg)...)
	go e.loop()
	return e, nil
}

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
// (kvCacheBlocks).
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

// profileBatch is the largest step the scheduler can form: MaxNumSeqs
// sequences holding MaxNumBatchedTokens new tokens, every one wanting
// logits as a decoding one does. The model's step buffers are sized by new
// tokens, sequences, rows of logits and block-table length together (and
// all grow when one does), so the step maxes all four: the first sequence
// decodes one token at the end of a MaxModelLen context (the longest block
// table), the prompt tokens fill the next ones from position 0 in as few
// sequences as MaxModelLen allows, and the rest decode one token each.
// Every block table cycles over the cache's few blocks, so sequences write
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
	b := &Batch{Seqs: make([]SeqInput, 0, seqs)}
	n := 1
	if seqs == 1 {
		n = len(toks)
	}
	b.Seqs = append(b.Seqs, SeqInput{Tokens: toks[:n], StartPos: maxLen - n, BlockTable: table, WantLogits: true})
	extra := cfg.MaxNumBatchedTokens - n - (seqs - 1) // tokens beyond one per other sequence
	for range seqs - 1 {
		n := 1 + min(extra, maxLen-1)
		extra -= n - 1
		b.Seqs = append(b.Seqs, SeqInput{Tokens: toks[:n], BlockTable: table[:(n+bs-1)/bs], WantLogits: true})
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

func validIDs(ids []int32, vocab int) []int32 {
	var out []int32
	for _, id := range ids {
		if id >= 0 && int(id) < vocab && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Config returns the engine's configuration, with NumBlocks and
// MaxModelLen resolved.
func (e *Engine) Config() Config { return e.cfg }

// Close fails the requests still in flight with ErrClosed, ends the loop
// goroutine and frees the KV cache. It does not close the Runner.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		<-e.exited
		return nil
	}
	e.closing = true
	e.wake.Broadcast()
	e.mu.Unlock()
	<-e.exited
	leak := e.bm.CheckLeaks()
	return errors.Join(leak, e.cache.Free())
}

// isClosing reports whether Close has begun.
func (e *Engine) isClosing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}

// enqueue hands requests to the loop.
func (e *Engine) enqueue(rs ...*request) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return ErrClosed
	}
	e.incoming = append(e.incoming, rs...)
	e.wake.Broadcast()
	return nil
}

// abort asks the loop to drop requests.
func (e *Engine) abort(rs ...*request) {
	e.mu.Lock()
	e.aborts = append(e.aborts, rs...)
	e.wake.Broadcast()
	e.mu.Unlock()
}

func (e *Engine) loop() {
	defer close(e.exited)
	for {
		e.mu.Lock()
		for len(e.incoming) == 0 && len(e.aborts) == 0 && !e.closing && !e.sched.HasWork() {
			e.wake.Wait()
		}
		in, ab, closing := e.incoming, e.aborts, e.closing
		e.incoming, e.aborts = nil, nil
		e.mu.Unlock()

		for _, r := range in {
			e.add(r)
		}
		for _, r := range ab {
			e.finishRequest(r, FinishAbort, r.abortErr)
		}
		if closing {
			e.failAll(ErrClosed)
			return
		}
		e.abortCancelled()
		if e.sched.HasWork() {
			e.step()
		}
		e.publishLoad()
	}
}

// abortCancelled ends the requests whose context has ended. The callers'
// watchers also ask for this, but asynchronously: checking here makes a
// cancellation take effect at the next step whatever the goroutines'
// timing.
func (e *Engine) abortCancelled() {
	var done []*request
	seen := map[*request]bool{}
	for _, list := range [][]*Sequence{e.sched.running, e.sched.waiting} {
		for _, seq := range list {
			if r := seq.x.req; !seen[r] {
				seen[r] = true
				if r.ctx != nil && r.ctx.Err() != nil {
					done = append(done, r)
				}
			}
		}
	}
	for _, r := range done {
		// r.abortErr belongs to the caller's watcher; a later abort of the
		// same request finds its sequences finished and does nothing.
		e.finishRequest(r, FinishAbort, r.ctx.Err())
	}
}

// step is one iteration: schedule, run the model and sample, postprocess.
func (e *Engine) step() {
	p := e.sched.Schedule()
	if err := e.run(p); err != nil {
		e.fail(p, err)
		return
	}
	e.postprocess(p)
}

// run computes the planned tokens and samples the sequences that reached
// their last token, into e.toks and e.lps.
func (e *Engine) run(p *plan) error {
	if len(p.seqs) == 0 {
		return errors.New("infer: empty plan")
	}
	seqs := e.batch.Seqs[:0]
	nWant := 0
	for _, sc := range p.seqs {
		s := sc.seq
		seqs = append(seqs, SeqInput{
			Tokens:     s.tokens[sc.start : sc.start+sc.n],
			StartPos:   sc.start,
			BlockTable: s.blocks,
			WantLogits: sc.sample,
		})
		if sc.sample {
			nWant++
		}
	}
	e.batch.Seqs = seqs
	host := e.constrained(p) // constraints mask on the host (constraint.go)
	if gr, ok := e.runner.(GreedyRunner); ok && !host && e.allGreedy(p) {
		return e.runGreedy(gr, p, nWant)
	}
	if sr, ok := e.runner.(SamplingRunner); ok && !host && e.noLogprobs(p) {
		return e.runSampled(sr, p, nWant)
	}
	logits, err := e.runner.Forward(e.cache, &e.batch)
	if err != nil {
		return fmt.Errorf("infer: forward: %w", err)
	}
	v := e.spec.Vocab
	if len(logits) != nWant*v {
		return fmt.Errorf("infer: forward returned %d logits, want %d sequences × %d", len(logits), nWant, v)
	}
	e.toks, e.lps = e.toks[:0], e.lps[:0]
	row := 0
	for _, sc := range p.seqs {
		if !sc.sample {
			continue
		}
		x := sc.seq.x
		tok, lp := e.sampler.sample(logits[row*v:(row+1)*v], sc.seq, x.samp)
		e.toks = append(e.toks, tok)
		e.lps = append(e.lps, lp)
		row++
	}
	e.stats.steps.Add(1)
	e.stats.batchedTokens.Add(int64(p.numTokens))
	return nil
}

// allGreedy reports whether every sequence of p that samples would take
// its largest raw logit: greedy, no penalties, no logprobs and no EOS or
// stop-token masking for min_tokens. Such a step can sample on the device.
func (e *Engine) allGreedy(p *plan) bool {
	for _, sc := range p.seqs {
		if !sc.sample {
			continue
		}
		s := sc.seq
		sp := s.x.samp.p
		if !sp.greedy() || sp.Logprobs > 0 || sp.RepetitionPenalty != 1 ||
			sp.FrequencyPenalty != 0 || sp.PresencePenalty != 0 ||
			s.numOutput() < s.stop.minTokens {
			return false
		}
	}
	return true
}

// runGreedy is run's device-sampled path (see allGreedy): the runner
// returns the token ids, the logits stay on the device.
func (e *Engine) runGreedy(gr GreedyRunner, p *plan, nWant int) error {
	ids, err := gr.ForwardArgmax(e.cache, &e.batch)
	if err != nil {
		return fmt.Errorf("infer: forward: %w", err)
	}
	return e.took(p, ids, nWant)
}

// took records the tokens a device-sampled step drew, one per wanted row.
func (e *Engine) took(p *plan, ids []int32, nWant int) error {
	if len(ids) != nWant {
		return fmt.Errorf("infer: forward returned %d tokens, want %d", len(ids), nWant)
	}
	e.toks, e.lps = e.toks[:0], e.lps[:0]
	for _, tok := range ids {
		e.toks = append(e.toks, tok)
		e.lps = append(e.lps, nil)
	}
	e.stats.steps.Add(1)
	e.stats.batchedTokens.Add(int64(p.numTokens))
	return nil
}

// noLogprobs reports whether no sequence of p that samples wants
// logprobs: the logits can then stay on the device (runSampled). Logprobs
// are computed on the host from downloaded logits.
func (e *Engine) noLogprobs(p *plan) bool {
	for _, sc := range p.seqs {
		if sc.sample && sc.seq.x.samp.p.Logprobs > 0 {
			return false
		}
	}
	return true
}

// runSampled is run's device-sampled path for any parameters (see
// noLogprobs): each sampling sequence's parameters, uniform and logit edits
// go to the runner, which returns the drawn tokens; the logits stay on the
// device.
func (e *Engine) runSampled(sr SamplingRunner, p *plan, nWant int) error {
	e.pack.Reset()
	for _, sc := range p.seqs {
		if sc.sample {
			e.sampler.addRow(&e.pack, sc.seq, sc.seq.x.samp)
		}
	}
	ids, err := sr.ForwardSample(e.cache, &e.batch, &e.pack)
	if err != nil {
		return fmt.Errorf("infer: forward: %w", err)
	}
	return e.took(p, ids, nWant)
}

// postprocess advances the scheduler and turns new tokens into output.
func (e *Engine) postprocess(p *plan) {
	e.sched.Update(p, e.toks)
	k := 0
	for _, sc := range p.seqs {
		if !sc.sample {
			continue
		}
		e.output(sc.seq, e.lps[k])
		k++
	}
	e.stats.preemptions.Add(int64(len(p.preempted)))
	e.stats.generated.Add(int64(k))
	e.stats.prefixQueried.Store(e.bm.queried)
	e.stats.prefixHit.Store(e.bm.hit)
}

func rate(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// output decodes seq's new token, applies stop strings and delivers.
func (e *Engine) output(seq *Sequence, lp *TokenLogprobs) {
	x := seq.x
	r := x.req
	if lp != nil {
		if e.tok != nil {
			lp.Sampled.Token = e.tok.Decode([]int32{lp.Sampled.ID}, false)
			for i := range lp.Top {
				lp.Top[i].Token = e.tok.Decode([]int32{lp.Top[i].ID}, false)
			}
		}
		x.text.logprobs = append(x.text.logprobs, *lp)
	}
	stopToken := seq.status == seqFinished && seq.finish == FinishStop
	if s := x.text.add(seq, &r.params, stopToken); s != "" {
		seq.stopStr = s
		if seq.status == seqFinished {
			seq.finish = FinishStop // a stop string wins over length
		} else {
			e.sched.Finish(seq, FinishStop)
		}
	} else if seq.status == seqFinished {
		x.text.flush()
	}
	if seq.status == seqFinished {
		e.complete(seq, nil)
		return
	}
	if r.sink.streaming() {
		text, toks, lps := x.text.delta(seq, false)
		r.sink.emit(Output{RequestID: r.id, Index: x.index, Text: text, TokenIDs: toks, Logprobs: lps})
	}
}

// complete delivers a finished sequence and, with its request's last,
// ends the request.
func (e *Engine) complete(seq *Sequence, err error) {
	x := seq.x
	r := x.req
	c := Completion{
		RequestID:        r.id,
		Request:          r.index,
		Index:            x.index,
		Text:             string(x.text.text),
		TokenIDs:         append([]int32(nil), seq.output()...),
		FinishReason:     seq.finish,
		StopString:       seq.stopStr,
		PromptTokens:     seq.numPrompt,
		CompletionTokens: seq.numOutput(),
		CachedTokens:     seq.cachedHit,
		Logprobs:         x.text.logprobs,
		Err:              err,
	}
	if r.sink.streaming() {
		text, toks, lps := x.text.delta(seq, true)
		r.sink.emit(Output{RequestID: r.id, Index: x.index, Text: text, TokenIDs: toks, Logprobs: lps,
			Finished: true, FinishReason: c.FinishReason, PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens, Err: err})
	}
	r.open--
	r.sink.complete(c, r.open == 0)
	if r.open == 0 {
		e.stats.requests.Add(1)
	}
}

// finishRequest ends every unfinished sequence of r.
func (e *Engine) finishRequest(r *request, reason string, err error) {
	for _, seq := range r.seqs {
		if seq.status == seqFinished {
			continue
		}
		e.sched.Finish(seq, reason)
		seq.x.text.flush()
		e.complete(seq, err)
	}
}

// failAll ends every request in flight with err.
func (e *Engine) failAll(err error) {
	e.failSeqs(err, e.sched.running, e.sched.waiting)
}

// fail ends the requests of a step whose forward pass failed: their
// blocks' contents are unknown. A plan that is empty while work is pending
// is a scheduler bug; failing everything then keeps the loop from
// spinning.
func (e *Engine) fail(p *plan, err error) {
	if len(p.seqs) == 0 {
		e.failAll(errors.New("infer: the scheduler planned nothing with work pending (a bug)"))
		return
	}
	seqs := make([]*Sequence, len(p.seqs))
	for i, sc := range p.seqs {
		seqs[i] = sc.seq
	}
	e.failSeqs(err, seqs)
}

func (e *Engine) failSeqs(err error, lists ...[]*Sequence) {
	seen := map[*request]bool{}
	var rs []*request
	for _, q := range lists {
		for _, seq := range q {
			if r := seq.x.req; !seen[r] {
				seen[r] = true
				rs = append(rs, r)
			}
		}
	}
	for _, r := range rs {
		e.finishRequest(r, FinishAbort, err)
	}
}

// engineStats are counters the loop updates and Stats reads.
type engineStats struct {
	steps, batchedTokens, generated, prompt, preemptions, requests atomic.Int64
	prefixQueried, prefixHit                                       atomic.Int64
}

// Stats are an engine's counters since New.
type Stats struct {
	Steps           int64   // forward passes
	BatchedTokens   int64   // tokens computed, prompts and recomputation included
	PromptTokens    int64   // prompt tokens of admitted requests
	GeneratedTokens int64   // tokens sampled
	Preemptions     int64   // sequences preempted for lack of cache blocks
	Requests        int64   // requests finished
	PrefixCacheHit  float64 // share of prompt tokens found in the prefix cache
	NumBlocks       int     // KV cache blocks
	BlockSize       int     // tokens per block
	MaxModelLen     int     // resolved max model length
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Steps:           e.stats.steps.Load(),
		BatchedTokens:   e.stats.batchedTokens.Load(),
		PromptTokens:    e.stats.prompt.Load(),
		GeneratedTokens: e.stats.generated.Load(),
		Preemptions:     e.stats.preemptions.Load(),
		Requests:        e.stats.requests.Load(),
		PrefixCacheHit:  rate(e.stats.prefixHit.Load(), e.stats.prefixQueried.Load()),
		NumBlocks:       e.cfg.NumBlocks,
		BlockSize:       e.cfg.BlockSize,
		MaxModelLen:     e.cfg.MaxModelLen,
	}
}
