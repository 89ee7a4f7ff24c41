package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

// Request is one prompt to complete. Give exactly one of Prompt,
// PromptIDs and Messages.
type Request struct {
	// ID is echoed in the request's outputs.
	ID string
	// Prompt is text, tokenized with the special tokens the tokenizer's
	// post-processor adds (BOS for Llama).
	Prompt string
	// PromptIDs are token ids, used as they are.
	PromptIDs []int32
	// Messages are chat turns, rendered by the tokenizer's chat template
	// with the generation prompt added.
	Messages []tokenizer.Message
	// LoRA names the LoRA adapter (Engine.LoadLoRA) to complete the
	// prompt with; "" is the base model.
	LoRA string
	// Params choose the sampling.
	Params SamplingParams
	// Constrain, when set, is called once per completion (index among
	// Params.N) when the request is submitted, and the Constraint it
	// returns masks that completion's draws (constraint.go).
	Constrain func(index int) Constraint
}

// request is a Request in flight: its N sequences and where their output
// goes. After prepare, only the loop goroutine touches it.
type request struct {
	id       string
	index    int // in Generate's slice
	prompt   []int32
	params   SamplingParams // withDefaults applied
	seqs     []*Sequence
	open     int // sequences not yet completed
	sink     sink
	abortErr error           // set before abort
	ctx      context.Context // the caller's; the loop checks it before every step
}

// seqExtra is what the engine keeps per sequence for sampling and output.
type seqExtra struct {
	req   *request
	index int
	samp  *samplerState
	text  textState
	con   Constraint // nil: unconstrained
}

// sink receives a request's output on the loop goroutine; it must not
// block.
type sink interface {
	// streaming asks for emit calls, one per step and completion.
	streaming() bool
	emit(o Output)
	// complete delivers a finished completion; last says it was the
	// request's last.
	complete(c Completion, last bool)
}

// prepare tokenizes and checks a request, on the caller's goroutine.
func (e *Engine) prepare(r Request, index int, sk sink) (*request, error) {
	p := r.Params.withDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Logprobs > e.cfg.MaxLogprobs {
		return nil, fmt.Errorf("%w: logprobs (%d) cannot be larger than the engine's MaxLogprobs (%d)", ErrInvalidParams, p.Logprobs, e.cfg.MaxLogprobs)
	}
	for i, id := range p.StopTokenIDs {
		if int(id) >= e.spec.Vocab {
			return nil, fmt.Errorf("%w: stop_token_ids[%d] (%d) is outside the vocabulary of %d", ErrInvalidParams, i, id, e.spec.Vocab)
		}
	}
	if len(p.Stop) > 0 && e.tok == nil {
		return nil, fmt.Errorf("%w: stop strings need a tokenizer; the engine has none", ErrInvalidParams)
	}
	lora, err := e.loraID(r.LoRA)
	if err != nil {
		return nil, err
	}
	ids, err := e.promptIDs(r)
	if err != nil {
		return nil, err
	}
	if len(ids) > e.cfg.MaxModelLen {
		return nil, fmt.Errorf("%w: %d tokens, the max model length is %d", ErrPromptTooLong, len(ids), e.cfg.MaxModelLen)
	}
	rq := &request{id: r.ID, index: index, prompt: ids, params: p, sink: sk, open: p.N}
	rq.params.StopTokenIDs = append([]int32(nil), p.StopTokenIDs...)
	rq.params.Stop = append([]string(nil), p.Stop...)
	var eos []int32
	if !p.IgnoreEOS {
		eos = e.eos
	}
	base := e.nextSeed.Add(1) * 0xBF58476D1CE4E5B9
	for i := range p.N {
		seq := newSequence(int64(e.nextSeq.Add(1)), ids, stopRule{
			maxTokens: p.MaxTokens, minTokens: p.MinTokens, eos: eos, stopIDs: rq.params.StopTokenIDs,
		})
		seq.lora = lora
		seq.withDraft = e.draft != nil
		seed := base + uint64(i)
		if p.Seed != nil {
			seed = uint64(*p.Seed + int64(i)) // vLLM: child i of n is seeded seed+i
		}
		seq.x = &seqExtra{req: rq, index: i, samp: newSamplerState(&rq.params, seed),
			text: newTextState(e.tok, ids, rq.params.Stop)}
		if r.Constrain != nil {
			seq.x.con = r.Constrain(i)
			seq.noSpec = seq.x.con != nil
		}
		rq.seqs = append(rq.seqs, seq)
	}
	return rq, nil
}

