package engine

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

// FakeRunner is an in-memory, deterministic Runner for tests, beside the
// real models as raft's InmemTransport is beside its TCP transport.
//
// Its "KV" of a token is a hash chained over the whole history: the
// entry at position p is mix(entry at p-1, token, p), read through the
// block table from the cache and written back into it. The logits after
// a token are a pseudo-random function of that entry. So a sequence's
// output depends on every earlier token, and any scheduling or cache bug
// that reads a wrong, stale or overwritten block changes it; Forward also
// fails outright when a history position it needs was never written or
// belongs to another position. Generate computes the same continuation
// without a cache, as the reference for tests.
type FakeRunner struct {
	spec ModelSpec
	// noise and salt make a draft model of the fake (NewFakeDraft).
	noise float32
	salt  uint64

	mu sync.Mutex
	// FailForward, when set, is called at the start of each Forward with
	// the number of earlier calls; an error it returns is Forward's.
	FailForward func(call int) error
	calls       int
	logits      []float32
}

var _ Runner = (*FakeRunner)(nil)

// FakeVocab is the vocabulary size of NewFakeRunner's model and of
// FakeTokenizer: the 256 bytes, then <s> (256) and </s> (257, the EOS).
const FakeVocab = 258

// FakeBOS and FakeEOS are the fake model's special tokens.
const (
	FakeBOS int32 = 256
	FakeEOS int32 = 257
)

// NewFakeRunner returns a fake model with FakeVocab tokens and EOS FakeEOS
// that accepts maxPositions tokens.
func NewFakeRunner(maxPositions int) *FakeRunner {
	return &FakeRunner{spec: ModelSpec{Vocab: FakeVocab, MaxPositions: maxPositions, EOS: []int32{FakeEOS}}}
}

// NewFakeDraft returns another fake model of the same vocabulary, for a
// draft model in speculative decoding: its logits are NewFakeRunner's
// plus noise times a pseudo-random value in [-1, 1) keyed by the history
// and salt, so that its argmax is often, not always, the fake's. Noise 0
// is NewFakeRunner's model.
func NewFakeDraft(maxPositions int, noise float32, salt uint64) *FakeRunner {
	f := NewFakeRunner(maxPositions)
	f.noise, f.salt = noise, salt
	return f
}

// Spec implements Runner.
func (f *FakeRunner) Spec() ModelSpec { return f.spec }

type fakeEntry struct {
	h   uint64
	pos int32 // -1: never written
}

type fakeCache struct {
	size    int
	entries []fakeEntry // numBlocks × size
	freed   bool
}

// fakeBlockBytes is what the fake claims a block costs: 64 bytes a token.
const fakeBlockBytes = 64

func (c *fakeCache) BytesPerBlock() int64 { return int64(c.size) * fakeBlockBytes }
func (c *fakeCache) Free() error {
	if c.freed {
		return fmt.Errorf("infer: fake KV cache freed twice")
	}
	c.freed, c.entries = true, nil
	return nil
}

// NewCache implements Runner.
func (f *FakeRunner) NewCache(numBlocks, blockSize int) (KVCache, error) {
	if numBlocks < 1 || blockSize < 1 {
		return nil, fmt.Errorf("infer: fake cache of %d blocks of %d", numBlocks, blockSize)
	}
	c := &fakeCache{size: blockSize, entries: make([]fakeEntry, numBlocks*blockSize)}
	for i := range c.entries {
		c.entries[i].pos = -1
	}
	return c, nil
}

// Calls returns how many times Forward was called.
func (f *FakeRunner) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Forward implements Runner.
func (f *FakeRunner) Forward(kc KVCache, b *Batch) ([]float32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := f.calls
	f.calls++
	if f.FailForward != nil {
		if err := f.FailForward(call); err != nil {
			return nil, err
		}
	}
	c, ok := kc.(*fakeCache)
	if !ok || c.freed {
		return nil, fmt.Errorf("infer: fake Forward on a foreign or freed cache")
	}
	nBlocks := len(c.entries) / c.size
	out := f.logits[:0]
	for si, s := range b.Seqs {
		end := s.StartPos + len(s.Tokens)
		if len(s.Tokens) == 0 || end > f.spec.MaxPositions || len(s.BlockTable)*c.size < end {
			return nil, fmt.Errorf("infer: fake: sequence %d: %d tokens from %d, %d blocks, max positions %d",
				si, len(s.Tokens), s.StartPos, len(s.BlockTable), f.spec.MaxPositions)
		}
		slot := func(pos int) (*fakeEntry, error) {
			blk := s.BlockTable[pos/c.size]
			if blk < 0 || int(blk) >= nBlocks {
				return nil, fmt.Errorf("infer: fake: sequence %d: block %d out of range", si, blk)
			}
			return &c.entries[int(blk)*c.size+pos%c.size], nil
		}
		h := fakeSeed
		if s.StartPos > 0 {
			e, err := slot(s.StartPos - 1)
			if err != nil {
				return nil, err
			}
			if int(e.pos) != s.StartPos-1 {
				return nil, fmt.Errorf("infer: fake: sequence %d: cache slot of position %d holds position %d", si, s.StartPos-1, e.pos)
			}
			h = e.h
		}
		for i, t := range s.Tokens {
			if t < 0 || int(t) >= f.spec.Vocab {
				return nil, fmt.Errorf("infer: fake: sequence %d: token %d out of range", si, t)
			}
			pos := s.StartPos + i
			h = fakeMix(h, t, pos)
			e, err := slot(pos)
			if err != nil {
				return nil, err
			}
			*e = fakeEntry{h: h, pos: int32(pos)}
			if i >= len(s.Tokens)-s.logitRows() {
				out = f.appendLogits(out, h)
			}
		}
	}
	f.logits = out
	return out, nil
}

