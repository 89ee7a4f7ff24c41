package engine

import "sync/atomic"

// Gauges is what an engine holds at the end of its loop's latest iteration,
// for a server's metrics and load shedding.
type Gauges struct {
	// Running and Waiting count sequences (a request with n > 1 has n).
	Running, Waiting int
	// FreeBlocks of NumBlocks KV cache blocks are held by no sequence
	// (blocks kept only for the prefix cache count as free).
	FreeBlocks, NumBlocks int
	// PrefixQueriedTokens are prompt tokens looked up in the prefix cache,
	// PrefixHitTokens those found there, since New.
	PrefixQueriedTokens, PrefixHitTokens int64
}

// loadGauges are Gauges' counts, stored by the loop goroutine after each
// iteration and read by any.
type loadGauges struct {
	running, waiting, free atomic.Int64
}

// publishLoad stores the loop's counts (loop goroutine).
func (e *Engine) publishLoad() {
	e.gauges.running.Store(int64(len(e.sched.running)))
	e.gauges.waiting.Store(int64(len(e.sched.waiting)))
	e.gauges.free.Store(int64(e.bm.NumFree()))
	e.stats.prefixQueried.Store(e.bm.queried)
	e.stats.prefixHit.Store(e.bm.hit)
}

// Gauges returns the engine's current load. Once every request has finished
// or been aborted, FreeBlocks equals NumBlocks: a server's tests check it
// for KV block leaks.
func (e *Engine) Gauges() Gauges {
	return Gauges{
		Running:             int(e.gauges.running.Load()),
		Waiting:             int(e.gauges.waiting.Load()),
		FreeBlocks:          int(e.gauges.free.Load()),
		NumBlocks:           e.cfg.NumBlocks,
		PrefixQueriedTokens: e.stats.prefixQueried.Load(),
		PrefixHitTokens:     e.stats.prefixHit.Load(),
	}
}

// Spec describes the engine's model; its EOS lists every id that ends a
// completion (the model's and the tokenizer's), as the engine resolved
// them.
func (e *Engine) Spec() ModelSpec {
	s := e.spec
	s.EOS = append([]int32(nil), e.eos...)
	return s
}
