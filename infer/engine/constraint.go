package engine

import "math"

// Constraint restricts which tokens a completion may draw next:
// constrained decoding, such as JSON output following a grammar. The
// engine calls Allowed on its loop goroutine before each of the
// completion's draws, never concurrently; steps of a constrained
// completion sample on the host (the mask is applied to the logits after
// the min_tokens masks and before penalties and temperature).
type Constraint interface {
	// Allowed is given the completion's tokens so far (read only; between
	// calls it grows by the token drawn) and returns which token ids may
	// come next: ids at or beyond len(mask), and those false in it, are
	// masked. The engine reads mask before the next call, so an
	// implementation may reuse it. It should allow at least one token
	// (an EOS once the output is complete); with none, the draw is
	// unconstrained.
	Allowed(output []int32) []bool
}

// constrain masks the tokens seq's constraint disallows in x.
func constrain(x []float32, seq *Sequence) {
	if seq.x == nil || seq.x.con == nil {
		return
	}
	mask := seq.x.con.Allowed(seq.output())
	any := false
	for _, ok := range mask[:min(len(mask), len(x))] {
		if ok {
			any = true
			break
		}
	}
	if !any {
		return
	}
	inf := float32(math.Inf(-1))
	for id := range x {
		if id >= len(mask) || !mask[id] {
			x[id] = inf
		}
	}
}

// constrained reports whether some sequence of p that samples has a
// Constraint: the step then samples on the host.
func (e *Engine) constrained(p *plan) bool {
	for _, sc := range p.seqs {
		if sc.sample && sc.seq.x != nil && sc.seq.x.con != nil {
			return true
		}
	}
	return false
}
