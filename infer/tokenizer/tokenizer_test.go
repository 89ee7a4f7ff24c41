package tokenizer

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func loadTiny(tb testing.TB, edit func(m map[string]any)) *Tokenizer {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "tiny_sp", fileJSON))
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join("testdata", "tiny_sp", fileConfig))
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			tb.Fatal(err)
		}
		edit(m)
		if data, err = json.Marshal(m); err != nil {
			tb.Fatal(err)
		}
	}
	t, err := FromJSON(data, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func model(m map[string]any) map[string]any { return m["model"].(map[string]any) }

// TestTinySentencePiece checks hand-computed ids of testdata/tiny_sp: merges
// in rank order, byte fallback, unk fusing, ignore_merges, special tokens
// split before normalization, and the decoder chain.
func TestTinySentencePiece(t *testing.T) {
	tk := loadTiny(t, nil)
	cases := []struct {
		text    string
		special bool
		want    []int32
		decoded string // Decode(want, false)
	}{
		// "▁hello▁world": ▁h, ll, ▁he, ▁hell, ▁hello; or, ▁w, ▁wor, ▁worl, ▁world.
		{"hello world", false, []int32{271, 276}, "hello world"},
		{"hello world", true, []int32{1, 271, 276}, "<s> hello world"},
		// é is not in the vocab: its bytes C3 A9 are <0xC3> <0xA9> (3+byte).
		{"héllo", false, []int32{267, 3 + 0xC3, 3 + 0xA9, 268, 263}, "héllo"},
		// <s> is split off before the normalizer prepends ▁ to "hi".
		{"<s>hi", false, []int32{1, 267, 3 + 'i'}, "<s> hi"},
		{"hw", false, []int32{267, 264}, "hw"},
		{"", true, []int32{1}, "<s>"},
		{"  ", false, []int32{259, 259, 259}, "  "},
	}
	for _, c := range cases {
		got := tk.Encode(c.text, c.special)
		if !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q, %v) = %v, want %v", c.text, c.special, got, c.want)
		}
		if d := tk.Decode(c.want, false); d != c.decoded {
			t.Errorf("Decode(%v) = %q, want %q", c.want, d, c.decoded)
		}
	}
	if d := tk.Decode([]int32{1, 271, 276, 2}, true); d != "hello world" {
		t.Errorf("Decode skipping specials = %q", d)
	}
	// A lone invalid byte decodes to one U+FFFD per byte (ByteFallback).
	if d := tk.Decode([]int32{271, 3 + 0xC3, 3 + 0xC3}, false); d != "hello\uFFFD\uFFFD" {
		t.Errorf("Decode of invalid bytes = %q", d)
	}

	noFallback := loadTiny(t, func(m map[string]any) { model(m)["byte_fallback"] = false })
	// é and ï become <unk>, fused into one.
	if got, want := noFallback.Encode("héïllo", false), []int32{267, 0, 268, 263}; !slices.Equal(got, want) {
		t.Errorf("unk fused: got %v, want %v", got, want)
	}
	noFuse := loadTiny(t, func(m map[string]any) {
		model(m)["byte_fallback"] = false
		model(m)["fuse_unk"] = false
	})
	if got, want := noFuse.Encode("héïllo", false), []int32{267, 0, 0, 268, 263}; !slices.Equal(got, want) {
		t.Errorf("unk not fused: got %v, want %v", got, want)
	}
	ignore := loadTiny(t, func(m map[string]any) { model(m)["ignore_merges"] = true })
	if got, want := ignore.Encode("hw", false), []int32{277}; !slices.Equal(got, want) {
		t.Errorf("ignore_merges: got %v, want %v", got, want)
	}
	if id, ok := tk.BOS(); !ok || id != 1 {
		t.Errorf("BOS = %d, %v", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 2 {
		t.Errorf("EOS = %d, %v", id, ok)
	}
	if tk.VocabSize() != 278 {
		t.Errorf("VocabSize = %d", tk.VocabSize())
	}
}

// TestAddedTokenFlags checks lstrip, rstrip, single_word and normalized
// matching against tokenizers' own test cases (added_vocabulary.rs).
func TestAddedTokenFlags(t *testing.T) {
	tk := loadTiny(t, func(m map[string]any) {
		m["normalizer"] = map[string]any{"type": "Lowercase"}
		m["pre_tokenizer"] = map[string]any{"type": "WhitespaceSplit"}
		m["added_tokens"] = []any{
			map[string]any{"id": 300, "content": "my", "lstrip": true, "rstrip": true, "normalized": true, "special": false, "single_word": false},
			map[string]any{"id": 301, "content": "name", "normalized": false, "special": false},
			map[string]any{"id": 302, "content": "ony", "single_word": true, "normalized": true, "special": false},
			map[string]any{"id": 303, "content": "[CLS]", "normalized": false, "special": true},
			map[string]any{"id": 304, "content": "<mask>", "single_word": true, "normalized": false, "special": false},
		}
	})
	var got []string
	for _, sg := range extract(nil, "[CLS] My name is Anthony <mask> A<mask> <mask>ony <mask>", true, tk.rawTrie, tk.added) {
		if sg.id >= 0 {
			got = append(got, sg.s+"=tok")
			continue
		}
		for _, ns := range extract(nil, tk.norm.normalize(sg.s), sg.first, tk.normTrie, tk.added) {
			if ns.id >= 0 {
				got = append(got, ns.s+"=tok")
			} else {
				got = append(got, ns.s)
			}
		}
	}
	// "ony" inside "anthony" is no single word; after "<mask>" it is (">"
	// is no word char). "<mask>" glued to "A" or "ony" is not.
	want := []string{"[CLS]=tok", " my =tok", "name=tok", " is anthony ", "<mask>=tok", " a<mask> <mask>", "ony=tok", " ", "<mask>=tok"}
	if !slices.Equal(got, want) {
		t.Errorf("segments:\n got %q\nwant %q", got, want)
	}
	ids := tk.Encode("[CLS] my x", false)
	if want := []int32{303, 300, 3 + 'x'}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
}

// TestScannerMatchesRegexp checks the hand-written pre-tokenizer scanners
// against Go's regexp running the same patterns (lookahead handled apart),
// on adversarial strings.
func TestScannerMatchesRegexp(t *testing.T) {
	alphabet := []string{" ", "  ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "a", "B", "é", "ſ", "世", "1", "٣", "½",
		"'", "s", "S", "t", "re", "VE", "m", "ll", "LL", "d", "!", ".", "😀", "\u0301", "_", "-", "\x00"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pat := range []string{patternCL100K, patternQwen2, patternGPT2} {
		re, err := newRegexMatcher(pat)
		if err != nil {
			t.Fatal(err)
		}
		hand, _ := newMatcher(pat)
		for i := 0; i < 3000; i++ {
			var sb strings.Builder
			for n := rng.IntN(12); n >= 0; n-- {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			s := sb.String()
			a, b := findSpans(s, hand, false), findSpans(s, re, false)
			if !slices.Equal(a, b) {
				t.Fatalf("pattern %q on %q:\nhand   %v\nregexp %v", pat, s, a, b)
			}
		}
	}
}

func TestSplitExamples(t *testing.T) {
	hand, _ := newMatcher(patternCL100K)
	cases := map[string][]string{
		"Hello world":        {"Hello", " world"},
		"a  b":               {"a", " ", " b"},
		"a \n\n  b":          {"a", " \n\n", " ", " b"},
		"x   ":               {"x", "   "},
		"12345 don't DON'T":  {"123", "45", " don", "'t", " DON", "'T"},
		"\tword (ok)!!\n\nx": {"\tword", " (", "ok", ")!!\n\n", "x"},
	}
	for in, want := range cases {
		var got []string
		for _, sp := range findSpans(in, hand, false) {
			got = append(got, in[sp.s:sp.e])
		}
		if !slices.Equal(got, want) {
			t.Errorf("split %q = %q, want %q", in, got, want)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := map[string]string{
		"abc":                  "abc",
		"\xe2\x82":             "\uFFFD", // truncated 3-byte sequence: one maximal subpart
		"\xe2\x82x":            "\uFFFDx",
		"\xff\xfe":             "\uFFFD\uFFFD",
		"\xed\xa0\x80":         "\uFFFD\uFFFD\uFFFD", // surrogate: ED is followed by an out-of-range byte
		"\xf0\x9f\x98":         "\uFFFD",
		"\xf0\x9f\x98\x80\x80": "😀\uFFFD",
		"\xc0\xaf":             "\uFFFD\uFFFD",
	}
	for in, want := range cases {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecoders(t *testing.T) {
	if got := (metaspaceDec{repl: '▁', scheme: prependAlways}).decodeChain([]string{"▁Hey", "▁friend▁"}); !slices.Equal(got, []string{"Hey", " friend "}) {
		t.Errorf("metaspace = %q", got)
	}
	if got := (stripDec{content: ' ', start: 1, stop: 1}).decodeChain([]string{"  a  ", " "}); !slices.Equal(got, []string{" a ", ""}) {
		t.Errorf("strip = %q", got)
	}
	if got := (byteFallbackDec{}).decodeChain([]string{"<0x61>", "<0xC3>", "<0xA9>", "x", "<0xE9>"}); !slices.Equal(got, []string{"aé", "x", "\uFFFD"}) {
		t.Errorf("byte fallback = %q", got)
	}
}

func TestUnsupported(t *testing.T) {
	cases := []struct {
		edit func(m map[string]any)
		msg  string
	}{
		{func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Foo"} },
			`tokenizer: tokenizer.json: pre_tokenizer.type "Foo" is not supported`},
		{func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Digits"}, map[string]any{"type": "BertPreTokenizer"}}}
		}, `tokenizer: tokenizer.json: pre_tokenizer.pretokenizers[1].type "BertPreTokenizer" is not supported`},
		{func(m map[string]any) { model(m)["type"] = "Unigram" },
			`tokenizer: tokenizer.json: model.type "Unigram" is not supported`},
		{func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Precompiled"} },
			`tokenizer: tokenizer.json: normalizer.type "Precompiled" is not supported`},
		{func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} },
			`tokenizer: tokenizer.json: decoder.type "WordPiece" is not supported`},
		{func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Split", "behavior": "Isolated", "invert": false,
				"pattern": map[string]any{"Regex": `a(?=b)`}}
		}, `tokenizer: tokenizer.json: pre_tokenizer.pattern.Regex "a(?=b)" is not supported`},
	}
	data, _ := os.ReadFile(filepath.Join("testdata", "tiny_sp", fileJSON))
	for _, c := range cases {
		var m map[string]any
		json.Unmarshal(data, &m)
		c.edit(m)
		b, _ := json.Marshal(m)
		_, err := FromJSON(b, nil)
		if err == nil || err.Error() != c.msg {
			t.Errorf("error = %v\n want %s", err, c.msg)
		}
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v does not wrap ErrUnsupported", err)
		}
	}
	if _, err := FromJSON([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`), nil); err == nil ||
		!strings.Contains(err.Error(), "model.merges[0]") {
		t.Errorf("bad merge error = %v", err)
	}
}

func TestGenericSplitBehaviors(t *testing.T) {
	p := piece{"a-b--c", true}
	cases := map[behavior][]string{
		removed:            {"a", "b", "c"},
		isolated:           {"a", "-", "b", "-", "-", "c"},
		mergedWithPrevious: {"a-", "b-", "-", "c"},
		mergedWithNext:     {"a", "-b", "-", "-c"},
		contiguous:         {"a", "-", "b", "--", "c"},
	}
	for b, want := range cases {
		var got []string
		for _, pc := range splitSpans(nil, p, findSpans(p.s, literalMatcher("-"), false), b) {
			got = append(got, pc.s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("behavior %d: %q, want %q", b, got, want)
		}
	}
	ms := metaspacePT{repl: "▁", scheme: prependFirst, splitOn: true}
	var got []string
	for _, pc := range ms.split(nil, piece{"Hey  friend", true}) {
		got = append(got, pc.s)
	}
	if want := []string{"▁Hey", "▁", "▁friend"}; !slices.Equal(got, want) {
		t.Errorf("metaspace split = %q, want %q", got, want)
	}
	if got := ms.split(nil, piece{"x", false}); got[0].s != "x" {
		t.Errorf("metaspace first on a later piece = %q", got[0].s)
	}
	_ = utf8.RuneError
}
