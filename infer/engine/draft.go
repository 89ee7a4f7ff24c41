package engine

import (
	"fmt"
)

// Draft-model speculative decoding (method "draft_model"), structured as
// vLLM V1's draft-model proposer: a second, smaller model of the same
// vocabulary proposes the draft tokens the target then verifies in one
// step, with the rejection sampling of speculative.go.
//
// The draft has a KV cache of its own with as many blocks as the target's,
// and a sequence's block table indexes both: the block manager hands out
// a block once, for both models, so the scheduler's block budget, the
// prefix cache, preemption and aborts cover the draft's cache as they
// cover the target's (vLLM binds the draft's layers to the same block
// table the same way).
//
// Each step, after Schedule and before the target's forward pass, the
// draft runs:
//
//   - one forward pass over every scheduled sequence, computing the tokens
//     the target computes this step that the draft has not (a prefill
//     chunk, or a decode's last token plus what the draft missed: the last
//     draft of a step that accepted every draft, and the token after it),
//     with logits for the sequences that speculate; their argmax is the
//     first draft token;
//   - then k−1 decode passes over the speculating sequences, each feeding
//     the last draft token and taking the argmax as the next.
//
// The drafts are the draft model's greedy choice, a proposer that puts
// all its mass on one token, for which speculative.go's verification is
// exact rejection sampling: greedy output is the target's token for token
// and sampled output keeps the target's distribution, whatever the draft.
// (vLLM's draft proposers draw greedily too.)
//
// After verification, the draft's cache holds the accepted tokens, up to
// the last draft but one: draftComputed is clamped to the target's
// numComputed at the next step, and the prefix cache registers only blocks
// both caches hold (blockManager.commit).

// draftPropose fills the draft tokens Schedule budgeted for p's
// sequences by running the draft model.
func (e *Engine) draftPropose(p *plan) error {
	if e.draft == nil {
		return nil
	}
	b := e.draftBatch.Seqs[:0]
	e.drafting = e.drafting[:0]
	maxK := 0
	for i, sc := range p.seqs {
		s := sc.seq
		end := sc.start + sc.n - sc.draft // the target's tokens, drafts aside
		dc := min(s.draftComputed, s.numComputed)
		if dc >= end {
			s.draftComputed = dc
			continue
		}
		b = append(b, SeqInput{Tokens: s.tokens[dc:end], StartPos: dc, BlockTable: s.blocks, WantLogits: sc.draft > 0})
		s.draftComputed = end
		if sc.draft > 0 {
			e.drafting = append(e.drafting, i)
			maxK = max(maxK, sc.draft)
		}
	}
	e.draftBatch.Seqs = b
	if len(b) > 0 {
		ids, err := e.draftArgmax(len(e.drafting))
		if err != nil {
			return err
		}
		for r, i := range e.drafting {
			p.seqs[i].seq.draft[0] = ids[r]
		}
	}
	for k := 1; k < maxK; k++ {
		b = e.draftBatch.Seqs[:0]
		e.decoding = e.decoding[:0]
		for _, i := range e.drafting {
			sc := p.seqs[i]
			if sc.draft <= k {
				continue
			}
			s := sc.seq
			pos := len(s.tokens) + k - 1
			b = append(b, SeqInput{Tokens: s.draft[k-1 : k], StartPos: pos, BlockTable: s.blocks, WantLogits: true})
			s.draftComputed = pos + 1
			e.decoding = append(e.decoding, i)
		}
		e.draftBatch.Seqs = b
		ids, err := e.draftArgmax(len(b))
		if err != nil {
			return err
		}
		for r, i := range e.decoding {
			p.seqs[i].seq.draft[k] = ids[r]
		}
	}
	return nil
}

// draftArgmax runs the draft on e.draftBatch and returns the argmax of
// each of its nWant rows of logits, on the device when the draft can.
func (e *Engine) draftArgmax(nWant int) ([]int32, error) {
	if gr, ok := e.draft.(GreedyRunner); ok {
		ids, err := gr.ForwardArgmax(e.draftCache, &e.draftBatch)
		if err != nil {
			return nil, fmt.Errorf("infer: draft model forward: %w", err)
		}
		if len(ids) != nWant {
			return nil, fmt.Errorf("infer: draft model forward returned %d tokens, want %d", len(ids), nWant)
		}
		return ids, nil
	}
	logits, err := e.draft.Forward(e.draftCache, &e.draftBatch)
	if err != nil {
		return nil, fmt.Errorf("infer: draft model forward: %w", err)
	}
	v := e.spec.Vocab
	if len(logits) != nWant*v {
		return nil, fmt.Errorf("infer: draft model forward returned %d logits, want %d rows × %d", len(logits), nWant, v)
	}
	e.draftIDs = e.draftIDs[:0]
	for r := range nWant {
		e.draftIDs = append(e.draftIDs, argmax(logits[r*v:(r+1)*v]))
	}
	return e.draftIDs, nil
}

// checkDraft checks the draft model's spec against the target's.
func checkDraft(target, draft ModelSpec) error {
	if draft.Vocab != target.Vocab {
		return fmt.Errorf("%w: the draft model's vocabulary has %d tokens, the target's %d: draft and target must share the tokenizer",
			ErrInvalidConfig, draft.Vocab, target.Vocab)
	}
	return nil
}
