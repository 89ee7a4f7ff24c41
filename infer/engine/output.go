package engine

import (
	"bytes"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

// Output is a streamed piece of one completion: what it gained since the
// previous Output of the same Index. A consumer that falls behind gets
// several steps' worth in one Output.
type Output struct {
	// RequestID is the request's ID.
	RequestID string
	// Index is the completion's index among the request's N.
	Index int
	// Text is new text. While stop strings are set, the text that could
	// still turn out to start one is held back until it cannot.
	Text string
	// TokenIDs are new tokens.
	TokenIDs []int32
	// Logprobs are the new tokens' log-probabilities, when asked for.
	Logprobs []TokenLogprobs
	// Finished marks the completion's last Output; FinishReason, the
	// token counts and Err are set on it only.
	Finished         bool
	FinishReason     string
	PromptTokens     int
	CompletionTokens int
	// Err is why the engine could not finish the completion (it closed,
	// or the model failed); FinishReason is then "abort".
	Err error
}

// Completion is one finished completion of a request.
type Completion struct {
	// RequestID is the request's ID.
	RequestID string `json:"request_id,omitempty"`
	// Request is the request's index in the slice given to Generate.
	Request int `json:"-"`
	// Index is the completion's index among the request's N.
	Index int `json:"index"`
	// Text is the decoded output, without special tokens and without the
	// EOS, stop token or stop string that ended it.
	Text string `json:"text"`
	// TokenIDs are all sampled tokens, the EOS or stop token included.
	TokenIDs []int32 `json:"token_ids"`
	// FinishReason is "stop", "length", or "abort" (with Err).
	FinishReason string `json:"finish_reason"`
	// StopString is the stop string that ended it, if one did.
	StopString string `json:"stop_string,omitempty"`
	// PromptTokens and CompletionTokens count tokens; CachedTokens is the
	// part of the prompt found in the prefix cache.
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	CachedTokens     int `json:"cached_tokens,omitempty"`
	// Logprobs has one entry per token of TokenIDs when asked for.
	Logprobs []TokenLogprobs `json:"logprobs,omitempty"`
	// Err is why the request could not be served, if it could not.
	Err error `json:"-"`
}

// textState follows one sequence's output text, as vLLM's incremental
// detokenizer: it decodes each token as it comes, checks stop strings on
// the new text, and tracks what has been handed out.
type textState struct {
	dec  *tokenizer.StreamDecoder // nil without a tokenizer
	text []byte
	hold int // bytes held back while streaming: longest stop string - 1

	logprobs []TokenLogprobs

	// What streaming has delivered.
	sentText, sentTokens, sentLogprobs int
}

func newTextState(tok *tokenizer.Tokenizer, prompt []int32, stops []string) textState {
	ts := textState{}
	if tok != nil {
		ts.dec = tok.NewDecoder(prompt, true)
	}
	for _, s := range stops {
		ts.hold = max(ts.hold, len(s)-1)
	}
	return ts
}

// add decodes seq's newest token and reports the stop string it
// completes, if any, truncating the text there. stopToken says the token
// ended the sequence as EOS or a stop token, so it is not decoded.
func (ts *textState) add(seq *Sequence, p *SamplingParams, stopToken bool) (stop string) {
	if ts.dec == nil {
		return ""
	}
	if stopToken && !p.IncludeStopStrInOutput {
		return ""
	}
	delta := ts.dec.Add(seq.lastToken())
	ts.text = append(ts.text, delta...)
	if len(p.Stop) == 0 || delta == "" || seq.numOutput() <= seq.stop.minTokens {
		return ""
	}
	for _, s := range p.Stop {
		from := max(0, len(ts.text)-len(delta)-len(s)+1)
		i := bytes.Index(ts.text[from:], []byte(s))
		if i < 0 {
			continue
		}
		end := from + i
		if p.IncludeStopStrInOutput {
			end += len(s)
		}
		ts.text = ts.text[:end]
		return s
	}
	return ""
}

// flush ends the text of a sequence that finished without a stop string,
// with any incomplete UTF-8 the decoder held back (as U+FFFD).
func (ts *textState) flush() {
	if ts.dec != nil {
		ts.text = append(ts.text, ts.dec.Flush()...)
	}
}

// delta returns what streaming has not delivered yet and marks it
// delivered. Unless finished, the last hold bytes of text stay back, cut
// at a UTF-8 boundary.
func (ts *textState) delta(seq *Sequence, finished bool) (text string, toks []int32, lps []TokenLogprobs) {
	end := len(ts.text)
	if !finished {
		end -= ts.hold
		for end > ts.sentText && end < len(ts.text) && !utf8Start(ts.text[end]) {
			end--
		}
	}
	if end > ts.sentText {
		text = string(ts.text[ts.sentText:end])
		ts.sentText = end
	}
	out := seq.output()
	toks = append([]int32(nil), out[ts.sentTokens:]...)
	ts.sentTokens = len(out)
	if ts.sentLogprobs < len(ts.logprobs) {
		lps = append([]TokenLogprobs(nil), ts.logprobs[ts.sentLogprobs:]...)
		ts.sentLogprobs = len(ts.logprobs)
	}
	return text, toks, lps
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