func (e *Engine) promptIDs(r Request) ([]int32, error) {
	given := 0
	for _, b := range []bool{r.Prompt != "", r.PromptIDs != nil, r.Messages != nil} {
		if b {
			given++
		}
	}
	if given > 1 {
		return nil, fmt.Errorf("%w: give one of Prompt, PromptIDs and Messages", ErrInvalidPrompt)
	}
	var ids []int32
	switch {
	case r.PromptIDs != nil:
		for i, id := range r.PromptIDs {
			if id < 0 || int(id) >= e.spec.Vocab {
				return nil, fmt.Errorf("%w: token %d at index %d is outside the vocabulary of %d", ErrInvalidPrompt, id, i, e.spec.Vocab)
			}
		}
		ids = append([]int32(nil), r.PromptIDs...)
	case r.Messages != nil:
		if e.tok == nil {
			return nil, fmt.Errorf("%w: chat messages need a tokenizer; the engine has none", ErrInvalidPrompt)
		}
		text, err := e.tok.ApplyChatTemplate(r.Messages, true)
		if err != nil {
			return nil, fmt.Errorf("%w: chat template: %w", ErrInvalidPrompt, err)
		}
		ids = e.tok.Encode(text, false)
	case r.Prompt != "":
		if e.tok == nil {
			return nil, fmt.Errorf("%w: a text prompt needs a tokenizer; the engine has none (give PromptIDs)", ErrInvalidPrompt)
		}
		ids = e.tok.Encode(r.Prompt, true)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: the prompt is empty", ErrInvalidPrompt)
	}
	for i, id := range ids {
		if int(id) >= e.spec.Vocab {
			return nil, fmt.Errorf("%w: the tokenizer gave token %d at index %d, outside the model's vocabulary of %d", ErrInvalidPrompt, id, i, e.spec.Vocab)
		}
	}
	return ids, nil
}

// add admits a prepared request (loop goroutine).
func (e *Engine) add(r *request) {
	for _, seq := range r.seqs {
		e.sched.Add(seq)
	}
	e.stats.prompt.Add(int64(len(r.prompt) * len(r.seqs)))
}

// Generate completes every request, in one continuous batch with the
// other callers' requests, and returns the completions ordered by request
// and then by index: with N = 1 everywhere, completion i answers request
// i. A request that cannot be served gets a Completion with Err set and
// FinishReason ""; the others are served, and the returned error joins
// the failures, each naming its request's index. When ctx ends first,
// the unfinished requests are aborted and ctx's error returned with
// what finished.
func (e *Engine) Generate(ctx context.Context, reqs []Request) ([]Completion, error) {
	g := &gather{out: make([][]Completion, len(reqs)), done: make(chan struct{})}
	var rs []*request
	var errs []error
	for i, r := range reqs {
		rq, err := e.prepare(r, i, g)
		if rq != nil {
			rq.ctx = ctx
		}
		if err != nil {
			g.out[i] = []Completion{{RequestID: r.ID, Request: i, Err: err}}
			errs = append(errs, fmt.Errorf("request %d: %w", i, err))
			continue
		}
		rs = append(rs, rq)
	}
	g.open = len(rs)
	if len(rs) > 0 {
		if err := e.enqueue(rs...); err != nil {
			return nil, err
		}
		select {
		case <-g.done:
		case <-ctx.Done():
			for _, r := range rs {
				r.abortErr = ctx.Err()
			}
			e.abort(rs...)
			<-g.done // the loop completes aborted requests at once
			errs = append(errs, ctx.Err())
		}
	}
	var all []Completion
	for i := range g.out {
		all = append(all, g.out[i]...)
	}
	for _, c := range all {
		if c.Err != nil && c.FinishReason != "" && !errors.Is(c.Err, ctx.Err()) {
			errs = append(errs, fmt.Errorf("request %d: %w", c.Request, c.Err))
		}
	}
	return all, errors.Join(errs...)
}

