package plans

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// posAt is the file position of the character at rune index i of the
// string value of scalar n. For plain and single-line quoted scalars it is
// exact. Otherwise (escapes, folded lines, block scalars) it walks the
// source from the start of the scalar matching the value's characters one
// by one, which lands on the right character unless the value holds
// escapes that decode to characters absent from the source. For a value
// produced by a template (after Render), positions before the first and
// after the last changed character map exactly into the template text;
// positions inside the substituted text map to where the substitution
// starts, which is the {{ of its action.
func (p *Plan) posAt(n *yaml.Node, i int) Pos {
	n = deref(n)
	if n == nil {
		return Pos{}
	}
	val := []rune(n.Value)
	if raw, ok := p.rendered[n]; ok {
		r := []rune(raw)
		i = mapRendered(r, val, i)
		val = r
	}
	start := Pos{n.Line, n.Column}
	if n.Kind != yaml.ScalarNode {
		return start
	}
	if i > len(val) {
		i = len(val)
	}
	off := p.offset(start)
	if off < 0 {
		return start
	}
	src := p.src
	switch {
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The value starts on the line after the | or > header.
		if j := strings.IndexByte(string(src[off:]), '\n'); j >= 0 {
			off += j + 1
		}
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		off++ // the opening quote
	}
	// Walk: find each value character in turn in the source.
	for k := 0; k <= i && k < len(val) && off < len(src); k++ {
		c := val[k]
		j := off
		for j < len(src) {
			r, size := utf8.DecodeRune(src[j:])
			if r == c || unicode.IsSpace(c) && unicode.IsSpace(r) {
				break
			}
			j += size
		}
		if j >= len(src) {
			continue // an escape whose character is not in the source
		}
		if k == i {
			return p.posOf(j)
		}
		_, size := utf8.DecodeRune(src[j:])
		off = j + size
	}
	return p.posOf(off)
}

// mapRendered maps rune index i of a rendered value to its template text
// (see posAt).
func mapRendered(raw, val []rune, i int) int {
	pre := 0
	for pre < len(raw) && pre < len(val) && raw[pre] == val[pre] {
		pre++
	}
	if i < pre {
		return i
	}
	suf := 0
	for suf < len(raw)-pre && suf < len(val)-pre && raw[len(raw)-1-suf] == val[len(val)-1-suf] {
		suf++
	}
	if i >= len(val)-suf {
		return len(raw) - (len(val) - i)
	}
	return pre
}

// offset is the byte offset of a position in the source, or -1.
func (p *Plan) offset(pos Pos) int {
	line, off := 1, 0
	for line < pos.Line {
		j := strings.IndexByte(string(p.src[off:]), '\n')
		if j < 0 {
			return -1
		}
		off += j + 1
		line++
	}
	for col := 1; col < pos.Col && off < len(p.src); col++ {
		_, size := utf8.DecodeRune(p.src[off:])
		off += size
	}
	return off
}

// posOf is the position of a byte offset of the source.
func (p *Plan) posOf(off int) Pos {
	pos := Pos{1, 1}
	for j := 0; j < off && j < len(p.src); {
		r, size := utf8.DecodeRune(p.src[j:])
		if r == '\n' {
			pos.Line++
			pos.Col = 1
		} else {
			pos.Col++
		}
		j += size
	}
	return pos
}

// exprIndex is the rune index in s of a 1-based line and column (in runes)
// of an expression error.
func exprIndex(s string, line, col int) int {
	idx := 0
	rs := []rune(s)
	for l := 1; l < line && idx < len(rs); idx++ {
		if rs[idx] == '\n' {
			l++
		}
	}
	return idx + col - 1
}
