package tokenizer

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// bpe is the BPE model of tokenizers' models/bpe: a vocabulary, ranked merges
// over id pairs, and the options that change how a word is split into chars.
type bpe struct {
	vocab    map[string]int32
	merges   map[uint64]uint64 // pairKey(a, b) -> rank<<32 | new id
	unk      int32             // -1 without unk_token
	fuseUnk  bool
	fallback bool // byte_fallback: unknown chars become <0xXX> tokens
	ignore   bool // ignore_merges: a word found whole in vocab is one token
	prefix   string
	suffix   string

	// byteMode: the pipeline ends with a ByteLevel pre-tokenizer, so words
	// arrive as raw bytes and byteID maps each byte to its byte-level token
	// (-1 when absent); rawVocab is vocab keyed by raw bytes for ignore.
	byteMode bool
	byteID   [256]int32
	rawVocab map[string]int32
	fbID     [256]int32 // <0xXX> token ids when fallback, else -1

	cache wordCache
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// cacheCap and cacheMaxLen follow tokenizers' BPE cache (10,000 words of
// fewer than 256 bytes); a full cache stops taking new words.
const (
	cacheCap    = 10000
	cacheMaxLen = 256
)

type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

func (c *wordCache) get(w string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	if len(w) >= cacheMaxLen {
		return
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string][]int32)
	}
	if len(c.m) < cacheCap {
		c.m[w] = ids
	}
	c.mu.Unlock()
}

// setByteMode switches the model to raw-byte input (see byteMode).
func (m *bpe) setByteMode() {
	m.byteMode = true
	for b := 0; b < 256; b++ {
		id, ok := m.vocab[byteToStr[b]]
		if !ok {
			id = -1
		}
		m.byteID[b] = id
	}
	if m.ignore {
		m.rawVocab = make(map[string]int32, len(m.vocab))
		var buf []byte
		for tok, id := range m.vocab {
			var ok bool
			buf, ok = byteLevelDecode(buf[:0], tok)
			if ok {
				m.rawVocab[string(buf)] = id
			}
		}
	}
}

// tokenize appends the ids of one pre-tokenized word to out.
func (m *bpe) tokenize(w string, out []int32, sc *scratch) []int32 {
	if w == "" {
		return out
	}
	if m.ignore {
		v := m.vocab
		if m.byteMode {
			v = m.rawVocab
		}
		if id, ok := v[w]; ok {
			return append(out, id)
		}
	}
	if ids, ok := m.cache.get(w); ok {
		return append(out, ids...)
	}
	start := len(out)
	out = m.mergeWord(w, out, sc)
	ids := make([]int32, len(out)-start)
	copy(ids, out[start:])
	m.cache.put(w, ids)
	return out
}

// symbols is the word being merged: a doubly linked list over arrays, a
// removed symbol has dead set.
type symbols struct {
	id   []int32
	prev []int32
	next []int32
	dead []bool
	heap []uint64 // rank<<32 | pos, a min-heap
}

type scratch struct {
	sym  symbols
	ids  []int32
	text []byte
}

func (s *symbols) reset() {
	s.id, s.prev, s.next, s.dead, s.heap = s.id[:0], s.prev[:0], s.next[:0], s.dead[:0], s.heap[:0]
}

func (s *symbols) add(id int32) {
	n := int32(len(s.id))
	s.id = append(s.id, id)
	s.prev = append(s.prev, n-1)
	s.next = append(s.next, n+1)
	s.dead = append(s.dead, false)
}

// mergeWord splits w into initial symbols the way merge_word does (chars,
// prefix/suffix, byte fallback, unk fusing), then applies merges in rank
// order, leftmost first among equal ranks.
func (m *bpe) mergeWord(w string, out []int32, sc *scratch) []int32 {
	s := &sc.sym
	s.reset()
	unk, unkPending := int32(-1), false
	flushUnk := func() {
		if unkPending {
			s.add(unk)
			unkPending = false
		}
	}
	missing := func() {
		if m.unk < 0 {
			return
		}
		if unkPending && !m.fuseUnk {
			s.add(unk)
		}
		unk, unkPending = m.unk, true
	}
	if m.byteMode {
		for i := 0; i < len(w); i++ {
			if id := m.byteID[w[i]]; id >= 0 {
				flushUnk()
				s.add(id)
			} else {
				missing()
			}
		}
	} else {
		for i := 0; i < len(w); {
			_, size := utf8.DecodeRuneInString(w[i:])
			ch := w[i : i+size]
			first, last := i == 0, i+size == len(w)
			i += size
			key := ch
			if (!first && m.prefix != "") || (last && m.suffix != "") {
				if !first {
					key = m.prefix + key
				}
				if last {
					key += m.suffix
				}
			}
			if id, ok := m.vocab[key]; ok {
				flushUnk()
				s.add(id)
				continue
			}
			if m.fallback && m.hasBytes(key) {
				// Like tokenizers, byte tokens do not flush a pending unk.
				for j := 0; j < len(key); j++ {
					s.add(m.fbID[key[j]])
				}
				continue
			}
			missing()
		}
	}
	flushUnk()
	n := int32(len(s.id))
	if n == 0 {
		return out
	}
	s.next[n-1] = -1
	for i := int32(0); i+1 < n; i++ {
		if v, ok := m.merges[pairKey(s.id[i], s.id[i+1])]; ok {
			s.push(v>>32<<32 | uint64(i))
		}
	}
	for len(s.heap) > 0 {
		top := s.pop()
		rank, pos := top>>32, int32(uint32(top))
		if s.dead[pos] || s.next[pos] < 0 {
			continue
		}
		nx := s.next[pos]
		v, ok := m.merges[pairKey(s.id[pos], s.id[nx])]
		if !ok || v>>32 != rank {
			continue // stale: the pair at pos changed since it was queued
		}
		s.id[pos] = int32(uint32(v))
		s.dead[nx] = true
		s.next[pos] = s.next[nx]
		if s.next[pos] >= 0 {
			s.prev[s.next[pos]] = pos
		}
		if p := s.prev[pos]; p >= 0 {
			if v, ok := m.merges[pairKey(s.id[p], s.id[pos])]; ok {
				s.push(v>>32<<32 | uint64(p))
			}
		}
		if q := s.next[pos]; q >= 0 {
			if v, ok := m.merges[pairKey(s.id[pos], s.id[q])]; ok {
				s.push(v>>32<<32 | uint64(pos))
			}
		}
	}
	for i := int32(0); i < n; i++ {
		if !s.dead[i] {
			out = append(out, s.id[i])
		}
	}
	return out
}

func (m *bpe) hasBytes(key string) bool {
	for j := 0; j < len(key); j++ {
		if m.fbID[key[j]] < 0 {
			return false
		}
	}
	return true
}

func (s *symbols) push(v uint64) {
	h := append(s.heap, v)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	s.heap = h
}

func (s *symbols) pop() uint64 {
	h := s.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h[r] < h[l] {
			c = r
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.heap = h
	return top
}

// fallbackName is the vocab entry byte_fallback uses for b, as Rust's
// format!("<{b:#04X}>") writes it.
func fallbackName(b byte) string { return fmt.Sprintf("<0x%02X>", b) }
