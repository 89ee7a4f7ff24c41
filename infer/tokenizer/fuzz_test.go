package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func addCorpusSeeds(f *testing.F) {
	for _, s := range loadCorpus(f) {
		f.Add(s)
	}
	f.Add("\xff\xfe invalid \xe2\x82")
}

// FuzzRoundTrip checks Decode(Encode(s)) == s on Llama 3 (no normalizer),
// NFC(s) on Qwen3 for text without added tokens, and the tiny
// SentencePiece tokenizer for text without ▁ or its special tokens.
func FuzzRoundTrip(f *testing.F) {
	addCorpusSeeds(f)
	llama := loadFixture(f, "llama3")
	qwen := loadFixture(f, "qwen3")
	tiny := loadTiny(f, nil)
	f.Fuzz(func(t *testing.T, s string) {
		watch := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("slow input %q", s)) })
		defer watch.Stop()
		ids := llama.Encode(s, true)
		if !utf8.ValidString(s) {
			qwen.Encode(s, true)
			tiny.Encode(s, true)
			return
		}
		if got := llama.Decode(ids, false); got != s {
			t.Fatalf("llama3: Decode(Encode(%q)) = %q", s, got)
		}
		if got := qwen.Decode(qwen.Encode(s, false), false); !strings.Contains(s, "<") && got != norm.NFC.String(s) {
			t.Fatalf("qwen3: Decode(Encode(%q)) = %q", s, got)
		}
		tids := tiny.Encode(s, false)
		if !strings.Contains(s, "▁") && !strings.Contains(s, "<") {
			if got := tiny.Decode(tids, false); got != s {
				t.Fatalf("tiny: Decode(Encode(%q)) = %q (%v)", s, got, tids)
			}
		}
	})
}

// FuzzScanner checks the hand-written split scanners against Go's regexp.
func FuzzScanner(f *testing.F) {
	addCorpusSeeds(f)
	type pair struct{ hand, re matcher }
	var ms []pair
	for _, p := range []string{patternCL100K, patternQwen2, patternGPT2} {
		h, _ := newMatcher(p)
		r, err := newRegexMatcher(p)
		if err != nil {
			f.Fatal(err)
		}
		ms = append(ms, pair{h, r})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // Go's regexp and the scanner read invalid bytes differently
		}
		for _, m := range ms {
			if a, b := findSpans(s, m.hand, false), findSpans(s, m.re, false); !slices.Equal(a, b) {
				t.Fatalf("%q: hand %v, regexp %v", s, a, b)
			}
		}
	})
}

// FuzzFromJSON feeds malformed tokenizer.json files: loading may fail but
// never panics, and a loaded tokenizer encodes and decodes.
func FuzzFromJSON(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "tiny_sp", fileJSON))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]},
		"pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
		"added_tokens": [{"id": 3, "content": "<x>", "special": true, "lstrip": true, "rstrip": true}]}`))
	f.Add([]byte(`{"model": {"vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
		"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\s+(?!\\S)|\\s+"}, "behavior": "Contiguous", "invert": true}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := FromJSON(data, nil)
		if err != nil {
			return
		}
		ids := tk.Encode("ab <x> héllo  world\n\t12345 <s>", true)
		tk.Decode(append(ids, -1, 1<<30), false)
		d := tk.NewDecoder(ids, true)
		for _, id := range ids {
			d.Add(id)
		}
	})
}
