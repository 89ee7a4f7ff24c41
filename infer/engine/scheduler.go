package engine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// schedulerConfig bounds each step.
type schedulerConfig struct {
	maxNumSeqs          int  // sequences running at once
	maxNumBatchedTokens int  // tokens computed per step
	maxModelLen         int  // prompt plus output
	chunkedPrefill      bool // a prompt may be computed over several steps
	maxLoRAs            int  // distinct LoRA adapters running at once
	spec                SpeculativeConfig
}

// scheduler is vLLM V1's scheduler, a deterministic state machine: each
// step, Schedule picks which sequences compute how many tokens, and
// Update applies the tokens sampled from that step's logits.
//
// There is no prefill or decode phase: a sequence computes the tokens it
// has that are not yet in the cache (its whole prompt, a chunk of it, or
// the one token sampled last), under a budget of maxNumBatchedTokens per
// step. Running sequences go first, in arrival order, so decodes keep
// going while a long prompt is computed in chunks; waiting ones are
// admitted while the budget, maxNumSeqs and the free blocks allow. When a
// running sequence needs a block and none is free, the newest running
// sequence is preempted: its blocks are freed and it goes back to the
// head of the queue, to be recomputed later (from the prefix cache,
// when its blocks were not reused meanwhile).
type scheduler struct {
	cfg     schedulerConfig
	bm      *blockManager
	waiting []*Sequence // FCFS; preempted sequences go back to the front
	running []*Sequence // in admission order: the last is preempted first

	plan        plan  // reused each step
	loras       []int // adapters of the running batch, during Schedule
	preemptions int64
}

// scheduled is one sequence's share of a step.
type scheduled struct {
	seq    *Sequence
	start  int  // position of the first token to compute
	n      int  // tokens to compute
	sample bool // the step reaches the sequence's last token: sample one
	draft  int  // of the n, the draft tokens after the last one (speculative.go)
}

// plan is one step's work.
type plan struct {
	seqs      []scheduled
	numTokens int
	preempted []*Sequence
	finished  []*Sequence // by Update, at the token level
}

func newScheduler(cfg schedulerConfig, bm *blockManager) *scheduler {
	return &scheduler{cfg: cfg, bm: bm}
}

// Add queues a new sequence.
func (s *scheduler) Add(seq *Sequence) {
	seq.status = seqWaiting
	s.waiting = append(s.waiting, seq)
}

// HasWork reports whether any sequence is waiting or running.
func (s *scheduler) HasWork() bool { return len(s.waiting)+len(s.running) > 0 }

// Schedule plans the next step. The plan is valid until the next call.
func (s *scheduler) Schedule() *plan {
	p := &s.plan
	p.seqs, p.preempted, p.finished, p.numTokens = p.seqs[:0], p.preempted[:0], p.finished[:0], 0
	budget := s.cfg.maxNumBatchedTokens

	for i := 0; i < len(s.running) && budget > 0; {
		seq := s.running[i]
		n := min(len(seq.tokens)-seq.numComputed, budget)
		if s.propose(seq, budget) && s.bm.allocate(seq, nil, n+len(seq.draft)) {
			p.add(seq, n+len(seq.draft))
			p.seqs[len(p.seqs)-1].draft = len(seq.draft)
			budget -= n + len(seq.draft)
			i++
			continue
		}
		seq.draft = seq.draft[:0]
		for !s.bm.allocate(seq, nil, n) {
			victim := s.running[len(s.running)-1]
			s.running = s.running[:len(s.running)-1]
			s.preempt(victim)
			if victim == seq {
				n = 0
				break
			}
		}
		if n == 0 {
			break
		}
		p.add(seq, n)
		budget -= n
		i++
	}

	// vLLM admits no one in a step that had to preempt: memory is short.
	// At most maxLoRAs distinct adapters run at once: a sequence of another
	// adapter is skipped, and those after it may still go (vLLM V1's
	// scheduler does the same).
	s.loras = s.loras[:0]
	for _, q := range s.running {
		if q.lora != 0 && !slices.Contains(s.loras, q.lora) {
			s.loras = append(s.loras, q.lora)
		}
	}
	for w := 0; len(p.preempted) == 0 && w < len(s.waiting) && budget > 0 && len(s.running) < s.cfg.maxNumSeqs; {
		seq := s.waiting[w]
		if seq.lora != 0 && !slices.Contains(s.loras, seq.lora) && len(s.loras) >= max(1, s.cfg.maxLoRAs) {
			w++
			continue
		}
		hits := s.bm.lookup(seq)
		computed := len(hits) * s.bm.size
		n := len(seq.tokens) - computed
		if n > budget && !s.cfg.chunkedPrefill {
			break
		}
		n = min(n, budget)
		if !s.bm.allocate(seq, hits, n) {
			break
		}
		if w == 0 {
			s.waiting = s.waiting[1:]
		} else {
			s.waiting = slices.Delete(s.waiting, w, w+1)
		}
		if seq.lora != 0 && !slices.Contains(s.loras, seq.lora) {
			s.loras = append(s.loras, seq.lora)
		}
		seq.numComputed, seq.draftComputed = computed, computed
		if seq.preemptions == 0 {
			seq.cachedHit = computed
			s.bm.queried += int64(seq.numPrompt)
			s.bm.hit += int64(computed)
		}
		seq.status = seqRunning
		s.running = append(s.running, seq)
		p.add(seq, n)
		budget -= n
	}
	if len(s.waiting) == 0 {
		s.waiting = nil // let the queue's backing array go
	}
	if len(s.loras) > 0 {
		// Rows of one adapter side by side make one segment of the
		// runner's grouped LoRA product, instead of one per sequence.
		slices.SortStableFunc(p.seqs, func(a, b scheduled) int { return cmp.Compare(a.seq.lora, b.seq.lora) })
	}
	return p
}