const fakeSeed uint64 = 0x5151_1ce5_eed0_0001

// fakeMix chains a token into the history hash (splitmix64 finalizer).
func fakeMix(h uint64, t int32, pos int) uint64 {
	x := h ^ (uint64(uint32(t)) << 20) ^ uint64(pos)*0x9E3779B97F4A7C15
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return x
}

// fakeLogits appends the logits after history hash h: uniform in [-4, 4).
func fakeLogits(dst []float32, h uint64, vocab int) []float32 {
	for v := range vocab {
		x := fakeMix(h, int32(v), -1)
		dst = append(dst, float32(x>>40)/float32(1<<24)*8-4)
	}
	return dst
}

// appendLogits appends the logits after history hash h, with a draft's
// noise.
func (f *FakeRunner) appendLogits(dst []float32, h uint64) []float32 {
	n := len(dst)
	dst = fakeLogits(dst, h, f.spec.Vocab)
	if f.noise != 0 {
		for v := range f.spec.Vocab {
			x := fakeMix(h^f.salt, int32(v), -2)
			dst[n+v] += f.noise * (float32(x>>40)/float32(1<<23) - 1)
		}
	}
	return dst
}

// Logits returns the fake model's logits after the given tokens.
func (f *FakeRunner) Logits(history []int32) []float32 {
	h := fakeSeed
	for pos, t := range history {
		h = fakeMix(h, t, pos)
	}
	return f.appendLogits(nil, h)
}

// Generate returns the greedy continuation of prompt, computed without a
// cache: at most maxTokens tokens, ending early after EOS unless
// ignoreEOS, and at MaxPositions.
func (f *FakeRunner) Generate(prompt []int32, maxTokens int, ignoreEOS bool) []int32 {
	h := fakeSeed
	for pos, t := range prompt {
		h = fakeMix(h, t, pos)
	}
	var out []int32
	row := make([]float32, 0, f.spec.Vocab)
	for len(out) < maxTokens && len(prompt)+len(out) < f.spec.MaxPositions {
		t := argmax(f.appendLogits(row[:0], h))
		out = append(out, t)
		if t == FakeEOS && !ignoreEOS {
			break
		}
		h = fakeMix(h, t, len(prompt)+len(out)-1)
	}
	return out
}

var (
	fakeTokOnce sync.Once
	fakeTok     *tokenizer.Tokenizer
	fakeTokErr  error
)

// FakeTokenizer returns a byte-level tokenizer that matches the fake
// model: token b < 256 is byte b, <s> is 256 and added by Encode with
// special tokens, </s> is 257 (EOS). Its chat template writes each
// message as "<s>role: content\n" and the generation prompt
// "assistant:".
func FakeTokenizer() *tokenizer.Tokenizer {
	fakeTokOnce.Do(func() {
		fakeTok, fakeTokErr = tokenizer.FromJSON(fakeTokenizerJSON())
	})
	if fakeTokErr != nil {
		panic(fmt.Sprintf("infer: the fake tokenizer does not load: %v", fakeTokErr)) // a bug, not bad input
	}
	return fakeTok
}

func fakeTokenizerJSON() (data, config []byte) {
	// GPT-2's bytes_to_unicode: printable bytes map to themselves, the
	// others to U+0100 onwards.
	vocab := map[string]int{}
	n := 0
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = rune(256 + n)
			n++
		}
		vocab[string(r)] = b
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "special": true, "normalized": false,
			"single_word": false, "lstrip": false, "rstrip": false}
	}
	tok := map[string]any{
		"version":       "1.0",
		"added_tokens":  []any{special(256, "<s>"), special(257, "</s>")},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{256}, "tokens": []string{"<s>"}}},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	}
	cfg := map[string]any{
		"bos_token":     "<s>",
		"eos_token":     "</s>",
		"chat_template": "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
	}
	data, _ = json.Marshal(tok)
	config, _ = json.Marshal(cfg)
	return data, config
}
