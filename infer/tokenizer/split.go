package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The Split patterns of the tokenizers this package is built for. Their
// `\s+(?!\S)` needs lookahead, which Go's regexp lacks, so they are matched
// by hand (gptScanner); other patterns go through Go's regexp.
const (
	// patternCL100K is Llama 3's (tiktoken cl100k_base) pattern.
	patternCL100K = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// patternQwen2 is Qwen2/Qwen3's: cl100k with single digits.
	patternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// patternGPT2 is the ByteLevel pre-tokenizer's own pattern (use_regex).
	patternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// matcher finds the leftmost match of a pattern in text at or after start.
type matcher interface {
	find(text string, start int) (s, e int, ok bool)
}

// newMatcher compiles a Split regex (Oniguruma syntax in tokenizer.json).
func newMatcher(pattern string) (matcher, error) {
	switch pattern {
	case patternCL100K:
		return gptScanner{digits: 3, cl100k: true}, nil
	case patternQwen2:
		return gptScanner{digits: 1, cl100k: true}, nil
	case patternGPT2:
		return gptScanner{}, nil
	}
	return newRegexMatcher(pattern)
}

// isSpace is Oniguruma's and Rust's Unicode \s (White_Space), which Go's
// unicode.IsSpace matches exactly; Go's regexp \s is ASCII only.
func isSpace(r rune) bool { return unicode.IsSpace(r) }

func isLetter(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r)
}

func isNumber(r rune) bool {
	if r < utf8.RuneSelf {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r)
}

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// gptScanner matches patternCL100K/patternQwen2 (cl100k) or patternGPT2 by
// hand, alternative by alternative as a backtracking engine would try them.
// Every char is covered by some alternative, so a match starts at start.
type gptScanner struct {
	digits int // max \p{N} run (cl100k); 0 means unlimited
	cl100k bool
}

