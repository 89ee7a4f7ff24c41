package serve

import (
	"net/http"
	"time"

	"github.com/sluicehq/sluice/infer/engine"
)

// chat answers POST /v1/chat/completions: the messages go through the
// model's chat template, with the assistant's generation prompt.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	tr := s.m.start()
	var req chatRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	lora, model, merr := s.resolveModel(req.Model)
	if merr != nil {
		writeError(w, merr)
		return
	}
	ids, aerr := s.chatPrompt(req.Messages, true)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	maxTok, maxName := req.MaxCompletionTokens, "max_completion_tokens"
	if maxTok == nil {
		maxTok, maxName = req.MaxTokens, "max_tokens"
	}
	p, aerr := s.params(&req.samplingFields, maxTok, maxName, len(ids), 0)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	top := -1
	if req.TopLogprobs != nil {
		if !req.Logprobs {
			writeError(w, badRequest("top_logprobs", "top_logprobs needs logprobs: true"))
			return
		}
		if *req.TopLogprobs < 0 || *req.TopLogprobs > 20 {
			writeError(w, badRequest("top_logprobs", "top_logprobs must be in [0, 20], got %d", *req.TopLogprobs))
			return
		}
	}
	if req.Logprobs {
		top = 0
		if req.TopLogprobs != nil {
			top = *req.TopLogprobs
		}
		p.Logprobs = max(top, 1)
	}
	con, aerr := s.constraint(req.ResponseFormat)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	release, aerr := s.admit(p.N)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer release()
	ctx, cancel := s.reqContext(r)
	defer cancel()
	events, aerr := s.submit(ctx, []engine.Request{{PromptIDs: ids, LoRA: lora, Params: p, Constrain: con}})
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	id, created := newID("chatcmpl-"), time.Now().Unix()
	n := p.N
	if !req.Stream {
		cs, aerr := s.collect(ctx, events, 1, n, tr)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		resp := chatResponse{ID: id, Object: "chat.completion", Created: created, Model: model, Usage: usageOf(cs, n)}
		for i, c := range cs {
			ch := chatChoice{Index: i, Message: chatResponseMessage{Role: "assistant", Content: c.text.String()}, FinishReason: finishReason(c.finish)}
			if top >= 0 {
				ch.Logprobs = chatLPs(c.lps, top)
			}
			if req.ReturnTokenIDs {
				ch.TokenIDs = nonNil(c.toks)
			}
			resp.Choices = append(resp.Choices, ch)
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}

	out := startSSE(w)
	chunk := func(ch chatChunkChoice) chatChunk {
		return chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model, Choices: []chatChunkChoice{ch}}
	}
	cs := make([]*choice, n)
	for i := range cs {
		cs[i] = &choice{}
		empty := ""
		if out.send(chunk(chatChunkChoice{Index: i, Delta: chatDelta{Role: "assistant", Content: &empty}})) != nil {
			return
		}
	}
	for ev := range events {
		i := ev.o.Index
		tr.output(i, ev.o)
		cs[i].add(ev.o)
		ch := chatChunkChoice{Index: i}
		if ev.o.Text != "" || !ev.o.Finished {
			text := ev.o.Text
			ch.Delta.Content = &text
		}
		if top >= 0 {
			ch.Logprobs = chatLPs(ev.o.Logprobs, top)
		}
		if req.ReturnTokenIDs {
			ch.TokenIDs = ev.o.TokenIDs
		}
		if ev.o.Finished {
			ch.FinishReason = finishReason(ev.o.FinishReason)
		}
		if out.send(chunk(ch)) != nil {
			return
		}
	}
	if aerr := s.finished(ctx, cs); aerr != nil {
		out.fail(aerr)
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		out.send(chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model,
			Choices: []chatChunkChoice{}, Usage: usageOf(cs, n)})
	}
	out.done()
}

func tokenBytes(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}

// chatLPs is a chat choice's logprobs object.
func chatLPs(lps []engine.TokenLogprobs, top int) *chatLogprobs {
	out := &chatLogprobs{Content: []chatLogprob{}}
	for _, lp := range lps {
		c := chatLogprob{Token: lp.Sampled.Token, Logprob: lp.Sampled.Logprob, Bytes: tokenBytes(lp.Sampled.Token), TopLogprobs: []chatTopLogprob{}}
		for _, t := range lp.Top[:min(top, len(lp.Top))] {
			c.TopLogprobs = append(c.TopLogprobs, chatTopLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: tokenBytes(t.Token)})
		}
		out.Content = append(out.Content, c)
	}
	return out
}
