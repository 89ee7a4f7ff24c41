package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/infer/engine"
)

// params turns the request's sampling fields into the engine's, for a
// prompt of promptLen tokens. maxTokens is max_tokens (or chat's
// max_completion_tokens) as given, nil for the default: defMax capped at
// the room the prompt leaves (0: all of it).
func (s *Server) params(f *samplingFields, maxTokens *int, maxName string, promptLen, defMax int) (engine.SamplingParams, *apiError) {
	maxLen := s.e.Config().MaxModelLen
	if promptLen >= maxLen {
		return engine.SamplingParams{}, badRequest("prompt", "the prompt has %d tokens; this model's maximum context length is %d tokens, which leaves no room to generate", promptLen, maxLen)
	}
	p := engine.SamplingParams{N: 1, Temperature: 1, TopP: 1, RepetitionPenalty: 1}
	if f.N != nil {
		if *f.N < 1 {
			return p, badRequest("n", "n must be at least 1, got %d", *f.N)
		}
		p.N = *f.N
	}
	room := maxLen - promptLen
	switch {
	case maxTokens != nil:
		if *maxTokens < 1 {
			return p, badRequest(maxName, "%s must be at least 1, got %d", maxName, *maxTokens)
		}
		if *maxTokens > room {
			return p, badRequest(maxName, "this model's maximum context length is %d tokens; the prompt has %d and %s asks for %d more (at most %d)",
				maxLen, promptLen, maxName, *maxTokens, room)
		}
		p.MaxTokens = *maxTokens
	case defMax > 0:
		p.MaxTokens = min(defMax, room)
	default:
		p.MaxTokens = room
	}
	if f.Temperature != nil {
		p.Temperature = *f.Temperature
	}
	if f.TopP != nil {
		p.TopP = *f.TopP
	}
	if f.TopK != nil {
		p.TopK = *f.TopK
	}
	if f.MinP != nil {
		p.MinP = *f.MinP
	}
	if f.PresencePenalty != nil {
		p.PresencePenalty = *f.PresencePenalty
	}
	if f.FrequencyPenalty != nil {
		p.FrequencyPenalty = *f.FrequencyPenalty
	}
	if f.RepetitionPenalty != nil {
		p.RepetitionPenalty = *f.RepetitionPenalty
	}
	p.Seed = f.Seed
	p.Stop = f.Stop
	p.StopTokenIDs = f.StopTokenIDs
	p.IgnoreEOS = f.IgnoreEOS
	p.MinTokens = f.MinTokens
	if err := p.Validate(); err != nil {
		return p, engineError(err, 0)
	}
	return p, nil
}

// engineError maps an engine error to its answer.
func engineError(err error, timeout any) *apiError {
	switch {
	case errors.Is(err, engine.ErrInvalidParams):
		msg := strings.TrimPrefix(err.Error(), engine.ErrInvalidParams.Error()+": ")
		param, _, _ := strings.Cut(msg, " ")
		param, _, _ = strings.Cut(param, "[")
		return badRequest(param, "%s", msg)
	case errors.Is(err, engine.ErrInvalidPrompt), errors.Is(err, engine.ErrPromptTooLong):
		return badRequest("prompt", "%v", err)
	case errors.Is(err, engine.ErrUnknownLoRA): // unloaded since the request was checked
		return &apiError{status: http.StatusNotFound, typ: "not_found_error", param: "model", message: err.Error()}
	case errors.Is(err, engine.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, typ: "service_unavailable", message: "the engine is closed"}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusGatewayTimeout, typ: "timeout", message: fmt.Sprintf("the request did not finish within the server's request timeout (%v)", timeout)}
	}
	return &apiError{status: http.StatusInternalServerError, typ: "internal_error", message: err.Error()}
}

// event is one streamed Output of the prompt'th prompt.
type event struct {
	prompt int
	o      engine.Output
}

// submit starts one engine request per prompt and merges their outputs.
// The channel closes once every completion has finished, or ctx ends.
// On an error, the requests already started stay tied to ctx, which the
// caller cancels.
func (s *Server) submit(ctx context.Context, reqs []engine.Request) (<-chan event, *apiError) {
	out := make(chan event, len(reqs)*4)
	var chans []<-chan engine.Output
	for _, r := range reqs {
		ch, err := s.e.Submit(ctx, r)
		if err != nil {
			return nil, engineError(err, s.cfg.RequestTimeout)
		}
		chans = append(chans, ch)
	}
	open := make(chan struct{}, len(chans))
	for i, ch := range chans {
		go func() {
			defer func() { open <- struct{}{} }()
			for o := range ch {
				select {
				case out <- event{i, o}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		for range chans {
			<-open
		}
		close(out)
	}()
	return out, nil
}

// reqContext bounds a request by the server's timeout.
func (s *Server) reqContext(r *http.Request) (context.Context, context.CancelFunc) {
	if s.cfg.RequestTimeout > 0 {
		return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	}
	return context.WithCancel(r.Context())
}

// choice is one completion as it accumulates.
type choice struct {
	text             strings.Builder
	toks             []int32
	lps              []engine.TokenLogprobs
	finish           string
	done             bool
	promptTokens     int
	completionTokens int
	err              error
}

// collect gathers the events of nPrompts × n completions (choice index
// prompt × n + index), recording their latencies in the metrics.
func (s *Server) collect(ctx context.Context, events <-chan event, nPrompts, n int, tr *tracker) ([]*choice, *apiError) {
	cs := make([]*choice, nPrompts*n)
	for i := range cs {
		cs[i] = &choice{}
	}
	for ev := range events {
		c := cs[ev.prompt*n+ev.o.Index]
		tr.output(ev.prompt*n+ev.o.Index, ev.o)
		c.add(ev.o)
	}
	return cs, s.finished(ctx, cs)
}

func (c *choice) add(o engine.Output) {
	c.text.WriteString(o.Text)
	c.toks = append(c.toks, o.TokenIDs...)
	c.lps = append(c.lps, o.Logprobs...)
	if o.Finished {
		c.done, c.finish, c.err = true, o.FinishReason, o.Err
		c.promptTokens, c.completionTokens = o.PromptTokens, o.CompletionTokens
	}
}

// finished reports why the choices did not all finish, if they did not.
func (s *Server) finished(ctx context.Context, cs []*choice) *apiError {
	for _, c := range cs {
		if c.err != nil {
			return engineError(c.err, s.cfg.RequestTimeout)
		}
		if !c.done {
			if err := ctx.Err(); err != nil {
				return engineError(err, s.cfg.RequestTimeout)
			}
			return &apiError{status: http.StatusInternalServerError, typ: "internal_error", message: "a completion ended without finishing"}
		}
	}
	return nil
}

// usageOf sums the choices' tokens, counting each prompt once.
func usageOf(cs []*choice, n int) *usage {
	u := &usage{}
	for i, c := range cs {
		if i%n == 0 {
			u.PromptTokens += c.promptTokens
		}
		u.CompletionTokens += c.completionTokens
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// finishReason is OpenAI's finish_reason of an engine one.
func finishReason(r string) *string {
	if r == "" {
		return nil
	}
	return &r
}
