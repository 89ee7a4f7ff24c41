package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// trie finds added tokens leftmost-longest, as tokenizers' Aho-Corasick
// automaton (MatchKind::LeftmostLongest) does.
type trie struct {
	nodes []trieNode
	first [256]bool
}

type trieNode struct {
	next map[byte]int32
	tok  int32 // index into the token list, -1 if none
}

func newTrie() *trie { return &trie{nodes: []trieNode{{tok: -1}}} }

func (t *trie) insert(s string, tok int32) {
	if s == "" {
		return
	}
	t.first[s[0]] = true
	n := int32(0)
	for i := 0; i < len(s); i++ {
		nx, ok := t.nodes[n].next[s[i]]
		if !ok {
			if t.nodes[n].next == nil {
				t.nodes[n].next = make(map[byte]int32)
			}
			nx = int32(len(t.nodes))
			t.nodes[n].next[s[i]] = nx
			t.nodes = append(t.nodes, trieNode{tok: -1})
		}
		n = nx
	}
	if t.nodes[n].tok < 0 { // the first of equal patterns wins
		t.nodes[n].tok = tok
	}
}

// find returns the leftmost-longest match at or after start.
func (t *trie) find(s string, start int) (a, e int, tok int32, ok bool) {
	if len(t.nodes) == 1 {
		return 0, 0, 0, false
	}
	for i := start; i < len(s); i++ {
		if !t.first[s[i]] {
			continue
		}
		n, best, bestEnd := int32(0), int32(-1), 0
		for j := i; j < len(s); j++ {
			nx, ok := t.nodes[n].next[s[j]]
			if !ok {
				break
			}
			n = nx
			if t.nodes[n].tok >= 0 {
				best, bestEnd = t.nodes[n].tok, j+1
			}
		}
		if best >= 0 {
			return i, bestEnd, best, true
		}
	}
	return 0, 0, 0, false
}

// segment is a run of text, or an added token when id >= 0.
type segment struct {
	s     string
	id    int32
	first bool
}

// isWordChar is Rust regex's Unicode \w.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) ||
		unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

// extract splits s on the added tokens of tr (AddedVocabulary::find_matches)
// and appends the segments; empty text segments are dropped.
func extract(dst []segment, s string, first bool, tr *trie, toks []addedToken) []segment {
	startOff := 0
	for pos := 0; pos < len(s); {
		a, e, ti, ok := tr.find(s, pos)
		if !ok {
			break
		}
		pos = e
		tok := &toks[ti]
		if tok.SingleWord {
			r, _ := utf8.DecodeLastRuneInString(s[:a])
			startSpace := a == 0 || !isWordChar(r)
			r, _ = utf8.DecodeRuneInString(s[e:])
			stopSpace := e == len(s) || !isWordChar(r)
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			na := len(trimRightSpace(s[:a]))
			a = max(na, startOff)
		}
		if tok.RStrip {
			e += len(s[e:]) - len(trimLeftSpace(s[e:]))
		}
		if startOff < a {
			dst = append(dst, segment{s: s[startOff:a], id: -1, first: first && startOff == 0})
		}
		dst = append(dst, segment{s: s[a:e], id: tok.ID})
		startOff = e
	}
	if startOff < len(s) {
		dst = append(dst, segment{s: s[startOff:], id: -1, first: first && startOff == 0})
	}
	return dst
}

func trimRightSpace(s string) string {
	for len(s) > 0 {
		r, n := utf8.DecodeLastRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

func trimLeftSpace(s string) string {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[n:]
	}
	return s
}
