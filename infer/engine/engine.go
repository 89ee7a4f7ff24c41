package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

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
	more    []spec         // this step's tokens after accepted drafts (speculative.go)
	// The draft model of method "draft_model" (draft.go): nil without.
	draft              Runner
	draftCache         KVCache
	draftBatch         Batch
	drafting, decoding []int // indexes in the plan of the sequences the draft proposes for
	draftIDs           []int32
	batch              Batch
	toks               []int32
	lps                []*TokenLogprobs

	mu       sync.Mutex
	wake     *sync.Cond
	incoming []*request
	aborts   []*request
	calls    []func() // run on the loop between steps (lora.go)
	// LoRA adapters by name, and their names in load order (lora.go).
	loras     map[string]LoRAAdapter
	loraOrder []string
	closing   bool
	exited    chan struct{}

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
	draft := cfg.Speculative.Draft
	if draft != nil {
		ds := draft.Spec()
		if err := checkDraft(spec, ds); err != nil {
			return nil, err
		}
		if ds.MaxPositions < spec.MaxPositions {
			spec.MaxPositions = ds.MaxPositions // the draft reads every position the target does
		}
	}
	if cfg.MaxModelLen == 0 {
		cfg.MaxModelLen = spec.MaxPositions
	} else if cfg.MaxModelLen > spec.MaxPositions {
		which := "the model's"
		if draft != nil {
			which = "the target's and the draft model's"
		}
		return nil, fmt.Errorf("%w: MaxModelLen (%d) cannot be larger than %s max positions (%d)", ErrInvalidConfig, cfg.MaxModelLen, which, spec.MaxPositions)
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
		if draft != nil {
			// A block holds the draft's keys and values too (draft.go).
			dp, err := draft.NewCache(1, cfg.BlockSize)
			if err != nil {
				return nil, fmt.Errorf("infer: sizing the draft model's KV cache: %w", err)
			}
			per += dp.BytesPerBlock()
			if err := dp.Free(); err != nil {
				return nil, fmt.Errorf("infer: sizing the draft model's KV cache: %w", err)
			}
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
	if draft != nil {
		if e.draftCache, err = draft.NewCache(cfg.NumBlocks, cfg.BlockSize); err != nil {
			return nil, errors.Join(fmt.Errorf("infer: allocating the draft model's %d KV blocks: %w", cfg.NumBlocks, err), cache.Free())
		}
		e.draft = draft
	}
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
		maxLoRAs:            cfg.maxLoRAs(),
		spec:                cfg.Speculative.withDefaults(),
	}, e.bm)
	e.sampler = newSampler(spec.Vocab, e.eos)
	e.wake = sync.NewCond(&e.mu)
	e.nextSeed.Store(cfg.Seed * 0x9E3779B97F4A7C15)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	attrs := mem.attrs(dev, cache, cfg)
	if e.draftCache != nil {
		attrs = append(attrs, "speculative", "draft_model", "draft_kv_block_bytes", e.draftCache.BytesPerBlock())
	}
	log.Info("infer: engine started", attrs...)
	go e.loop()
	return e, nil
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
	err := errors.Join(leak, e.cache.Free())
	if e.draftCache != nil {
		err = errors.Join(err, e.draftCache.Free())
	}
	return err
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
		for len(e.incoming) == 0 && len(e.aborts) == 0 && len(e.calls) == 0 && !e.closing && !e.sched.HasWork() {
			e.wake.Wait()
		}
		in, ab, calls, closing := e.incoming, e.aborts, e.calls, e.closing
		e.incoming, e.aborts, e.calls = nil, nil, nil
		e.mu.Unlock()

		for _, fn := range calls {
			fn()
		}

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
	t0 := time.Now()
	if err := e.draftPropose(p); err != nil {
		e.fail(p, err)
		return
	}
	if err := e.run(p); err != nil {
		e.fail(p, err)
		return
	}
	// A step's time is its drafts and forward pass to the sampled tokens
	// on the host: the device's work is done by then.
	e.stats.stepTime(p, time.Since(t0))
	e.postprocess(p)
}

// stepTime adds a step's duration to the prefill steps' (any sequence
// computing more than one token: a prompt chunk, or a recomputation after
// preemption) or the decode steps' counters.
func (s *engineStats) stepTime(p *plan, d time.Duration) {
	for _, sc := range p.seqs {
		if sc.n > 1 {
			s.prefillSteps.Add(1)
			s.prefillNanos.Add(int64(d))
			return
		}
	}
	s.decodeSteps.Add(1)
	s.decodeNanos.Add(int64(d))
}