func (g gptScanner) find(text string, start int) (int, int, bool) {
	if start >= len(text) {
		return 0, 0, false
	}
	return start, g.match(text, start), true
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i (text[i] == '\”).
// With fold (cl100k's (?i:...)), ASCII case and the long s (ſ, which
// Unicode case folding maps to s) also match. It returns the match length.
func contraction(text string, i int, fold bool) int {
	lower := func(r rune) rune {
		if fold {
			if r == 'ſ' {
				return 's'
			}
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
		}
		return r
	}
	r, n := runeAt(text, i+1)
	second := rune(0)
	switch lower(r) {
	case 's', 't', 'm', 'd':
		return 1 + n
	case 'r', 'v':
		second = 'e'
	case 'l':
		second = 'l'
	default:
		return 0
	}
	if r2, n2 := runeAt(text, i+1+n); lower(r2) == second {
		return 1 + n + n2
	}
	return 0
}

func (g gptScanner) match(text string, i int) int {
	c, n := runeAt(text, i)
	// Contractions.
	if c == '\'' {
		if k := contraction(text, i, g.cl100k); k > 0 {
			return i + k
		}
	}
	if g.cl100k {
		// [^\r\n\p{L}\p{N}]?\p{L}+
		j := i
		if !isLetter(c) && c != '\r' && c != '\n' && !isNumber(c) {
			if r, _ := runeAt(text, i+n); isLetter(r) {
				j = i + n
			}
		}
		if r, _ := runeAt(text, j); isLetter(r) {
			return letters(text, j)
		}
		// \p{N}{1,digits}
		if isNumber(c) {
			j, k := i, 0
			for k < g.digits {
				r, m := runeAt(text, j)
				if !isNumber(r) {
					break
				}
				j += m
				k++
			}
			return j
		}
		// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
		if j, ok := punct(text, i, c, n); ok {
			for j < len(text) && (text[j] == '\r' || text[j] == '\n') {
				j++
			}
			return j
		}
		// c is whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
		end, lastNL := i, -1
		for {
			r, m := runeAt(text, end)
			if m == 0 || !isSpace(r) {
				break
			}
			if r == '\r' || r == '\n' {
				lastNL = end
			}
			end += m
		}
		if lastNL >= 0 {
			return lastNL + 1
		}
		return spaceRun(text, i, end)
	}
	// GPT-2: ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
	j := i
	if c == ' ' {
		j++
	}
	if r, _ := runeAt(text, j); isLetter(r) {
		return letters(text, j)
	}
	if r, _ := runeAt(text, j); isNumber(r) {
		for {
			r, m := runeAt(text, j)
			if m == 0 || !isNumber(r) {
				return j
			}
			j += m
		}
	}
	if j, ok := punct(text, i, c, n); ok {
		return j
	}
	end := i
	for {
		r, m := runeAt(text, end)
		if m == 0 || !isSpace(r) {
			break
		}
		end += m
	}
	return spaceRun(text, i, end)
}

// letters returns the end of the \p{L}+ run starting at j.
func letters(text string, j int) int {
	for {
		r, m := runeAt(text, j)
		if m == 0 || !isLetter(r) {
			return j
		}
		j += m
	}
}

// punct matches ' ?[^\s\p{L}\p{N}]+' at i.
func punct(text string, i int, c rune, n int) (int, bool) {
	j := i
	if c == ' ' {
		j += n
	}
	k := j
	for {
		r, m := runeAt(text, k)
		if m == 0 || isSpace(r) || isLetter(r) || isNumber(r) {
			break
		}
		k += m
	}
	return k, k > j
}

// spaceRun resolves `\s+(?!\S)|\s+` for the whitespace run [i, end): at the
// end of text the whole run; before a non-space, the run less its last char
// (so that char can lead the next word), or the single char if that is all.
func spaceRun(text string, i, end int) int {
	if end >= len(text) {
		return end
	}
	_, m := utf8.DecodeLastRuneInString(text[i:end])
	if end-m > i {
		return end - m
	}
	return end
}

// regexMatcher runs a pattern without lookaround through Go's regexp, whose
// leftmost-first semantics are those of Oniguruma. A trailing
// `\s+(?!\S)|\s+` is handled as in spaceRun.
type regexMatcher struct {
	re      *regexp.Regexp // pattern, or rest|\s+ with ws
	rest    *regexp.Regexp // ^(?:rest) when ws
	ws      bool
	pattern string
}

func newRegexMatcher(pattern string) (matcher, error) {
	const wsTail = `|\s+(?!\S)|\s+`
	m := &regexMatcher{pattern: pattern}
	body := pattern
	if strings.HasSuffix(body, wsTail) {
		m.ws = true
		body = strings.TrimSuffix(body, wsTail)
	}
	if strings.Contains(body, "(?=") || strings.Contains(body, "(?!") || strings.Contains(body, "(?<") {
		return nil, fmt.Errorf("lookaround is not supported in %q", pattern)
	}
	goBody := translateRegex(body)
	full := goBody
	if m.ws {
		full = `(?:` + goBody + `)|` + translateRegex(`\s+`)
		rest, err := regexp.Compile(`^(?:` + goBody + `)`)
		if err != nil {
			return nil, err
		}
		m.rest = rest
	}
	re, err := regexp.Compile(full)
	if err != nil {
		return nil, err
	}
	m.re = re
	return m, nil
}

func (m *regexMatcher) find(text string, start int) (int, int, bool) {
	for start <= len(text) {
		loc := m.re.FindStringIndex(text[start:])
		if loc == nil {
			return 0, 0, false
		}
		s, e := start+loc[0], start+loc[1]
		if s == e {
			// tokenizers drops empty matches; step past them.
			_, n := runeAt(text, s)
			if n == 0 {
				return 0, 0, false
			}
			start = s + n
			continue
		}
		if m.ws {
			if r := m.rest.FindStringIndex(text[s:]); r != nil && r[1] > 0 {
				return s, s + r[1], true
			}
			return s, spaceRun(text, s, e), true
		}
		return s, e, true
	}
	return 0, 0, false
}

// spaceClass is Unicode White_Space as a Go class body.
const spaceClass = `\t\n\v\f\r\x{85}\p{Z}`

// translateRegex rewrites Oniguruma \s and \S, which are Unicode-aware, to Go
// classes; Go's are ASCII only.
func translateRegex(p string) string {
	var sb strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+1 < len(p) {
			d := p[i+1]
			i++
			switch {
			case d == 's' && inClass:
				sb.WriteString(spaceClass)
			case d == 's':
				sb.WriteString("[" + spaceClass + "]")
			case d == 'S' && !inClass:
				sb.WriteString("[^" + spaceClass + "]")
			default:
				sb.WriteByte('\\')
				sb.WriteByte(d)
			}
			continue
		}
		switch c {
		case '[':
			inClass = true
		case ']':
			inClass = false
		}
		sb.WriteByte(c)
	}
	return sb.String()
}
