package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// piece is one pre-token. first is set when it starts the input text, which
// Metaspace's prepend_scheme "first" asks about.
type piece struct {
	s     string
	first bool
}

// preTokenizer appends the pieces p splits into to dst.
type preTokenizer interface {
	split(dst []piece, p piece) []piece
}

// behavior is tokenizers' SplitDelimiterBehavior.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

var behaviors = map[string]behavior{
	"Removed": removed, "Isolated": isolated, "MergedWithPrevious": mergedWithPrevious,
	"MergedWithNext": mergedWithNext, "Contiguous": contiguous,
}

type span struct {
	s, e  int
	match bool
}

// splitSpans applies a behavior to spans that cover p.s in order, exactly as
// NormalizedString::split folds them, and appends the non-empty pieces.
func splitSpans(dst []piece, p piece, spans []span, b behavior) []piece {
	var out []span
	switch b {
	case isolated, removed:
		out = spans
	case contiguous:
		prev := false
		for _, sp := range spans {
			if sp.match == prev && len(out) > 0 {
				out[len(out)-1].e = sp.e
			} else {
				out = append(out, span{sp.s, sp.e, false})
			}
			prev = sp.match
		}
	case mergedWithPrevious:
		prev := false
		for _, sp := range spans {
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].e = sp.e
			} else {
				out = append(out, span{sp.s, sp.e, false})
			}
			prev = sp.match
		}
	case mergedWithNext:
		prev := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].s = sp.s
			} else {
				out = append(out, span{sp.s, sp.e, false})
			}
			prev = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	for _, sp := range out {
		if (b == removed && sp.match) || sp.e == sp.s {
			continue
		}
		dst = append(dst, piece{p.s[sp.s:sp.e], p.first && sp.s == 0})
	}
	return dst
}

// splitPT is pre_tokenizers::Split.
type splitPT struct {
	m      matcher
	b      behavior
	invert bool
}

func (sp splitPT) split(dst []piece, p piece) []piece {
	if sp.b == isolated && !sp.invert {
		// Fast path: every match and every gap is its own piece.
		prev := 0
		for pos := 0; pos < len(p.s); {
			s, e, ok := sp.m.find(p.s, pos)
			if !ok {
				break
			}
			if s > prev {
				dst = append(dst, piece{p.s[prev:s], p.first && prev == 0})
			}
			dst = append(dst, piece{p.s[s:e], p.first && s == 0})
			prev, pos = e, e
		}
		if prev < len(p.s) {
			dst = append(dst, piece{p.s[prev:], p.first && prev == 0})
		}
		return dst
	}
	return splitSpans(dst, p, findSpans(p.s, sp.m, sp.invert), sp.b)
}

// findSpans covers s with matches and gaps, as Pattern::find_matches does.
func findSpans(s string, m matcher, invert bool) []span {
	var spans []span
	prev := 0
	for pos := 0; pos < len(s); {
		a, e, ok := m.find(s, pos)
		if !ok {
			break
		}
		if a > prev {
			spans = append(spans, span{prev, a, invert})
		}
		spans = append(spans, span{a, e, !invert})
		prev, pos = e, e
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), invert})
	}
	return spans
}

// literalMatcher matches a fixed string (Split's String pattern, or one char).
type literalMatcher string

func (l literalMatcher) find(text string, start int) (int, int, bool) {
	if l == "" {
		return 0, 0, false
	}
	i := strings.Index(text[start:], string(l))
	if i < 0 {
		return 0, 0, false
	}
	return start + i, start + i + len(l), true
}

// funcMatcher matches single chars for which f holds (Contiguous merges
// runs of them).
type funcMatcher func(rune) bool

func (f funcMatcher) find(text string, start int) (int, int, bool) {
	for i, r := range text[start:] {
		if f(r) {
			return start + i, start + i + utf8.RuneLen(r), true
		}
	}
	return 0, 0, false
}

// byteLevelPT is pre_tokenizers::ByteLevel. With raw set, the model reads raw
// bytes (bpe.byteMode) and the char mapping is skipped.
type byteLevelPT struct {
	addPrefixSpace bool
	useRegex       bool
	raw            bool
}

var gpt2Matcher = gptScanner{}

func (bl byteLevelPT) split(dst []piece, p piece) []piece {
	if bl.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
		p.s = " " + p.s
	}
	start := len(dst)
	if bl.useRegex {
		dst = splitPT{m: gpt2Matcher, b: isolated}.split(dst, p)
	} else if p.s != "" {
		dst = append(dst, p)
	}
	if !bl.raw {
		for i := start; i < len(dst); i++ {
			dst[i].s = byteLevelEncode(dst[i].s)
		}
	}
	return dst
}

// prependScheme is Metaspace's prepend_scheme.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependNever
	prependFirst
)

// metaspacePT is pre_tokenizers::Metaspace.
type metaspacePT struct {
	repl    string
	scheme  prependScheme
	splitOn bool
}

func (ms metaspacePT) split(dst []piece, p piece) []piece {
	p.s = strings.ReplaceAll(p.s, " ", ms.repl)
	switch ms.scheme {
	case prependAlways:
		if !strings.HasPrefix(p.s, ms.repl) {
			p.s = ms.repl + p.s
		}
	case prependFirst:
		if !strings.HasPrefix(p.s, ms.repl) && p.first {
			p.s = ms.repl + p.s
		}
	}
	if !ms.splitOn {
		if p.s != "" {
			dst = append(dst, p)
		}
		return dst
	}
	return splitSpans(dst, p, findSpans(p.s, literalMatcher(ms.repl), false), mergedWithNext)
}

// digitsPT is pre_tokenizers::Digits (ASCII digits).
type digitsPT struct{ individual bool }

func (d digitsPT) split(dst []piece, p piece) []piece {
	b := contiguous
	if d.individual {
		b = isolated
	}
	isDigit := funcMatcher(func(r rune) bool { return r >= '0' && r <= '9' })
	return splitSpans(dst, p, findSpans(p.s, isDigit, false), b)
}

// whitespaceSplitPT is pre_tokenizers::WhitespaceSplit.
type whitespaceSplitPT struct{}

func (whitespaceSplitPT) split(dst []piece, p piece) []piece {
	return splitSpans(dst, p, findSpans(p.s, funcMatcher(isSpace), false), removed)
}