// propose fills seq.draft for a decode step that can take some, within
// the step's budget, the sequence's max_tokens and the max model length,
// and reports whether it did.
func (s *scheduler) propose(seq *Sequence, budget int) bool {
	c := s.cfg.spec
	if c.Method == "" || seq.noSpec || len(seq.tokens)-seq.numComputed != 1 {
		return false
	}
	// k drafts give up to k+1 new tokens.
	k := min(c.NumSpeculativeTokens, budget-1, seq.stop.maxTokens-seq.numOutput()-1, s.cfg.maxModelLen-len(seq.tokens)-1)
	if c.Method == "draft_model" {
		// The draft model fills the k tokens after Schedule (draft.go); the
		// budget and the blocks are taken for them here.
		seq.draft = slices.Grow(seq.draft[:0], max(k, 0))[:max(k, 0)]
		return k > 0
	}
	seq.draft = ngramPropose(seq.draft, seq.tokens, k, c.PromptLookupMin, c.PromptLookupMax)
	return len(seq.draft) > 0
}

func (p *plan) add(seq *Sequence, n int) {
	p.seqs = append(p.seqs, scheduled{seq: seq, start: seq.numComputed, n: n, sample: seq.numComputed+n >= len(seq.tokens)}) // > with drafts
	p.numTokens += n
}

func (s *scheduler) preempt(seq *Sequence) {
	s.bm.free(seq)
	seq.numComputed, seq.draftComputed = 0, 0
	seq.preemptions++
	seq.status = seqWaiting
	s.waiting = slices.Insert(s.waiting, 0, seq)
	s.plan.preempted = append(s.plan.preempted, seq)
	s.preemptions++
}

// Update applies a step: the scheduled tokens are now in the cache, and
// sampled holds one token for each scheduled sequence that sampled, in plan
// order. Sequences that finish at the token level (EOS, stop tokens,
// lengths) are freed and listed in p.finished.
func (s *scheduler) Update(p *plan, sampled []int32) {
	j := 0
	for _, sc := range p.seqs {
		seq := sc.seq
		seq.numComputed += sc.n - sc.draft // accept adds the accepted drafts
		s.bm.commit(seq)
		if !sc.sample {
			continue
		}
		if reason := seq.append(sampled[j], s.cfg.maxModelLen); reason != "" {
			s.release(seq, reason)
			p.finished = append(p.finished, seq)
		}
		j++
	}
	if len(p.finished) > 0 {
		s.running = slices.DeleteFunc(s.running, func(q *Sequence) bool { return q.status == seqFinished })
	}
}

// accept appends one more token of a speculative step: the token sampled
// before it was the draft computed after it, so that draft's keys and
// values are in the cache. It reports whether the sequence finished.
func (s *scheduler) accept(seq *Sequence, tok int32) bool {
	seq.numComputed++
	s.bm.commit(seq)
	if reason := seq.append(tok, s.cfg.maxModelLen); reason != "" {
		s.release(seq, reason)
		s.running = slices.DeleteFunc(s.running, func(q *Sequence) bool { return q == seq })
		return true
	}
	return false
}

// Finish ends a sequence early: a stop string matched, or its request was
// cancelled. Finishing a finished sequence does nothing.
func (s *scheduler) Finish(seq *Sequence, reason string) {
	switch seq.status {
	case seqFinished:
		return
	case seqRunning:
		s.running = slices.DeleteFunc(s.running, func(q *Sequence) bool { return q == seq })
	case seqWaiting:
		s.waiting = slices.DeleteFunc(s.waiting, func(q *Sequence) bool { return q == seq })
	}
	s.release(seq, reason)
}

func (s *scheduler) release(seq *Sequence, reason string) {
	s.bm.free(seq)
	seq.status = seqFinished
	seq.finish = reason
}

// String describes a plan for trace tests: "3[0:16] 1[40] +2[16:24]" lists
// the sequences in batch order with the positions they compute (one
// position for a decode), "*" marking those that sample.
func (p *plan) String() string {
	var b strings.Builder
	for i, sc := range p.seqs {
		if i > 0 {
			b.WriteByte(' ')
		}
		if sc.n == 1 {
			fmt.Fprintf(&b, "%d[%d]", sc.seq.id, sc.start)
		} else {
			fmt.Fprintf(&b, "%d[%d:%d]", sc.seq.id, sc.start, sc.start+sc.n)
		}
		if sc.sample {
			b.WriteByte('*')
		}
	}
	if len(p.seqs) == 0 {
		b.WriteString("idle")
	}
	for _, q := range p.preempted {
		fmt.Fprintf(&b, " preempt:%d", q.id)
	}
	return b.String()
}
