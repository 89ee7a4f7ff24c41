package engine

import "slices"

// Finish reasons, as vLLM and the OpenAI API name them.
const (
	// FinishStop: an EOS token, a stop token or a stop string ended the
	// completion.
	FinishStop = "stop"
	// FinishLength: max_tokens or the model's context length was reached.
	FinishLength = "length"
	// FinishAbort: the caller cancelled the request, or the engine failed
	// or closed while serving it.
	FinishAbort = "abort"
)

// seqStatus is where a sequence is in the scheduler.
type seqStatus uint8

const (
	seqWaiting  seqStatus = iota // queued: new, or preempted
	seqRunning                   // holds cache blocks and is scheduled each step
	seqFinished                  // done; its blocks are freed
)

func (s seqStatus) String() string {
	return [...]string{"waiting", "running", "finished"}[s]
}

// stopRule is when a sequence stops at the token level; stop strings are
// checked on the text (output.go).
type stopRule struct {
	maxTokens int     // output tokens; always >= 1
	minTokens int     // EOS and stop tokens are masked until this many
	eos       []int32 // nil with ignore_eos
	stopIDs   []int32 // the request's stop_token_ids
}

// Sequence is one generation: a prompt and the tokens sampled after it. A
// request with n > 1 has n sequences. The scheduler and block manager
// own its scheduling state; the engine owns what sampling and output need.
type Sequence struct {
	id     int64
	status seqStatus
	finish string // finish reason once finished
	// stopStr is the stop string that finished it, if any.
	stopStr string

	tokens      []int32 // prompt then output
	numPrompt   int
	numComputed int // tokens whose keys and values are in the cache
	preemptions int

	// Cache state (block.go).
	blocks    []int32     // covers at least tokens[:numComputed]
	hashes    []blockHash // chained hashes of the full blocks of tokens, computed lazily
	numHashed int         // leading blocks registered in, or taken from, the prefix cache
	cachedHit int         // prompt tokens found in the prefix cache when first scheduled

	// Speculative decoding (speculative.go): this step's draft tokens and
	// its input (the last token, then the drafts); noSpec keeps a sequence
	// out of it (a constrained one: its masks follow accepted tokens).
	draft, specIn []int32
	noSpec        bool
	// draftComputed counts the tokens whose keys and values are in the
	// draft model's cache (draft.go); withDraft says there is one, so that
	// only blocks both caches hold are registered in the prefix cache.
	draftComputed int
	withDraft     bool

	stop stopRule
	lora int // the runner's LoRA adapter id; 0 is the base model

	// Engine state: sampling and output (nil in scheduler tests).
	x *seqExtra
}

func newSequence(id int64, prompt []int32, stop stopRule) *Sequence {
	toks := make([]int32, len(prompt), len(prompt)+min(stop.maxTokens, 1<<12))
	copy(toks, prompt)
	return &Sequence{id: id, tokens: toks, numPrompt: len(prompt), stop: stop}
}

// numOutput is how many tokens have been sampled.
func (s *Sequence) numOutput() int { return len(s.tokens) - s.numPrompt }

// output returns the sampled tokens.
func (s *Sequence) output() []int32 { return s.tokens[s.numPrompt:] }

// lastToken is the newest token.
func (s *Sequence) lastToken() int32 { return s.tokens[len(s.tokens)-1] }

// isStopToken reports whether id ends the sequence once min_tokens is met.
func (r *stopRule) isStopToken(id int32) bool {
	return slices.Contains(r.eos, id) || slices.Contains(r.stopIDs, id)
}

// append adds a sampled token and returns the finish reason it causes, or
// "". As vLLM's check_stop: min_tokens first, then EOS and stop tokens,
// then the length limits (maxModelLen counts prompt and output).
func (s *Sequence) append(tok int32, maxModelLen int) string {
	s.tokens = append(s.tokens, tok)
	n := s.numOutput()
	if n >= s.stop.minTokens && s.stop.isStopToken(tok) {
		return FinishStop
	}
	if n >= s.stop.maxTokens || len(s.tokens) >= maxModelLen {
		return FinishLength
	}
	return ""
}