// run computes the planned tokens and samples the sequences that reached
// their last token, into e.toks and e.lps.
func (e *Engine) run(p *plan) error {
	if len(p.seqs) == 0 {
		return errors.New("infer: empty plan")
	}
	seqs := e.batch.Seqs[:0]
	nWant, drafts := 0, false
	for _, sc := range p.seqs {
		s := sc.seq
		in := SeqInput{
			Tokens:     s.tokens[sc.start : sc.start+sc.n],
			StartPos:   sc.start,
			BlockTable: s.blocks,
			WantLogits: sc.sample,
			LoRA:       s.lora,
		}
		if sc.draft > 0 {
			s.specIn = append(append(s.specIn[:0], s.tokens[sc.start:]...), s.draft...)
			in.Tokens, in.NumLogits = s.specIn, 1+sc.draft
			drafts = true
		}
		seqs = append(seqs, in)
		nWant += in.logitRows()
	}
	e.batch.Seqs = seqs
	e.more = e.more[:0]
	host := e.constrained(p) // constraints mask on the host (constraint.go)
	if gr, ok := e.runner.(GreedyRunner); ok && !host && e.allGreedy(p) {
		return e.runGreedy(gr, p, nWant)
	}
	if sr, ok := e.runner.(SamplingRunner); ok && !host && !drafts && e.noLogprobs(p) {
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
		if sc.draft > 0 {
			row = e.verify(sc, tok, logits, row)
		}
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
	row := 0
	for _, sc := range p.seqs {
		if !sc.sample {
			continue
		}
		e.toks = append(e.toks, ids[row])
		e.lps = append(e.lps, nil)
		row++
		if sc.draft > 0 {
			// Greedy on raw logits: a draft is accepted when it is the
			// argmax of the row before it.
			m := spec{}
			for i, d := range sc.seq.draft {
				if ids[row-1+i] != d {
					break
				}
				m.toks = append(m.toks, ids[row+i])
			}
			row += sc.draft
			e.addMore(len(e.toks)-1, sc, m)
		}
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
	k, n := 0, 0
	more := e.more
	for _, sc := range p.seqs {
		if !sc.sample {
			continue
		}
		e.output(sc.seq, e.lps[k])
		n++
		if len(more) > 0 && more[0].row == k {
			// The tokens after accepted drafts, one at a time, as if each
			// came from its own step.
			for i, tok := range more[0].toks {
				if sc.seq.status == seqFinished {
					break
				}
				var lp *TokenLogprobs // none from the device's greedy path
				if i < len(more[0].lps) {
					lp = more[0].lps[i]
				}
				e.sched.accept(sc.seq, tok)
				e.output(sc.seq, lp)
				n++
			}
			more = more[1:]
		}
		k++
	}
	e.stats.preemptions.Add(int64(len(p.preempted)))
	e.stats.generated.Add(int64(n))
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
	specDrafted, specAccepted                                      atomic.Int64
	prefillSteps, prefillNanos, decodeSteps, decodeNanos           atomic.Int64
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

	// Speculative decoding: draft tokens proposed and accepted, and the
	// share accepted (vLLM's draft acceptance rate).
	SpecDraftTokens    int64
	SpecAcceptedTokens int64
	SpecAcceptanceRate float64

	// The steps that computed a prompt chunk (or recomputed a preempted
	// sequence), those that only decoded (one token a sequence, drafts
	// aside), and the wall-clock seconds of each kind, schedule to
	// sampled tokens.
	PrefillSteps, DecodeSteps     int64
	PrefillSeconds, DecodeSeconds float64
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

		SpecDraftTokens:    e.stats.specDrafted.Load(),
		SpecAcceptedTokens: e.stats.specAccepted.Load(),
		SpecAcceptanceRate: rate(e.stats.specAccepted.Load(), e.stats.specDrafted.Load()),
		PrefillSteps:       e.stats.prefillSteps.Load(),
		DecodeSteps:        e.stats.decodeSteps.Load(),
		PrefillSeconds:     time.Duration(e.stats.prefillNanos.Load()).Seconds(),
		DecodeSeconds:      time.Duration(e.stats.decodeNanos.Load()).Seconds(),
	}
}
