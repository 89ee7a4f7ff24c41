package structured

import (
	"strings"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// Vocab is a tokenizer's vocabulary as the bytes each token appends to
// the text, for masks. It is immutable and may be shared.
type Vocab struct {
	toks [][]byte // nil: never allowed (special, empty, or a partial UTF-8 character)
	eos  []int32
}

// NewVocab reads the bytes of the first size token ids (the model's
// vocabulary, which may be larger than the tokenizer's); eos are the ids
// that end a completion, allowed once the value is whole.
func NewVocab(tok *tokenizer.Tokenizer, size int, eos []int32) *Vocab {
	v := &Vocab{toks: make([][]byte, size), eos: eos}
	// A token's text is what it adds after another token, so that
	// decoders that strip a leading space at the start keep it.
	ref, hasRef := tok.TokenID("a")
	base := ""
	if hasRef {
		base = tok.Decode([]int32{ref}, true)
	}
	for id := range min(size, tok.VocabSize()) {
		if tok.IsSpecial(int32(id)) {
			continue
		}
		var s string
		if hasRef {
			s = strings.TrimPrefix(tok.Decode([]int32{ref, int32(id)}, true), base)
		} else {
			s = tok.Decode([]int32{int32(id)}, true)
		}
		if s == "" || strings.ContainsRune(s, '\uFFFD') {
			continue
		}
		v.toks[id] = []byte(s)
	}
	return v
}

// Constraint masks a completion's tokens so that its text is a value of
// the grammar: an infer.Constraint. One Constraint follows one completion.
type Constraint struct {
	v       *Vocab
	live    *Parser
	scratch Parser
	mask    []bool
	fed     int
}

var _ engine.Constraint = (*Constraint)(nil)

// Constraint returns a mask for one completion over v.
func (g *Grammar) Constraint(v *Vocab) *Constraint {
	return &Constraint{v: v, live: g.Start(), mask: make([]bool, len(v.toks))}
}

// Allowed advances over the tokens drawn since the last call and returns
// the tokens that keep the text a prefix of a grammar value; once the
// value is whole, only EOS.
func (c *Constraint) Allowed(output []int32) []bool {
	for _, id := range output[c.fed:] {
		if int(id) < len(c.v.toks) && c.v.toks[id] != nil {
			c.live.Feed(c.v.toks[id])
		} else if !c.isEOS(id) {
			c.live.dead = true
		}
	}
	c.fed = len(output)
	clear(c.mask)
	if c.live.Done() || c.live.dead {
		for _, id := range c.v.eos {
			if int(id) < len(c.mask) {
				c.mask[id] = true
			}
		}
		if len(c.live.stack) == 0 || c.live.dead {
			return c.mask
		}
	}
	for id, b := range c.v.toks {
		if b == nil {
			continue
		}
		c.scratch.copyFrom(c.live)
		if c.scratch.Feed(b) {
			c.mask[id] = true
		}
	}
	return c.mask
}

func (c *Constraint) isEOS(id int32) bool {
	for _, e := range c.v.eos {
		if e == id {
			return true
		}
	}
	return false
}
