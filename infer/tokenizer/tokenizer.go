package tokenizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/storage"
)

// Tokenizer encodes text to token ids and back, as the tokenizers library
// does with the same tokenizer.json. It is safe for concurrent use.
type Tokenizer struct {
	model     *bpe
	norm      normalizer     // nil when none
	pre       []preTokenizer // flattened Sequence
	post      postProcessor  // nil when it adds nothing
	dec       decoder        // nil: tokens are joined with spaces
	added     []addedToken
	rawTrie   *trie // added tokens matched on the raw text
	normTrie  *trie // added tokens matched after normalization
	idToTok   []string
	hasTok    []bool
	special   []bool // by id: the token string is a special added token
	addedByID map[int32]string
	addedID   map[string]int32

	cfg  tokConfig
	chat *chatTemplate // nil without a template

	pool sync.Pool // *encodeState
}

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json
// and dir/chat_template.jinja (which overrides the config's template, as in
// transformers). dir is a local path or a URL that package storage serves
// (s3://bucket/prefix).
func Load(dir string) (*Tokenizer, error) { return LoadContext(context.Background(), dir) }

// LoadContext is Load with a context bounding the reads.
func LoadContext(ctx context.Context, dir string) (*Tokenizer, error) {
	data, err := readFile(ctx, storage.Join(dir, fileJSON))
	if err != nil {
		return nil, err
	}
	cfgData, err := readFile(ctx, storage.Join(dir, fileConfig))
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return nil, err
	}
	t, err := FromJSON(data, cfgData)
	if err != nil {
		return nil, err
	}
	tpl, err := readFile(ctx, storage.Join(dir, "chat_template.jinja"))
	switch {
	case err == nil:
		if err := t.setChatTemplate(string(tpl)); err != nil {
			return nil, fmt.Errorf("tokenizer: chat_template.jinja: %w", err)
		}
	case !errors.Is(err, storage.ErrNotExist):
		return nil, err
	}
	return t, nil
}

// readFile is storage.ReadPath with the package's prefix; a missing file
// is storage.ErrNotExist.
func readFile(ctx context.Context, path string) ([]byte, error) {
	b, err := storage.ReadPath(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return b, nil
}

// FromJSON builds a tokenizer from the contents of tokenizer.json and,
// optionally (nil or empty), tokenizer_config.json.
func FromJSON(data, configData []byte) (*Tokenizer, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", fileJSON, err)
	}
	root := &jobj{m: top}
	t := &Tokenizer{addedByID: map[int32]string{}, addedID: map[string]int32{}}
	if o, err := parseObj("truncation", top["truncation"]); err != nil || o != nil {
		return nil, errors.Join(err, root.unsupported("truncation", "set"))
	}
	if o, err := parseObj("padding", top["padding"]); err != nil || o != nil {
		return nil, errors.Join(err, root.unsupported("padding", "set"))
	}
	mo, err := parseObj("model", top["model"])
	if err != nil {
		return nil, err
	}
	if t.model, err = parseModel(mo); err != nil {
		return nil, err
	}
	if o, err := parseObj("normalizer", top["normalizer"]); err != nil {
		return nil, err
	} else if o != nil {
		if t.norm, err = parseNormalizer(o); err != nil {
			return nil, err
		}
	}
	if o, err := parseObj("pre_tokenizer", top["pre_tokenizer"]); err != nil {
		return nil, err
	} else if o != nil {
		if t.pre, err = parsePreTokenizer(nil, o); err != nil {
			return nil, err
		}
	}
	if o, err := parseObj("decoder", top["decoder"]); err != nil {
		return nil, err
	} else if o != nil {
		if t.dec, err = parseDecoder(o); err != nil {
			return nil, err
		}
	}
	if top["added_tokens"] != nil && string(top["added_tokens"]) != "null" {
		if err := json.Unmarshal(top["added_tokens"], &t.added); err != nil {
			return nil, badValue(fileJSON, "added_tokens", "a list of {id, content, ...}")
		}
	}
	if err := t.buildVocab(); err != nil {
		return nil, err
	}
	if o, err := parseObj("post_processor", top["post_processor"]); err != nil {
		return nil, err
	} else if o != nil {
		if t.post, err = parsePostProcessor(o, t.TokenID); err != nil {
			return nil, err
		}
	}
	// A ByteLevel step that ends the pipeline lets the model read raw bytes.
	if n := len(t.pre); n > 0 && t.model.prefix == "" && t.model.suffix == "" && !t.model.fallback {
		if bl, ok := t.pre[n-1].(byteLevelPT); ok {
			bl.raw = true
			t.pre[n-1] = bl
			t.model.setByteMode()
		}
	}
	if err := t.loadConfig(configData); err != nil {
		return nil, err
	}
	t.pool.New = func() any { return new(encodeState) }
	return t, nil
}