// gather collects Generate's completions.
type gather struct {
	mu   sync.Mutex
	out  [][]Completion
	open int
	done chan struct{}
}

func (g *gather) streaming() bool { return false }
func (g *gather) emit(Output)     {}
func (g *gather) complete(c Completion, last bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.out[c.Request] = append(g.out[c.Request], c)
	if last {
		g.open--
		if g.open == 0 {
			close(g.done)
		}
	}
}

// Submit starts one request and streams its output: each Output holds
// what one completion gained since the last, and the channel is closed
// after every completion's Finished Output. A request that cannot be
// served returns an error and no channel. When ctx ends, the request is
// aborted and the channel closed, possibly without Finished Outputs.
// The channel is small; a consumer that falls behind gets coalesced
// Outputs rather than stalling the engine. The goroutine that feeds the
// channel ends when the channel has been read to its end or ctx ends, so a
// consumer that stops reading early must cancel ctx.
func (e *Engine) Submit(ctx context.Context, r Request) (<-chan Output, error) {
	st := &stream{notify: make(chan struct{}, 1), out: make(chan Output, 16)}
	rq, err := e.prepare(r, 0, st)
	if err != nil {
		return nil, err
	}
	rq.ctx = ctx
	st.open = rq.params.N
	if err := e.enqueue(rq); err != nil {
		return nil, err
	}
	// The forwarder ends when the consumer has every Output or ctx ends.
	go func() {
		defer close(st.out)
		if err := st.forward(ctx); err != nil {
			rq.abortErr = err
			e.abort(rq)
		}
	}()
	return st.out, nil
}

// stream buffers a Submit request's outputs between the loop, which must
// not block, and the consumer, coalescing per completion.
type stream struct {
	mu     sync.Mutex
	queue  []Output
	open   int // completions not finished
	notify chan struct{}
	out    chan Output
}

func (s *stream) streaming() bool { return true }

func (s *stream) emit(o Output) {
	s.mu.Lock()
	merged := false
	for i := len(s.queue) - 1; i >= 0; i-- {
		if q := &s.queue[i]; q.Index == o.Index {
			if !q.Finished {
				q.Text += o.Text
				q.TokenIDs = append(q.TokenIDs, o.TokenIDs...)
				q.Logprobs = append(q.Logprobs, o.Logprobs...)
				q.Finished, q.FinishReason, q.Err = o.Finished, o.FinishReason, o.Err
				q.PromptTokens, q.CompletionTokens = o.PromptTokens, o.CompletionTokens
				merged = true
			}
			break
		}
	}
	if !merged && (o.Text != "" || len(o.TokenIDs) > 0 || o.Finished) {
		s.queue = append(s.queue, o)
	}
	if o.Finished {
		s.open--
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *stream) complete(Completion, bool) {}

// forward hands queued outputs to the consumer until every completion has
// finished, or ctx ends (returning its error).
func (s *stream) forward(ctx context.Context) error {
	for {
		select {
		case <-s.notify:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
		q, done := s.queue, s.open == 0
		s.queue = nil
		s.mu.Unlock()
		for _, o := range q {
			select {
			case s.out <- o:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if done {
			return nil
		}
	}
}
