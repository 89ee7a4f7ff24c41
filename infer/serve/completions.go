package serve

import (
	"net/http"
	"time"

	"github.com/sluicehq/sluice/infer/engine"
)

// completions answers POST /v1/completions.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	tr := s.m.start()
	var req completionRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	lora, model, merr := s.resolveModel(req.Model)
	if merr != nil {
		writeError(w, merr)
		return
	}
	if !req.Prompt.set || req.Prompt.len() == 0 {
		writeError(w, badRequest("prompt", "prompt is required"))
		return
	}
	var prompts [][]int32
	var texts []string // for echo
	for _, t := range req.Prompt.texts {
		if s.tok == nil {
			writeError(w, badRequest("prompt", "the model has no tokenizer: give the prompt as token ids"))
			return
		}
		prompts = append(prompts, s.tok.Encode(t, true))
		texts = append(texts, t)
	}
	for i, ids := range req.Prompt.ids {
		for j, id := range ids {
			if id < 0 || int(id) >= s.vocab() {
				writeError(w, badRequest("prompt", "prompt[%d][%d] (%d) is outside the vocabulary of %d", i, j, id, s.vocab()))
				return
			}
		}
		prompts = append(prompts, ids)
		t := ""
		if s.tok != nil {
			t = s.tok.Decode(ids, false)
		}
		texts = append(texts, t)
	}
	top := -1 // logprobs not asked for
	if req.Logprobs != nil {
		top = *req.Logprobs
		if top < 0 {
			writeError(w, badRequest("logprobs", "logprobs must be non-negative, got %d", top))
			return
		}
		if req.Echo {
			writeError(w, badRequest("echo", "echo with logprobs needs the prompt's logprobs, which this server does not compute"))
			return
		}
	}
	con, aerr := s.constraint(req.ResponseFormat)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	reqs := make([]engine.Request, len(prompts))
	for i, ids := range prompts {
		p, aerr := s.params(&req.samplingFields, req.MaxTokens, "max_tokens", len(ids), 16)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		if top >= 0 {
			p.Logprobs = max(top, 1)
		}
		reqs[i] = engine.Request{PromptIDs: ids, LoRA: lora, Params: p, Constrain: con}
	}
	n := reqs[0].Params.N
	release, aerr := s.admit(len(reqs) * n)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer release()
	ctx, cancel := s.reqContext(r)
	defer cancel()
	events, aerr := s.submit(ctx, reqs)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	if !req.Stream {
		cs, aerr := s.collect(ctx, events, len(reqs), n, tr)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		resp := completionResponse{ID: id, Object: "text_completion", Created: created, Model: model, Usage: usageOf(cs, n)}
		for i, c := range cs {
			text := c.text.String()
			prefix := ""
			if req.Echo {
				prefix = texts[i/n]
			}
			ch := completionChoice{Index: i, Text: prefix + text, FinishReason: finishReason(c.finish)}
			if top >= 0 {
				ch.Logprobs = completionLPs(c.lps, top, len(prefix))
			}
			if req.ReturnTokenIDs {
				ch.TokenIDs, ch.PromptIDs = nonNil(c.toks), prompts[i/n]
			}
			resp.Choices = append(resp.Choices, ch)
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}

	out := startSSE(w)
	cs := make([]*choice, len(reqs)*n)
	offsets := make([]int, len(cs))
	for i := range cs {
		cs[i] = &choice{}
	}
	chunk := func(ch completionChoice) completionResponse {
		return completionResponse{ID: id, Object: "text_completion", Created: created, Model: model, Choices: []completionChoice{ch}}
	}
	for ev := range events {
		i := ev.prompt*n + ev.o.Index
		c := cs[i]
		first := len(c.toks) == 0 && c.text.Len() == 0
		tr.output(i, ev.o)
		c.add(ev.o)
		text := ev.o.Text
		if first && req.Echo {
			text = texts[ev.prompt] + text
		}
		ch := completionChoice{Index: i, Text: text}
		if top >= 0 {
			ch.Logprobs = completionLPs(ev.o.Logprobs, top, offsets[i])
		}
		offsets[i] += len(text)
		if req.ReturnTokenIDs {
			ch.TokenIDs = ev.o.TokenIDs
			if first {
				ch.PromptIDs = prompts[ev.prompt]
			}
		}
		if ev.o.Finished {
			ch.FinishReason = finishReason(ev.o.FinishReason)
		}
		if out.send(chunk(ch)) != nil {
			return // the client went away; ctx's end aborts the requests
		}
	}
	if aerr := s.finished(ctx, cs); aerr != nil {
		out.fail(aerr)
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		out.send(completionResponse{ID: id, Object: "text_completion", Created: created, Model: model,
			Choices: []completionChoice{}, Usage: usageOf(cs, n)})
	}
	out.done()
}

// completionLPs is the legacy logprobs object of tokens whose text starts
// at offset.
func completionLPs(lps []engine.TokenLogprobs, top, offset int) *completionLogprobs {
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
	for _, lp := range lps {
		out.Tokens = append(out.Tokens, lp.Sampled.Token)
		out.TokenLogprobs = append(out.TokenLogprobs, lp.Sampled.Logprob)
		m := map[string]float32{}
		for _, t := range lp.Top[:min(top, len(lp.Top))] {
			if _, ok := m[t.Token]; !ok {
				m[t.Token] = t.Logprob
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, m)
		out.TextOffset = append(out.TextOffset, offset)
		offset += len(lp.Sampled.Token)
	}
	return out
}

func (s *Server) vocab() int { return s.e.Spec().Vocab }

func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}