func (t *Tokenizer) buildVocab() error {
	maxID := int32(-1)
	for _, id := range t.model.vocab {
		maxID = max(maxID, id)
	}
	for i, a := range t.added {
		if a.ID < 0 {
			return badValue(fileJSON, fmt.Sprintf("added_tokens[%d].id", i), "a non-negative id")
		}
		maxID = max(maxID, a.ID)
	}
	// Ids index dense tables; refuse a sparse id far past the token count
	// rather than allocate for it.
	if count := len(t.model.vocab) + len(t.added); maxID >= 1<<20 && int(maxID) > 4*count {
		return badValue(fileJSON, "model.vocab", fmt.Sprintf("ids below %d for %d tokens, not %d", 4*count, count, maxID))
	}
	n := int(maxID) + 1
	t.idToTok = make([]string, n)
	t.hasTok = make([]bool, n)
	t.special = make([]bool, n)
	for tok, id := range t.model.vocab {
		if id < 0 {
			return badValue(fileJSON, "model.vocab", "non-negative ids")
		}
		t.idToTok[id], t.hasTok[id] = tok, true
	}
	specials := map[string]bool{}
	t.rawTrie, t.normTrie = newTrie(), newTrie()
	// tokenizers matches special tokens first, then the others, each in
	// file order; the trie keeps the first of equal patterns.
	for pass := 0; pass < 2; pass++ {
		for i, a := range t.added {
			if a.Special != (pass == 0) || a.Content == "" {
				continue
			}
			if a.Special {
				specials[a.Content] = true
			}
			t.addedByID[a.ID] = a.Content
			t.addedID[a.Content] = a.ID
			t.idToTok[a.ID], t.hasTok[a.ID] = a.Content, true
			if a.Normalized {
				c := a.Content
				if t.norm != nil {
					c = t.norm.normalize(c)
				}
				t.normTrie.insert(c, int32(i))
			} else {
				t.rawTrie.insert(a.Content, int32(i))
			}
		}
	}
	for id, tok := range t.idToTok {
		t.special[id] = t.hasTok[id] && specials[tok]
	}
	return nil
}

// encodeState is per-call scratch space, pooled.
type encodeState struct {
	segs, segs2 []segment
	a, b        []piece
	sc          scratch
}

// Encode returns the token ids of text. Added tokens in the text (such as
// "<|im_start|>") are always recognized; addSpecial runs the post-processor,
// which adds BOS and the like where tokenizer.json's post_processor says so.
// This is the tokenizers library's encode(text, add_special_tokens).
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	st := t.pool.Get().(*encodeState)
	defer t.pool.Put(st)
	out := make([]int32, 0, len(text)/4+4)
	st.segs = extract(st.segs[:0], text, true, t.rawTrie, t.added)
	for _, sg := range st.segs {
		if sg.id >= 0 {
			out = append(out, sg.id)
			continue
		}
		s := sg.s
		if t.norm != nil {
			s = t.norm.normalize(s)
		}
		st.segs2 = extract(st.segs2[:0], s, sg.first, t.normTrie, t.added)
		for _, ns := range st.segs2 {
			if ns.id >= 0 {
				out = append(out, ns.id)
				continue
			}
			out = t.encodeText(out, ns, st)
		}
	}
	if addSpecial && t.post != nil {
		out = t.post.process(out)
	}
	return out
}

// encodeText pre-tokenizes one normalized segment and runs the model.
func (t *Tokenizer) encodeText(out []int32, sg segment, st *encodeState) []int32 {
	st.a = append(st.a[:0], piece{sg.s, sg.first})
	for _, pt := range t.pre {
		st.b = st.b[:0]
		for _, p := range st.a {
			st.b = pt.split(st.b, p)
		}
		st.a, st.b = st.b, st.a
	}
	for _, p := range st.a {
		out = t.model.tokenize(p.s, out, &st.sc)
	}
	return out
}

// Decode returns the text of ids, skipping the special added tokens when
// skipSpecial is set. Unknown ids are skipped. This is the tokenizers
// library's decode, without transformers' clean_up_tokenization_spaces.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.idToTok) || !t.hasTok[id] {
			continue
		}
		if skipSpecial && t.special[id] {
			continue
		}
		toks = append(toks, t.idToTok[id])
	}
	if t.dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.dec.decodeChain(toks), "")
}

// VocabSize is one more than the largest token id, model and added tokens
// together: the smallest embedding table that covers every id.
func (t *Tokenizer) VocabSize() int { return len(t.idToTok) }

// TokenID returns the id of a token string, an added token's content or a
// model vocabulary entry (in its byte-level form for byte-level models).
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	if id, ok := t.addedID[s]; ok {
		return id, true
	}
	id, ok := t.model.vocab[s]
	return id, ok
}

// Token returns the string of an id, as TokenID spells it.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.idToTok) || !t.hasTok[id] {
		return "", false
	}
	return t.idToTok[id], true
}

// IsSpecial reports whether id is a special added token, which Decode skips
// with skipSpecial.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}
