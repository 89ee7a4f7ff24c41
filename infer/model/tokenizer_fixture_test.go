package model

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

// The fixtures' tokenizer.json and tokenizer_config.json are small byte-level
// BPEs made here, not by transformers: 256 byte tokens, merges learned from
// tokCorpus until the ids reach the special tokens, which sit inside the
// model's vocabulary. TestFixtureTokenizers checks the committed files are
// what fixtureTokenizer makes; `go test ./infer/model/ -run
// TestFixtureTokenizers -args -update-tokenizers` rewrites them.
var updateTokenizers = flag.Bool("update-tokenizers", false, "rewrite the fixtures' tokenizer files")

// tokSpec describes one fixture's tokenizer.
type tokSpec struct {
	vocab    int              // the model's vocab_size: every id is below it
	byteBase int              // id of byte 0; bytes take byteBase..byteBase+255
	specials map[int32]string // added special tokens by id
	bos, eos string           // tokenizer_config.json's; bos "" adds none
	template string           // the Jinja chat template
}

var tokSpecs = map[string]tokSpec{
	"llama3": {
		vocab: 512,
		specials: map[int32]string{
			507: "<|start_header_id|>", 508: "<|end_header_id|>",
			509: "<|begin_of_text|>", 510: "<|end_of_text|>", 511: "<|eot_id|>",
		},
		bos: "<|begin_of_text|>", eos: "<|eot_id|>",
		template: "{{ bos_token }}{% for message in messages %}" +
			"{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}" +
			"{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
	},
	"llama2": {
		vocab: 384, byteBase: 3,
		specials: map[int32]string{0: "<unk>", 1: "<s>", 2: "</s>"},
		bos:      "<s>", eos: "</s>",
		template: "{{ bos_token }}{% for message in messages %}" +
			"{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
			"{% elif message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'] + '\n<</SYS>>\n\n' }}" +
			"{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}",
	},
	"qwen2": {
		vocab: 1024,
		specials: map[int32]string{
			1020: "<|endoftext|>", 1021: "<|im_end|>", 1022: "<|im_start|>",
		},
		eos: "<|im_end|>",
		template: "{% for message in messages %}" +
			"{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}" +
			"{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
	},
}

// tokCorpus is the text the merges are learned from.
const tokCorpus = `The quick brown fox jumps over the lazy dog. Hello world! Hello, how are you today?
I am fine, thank you. The model reads the prompt and writes the answer one token at a time.
A tokenizer turns text into token ids and back. The engine schedules sequences, the cache holds
keys and values, and the sampler picks the next token. user assistant system: you are a helpful
assistant. Write a short poem about the sea. The sea is blue and the sky is wide; the wind is
cold and the night is long. Numbers 0 1 2 3 4 5 6 7 8 9 10 100 2026, and some more words: data,
plan, step, infer, model, weights, layers, heads, attention, prompt, completion, finish, reason.`

// byteChars is GPT-2's bytes_to_unicode: printable bytes map to themselves,
// the others to U+0100 onwards.
func byteChars() [256]string {
	var out [256]string
	n := 0
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

// corpusWords splits text into words with their leading space, as GPT-2's
// pre-tokenizer roughly does.
func corpusWords(text string) []string {
	var words []string
	cur := ""
	flush := func() {
		if cur != "" {
			words = append(words, cur)
		}
		cur = ""
	}
	for _, r := range text {
		switch {
		case r == ' ':
			flush()
			cur = " "
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if cur != "" && cur != " " && !unicode.IsLetter([]rune(cur)[len([]rune(cur))-1]) && !unicode.IsDigit([]rune(cur)[len([]rune(cur))-1]) {
				flush()
			}
			cur += string(r)
		default:
			flush()
			words = append(words, string(r))
		}
	}
	flush()
	return words
}

// fixtureTokenizer makes a fixture's tokenizer.json and tokenizer_config.json.
func fixtureTokenizer(spec tokSpec) (tokJSON, cfgJSON []byte, err error) {
	bc := byteChars()
	vocab := map[string]int{}
	for b := range 256 {
		vocab[bc[b]] = spec.byteBase + b
	}
	next := spec.byteBase + 256
	limit := spec.vocab
	for id := range spec.specials {
		if int(id) >= spec.byteBase+256 && int(id) < limit {
			limit = int(id)
		}
	}
	// Learn merges: the most frequent adjacent pair, ties by the pair's text.
	var words [][]string
	for _, w := range corpusWords(tokCorpus) {
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, bc[b])
		}
		words = append(words, syms)
	}
	var merges []string
	for next < limit {
		counts := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				counts[[2]string{w[i], w[i+1]}]++
			}
		}
		var best [2]string
		bestN := 0
		for p, n := range counts {
			if n > bestN || n == bestN && p[0]+" "+p[1] < best[0]+" "+best[1] {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merged := best[0] + best[1]
		if _, ok := vocab[merged]; ok {
			break
		}
		vocab[merged] = next
		next++
		merges = append(merges, best[0]+" "+best[1])
		for wi, w := range words {
			var out []string
			for i := 0; i < len(w); i++ {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out = append(out, merged)
					i++
					continue
				}
				out = append(out, w[i])
			}
			words[wi] = out
		}
	}
	ids := make([]int32, 0, len(spec.specials))
	for id := range spec.specials {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	type added struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var addedTokens []added
	for _, id := range ids {
		addedTokens = append(addedTokens, added{ID: id, Content: spec.specials[id], Special: true})
	}
	post := any(map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true})
	if spec.bos != "" {
		var bosID int32 = -1
		for id, s := range spec.specials {
			if s == spec.bos {
				bosID = id
			}
		}
		post = map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": spec.bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": spec.bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": spec.bos, "type_id": 1}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{spec.bos: map[string]any{"id": spec.bos, "ids": []int32{bosID}, "tokens": []string{spec.bos}}},
		}
	}
	tok := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   addedTokens,
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": post,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges,
		},
	}
	cfg := map[string]any{
		"tokenizer_class":  "PreTrainedTokenizerFast",
		"model_max_length": 512,
		"add_bos_token":    spec.bos != "",
		"eos_token":        spec.eos,
		"chat_template":    spec.template,
	}
	if spec.bos != "" {
		cfg["bos_token"] = spec.bos
	}
	if tokJSON, err = marshal(tok); err != nil {
		return nil, nil, err
	}
	cfgJSON, err = marshal(cfg)
	return tokJSON, cfgJSON, err
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(v)
	return b.Bytes(), err
}

// TestFixtureTokenizers checks the committed tokenizer files against the
// generator and that they load, round-trip text and stay inside the
// model's vocabulary.
func TestFixtureTokenizers(t *testing.T) {
	for _, name := range []string{"llama3", "llama2", "qwen2"} {
		t.Run(name, func(t *testing.T) {
			spec := tokSpecs[name]
			tokJSON, cfgJSON, err := fixtureTokenizer(spec)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{"tokenizer.json": tokJSON, "tokenizer_config.json": cfgJSON}
			for file, want := range files {
				path := filepath.Join(fixtureDir(name), file)
				if *updateTokenizers {
					if err := os.WriteFile(path, want, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from what the generator makes: run with -update-tokenizers", path)
				}
			}
			tk, err := tokenizer.Load(fixtureDir(name))
			if err != nil {
				t.Fatal(err)
			}
			if tk.VocabSize() > spec.vocab {
				t.Errorf("tokenizer vocabulary %d exceeds the model's %d", tk.VocabSize(), spec.vocab)
			}
			text := "Hello world! The sea is blue, naïve café 2026."
			ids := tk.Encode(text, false)
			for _, id := range ids {
				if int(id) >= spec.vocab {
					t.Errorf("id %d outside the model's vocabulary %d", id, spec.vocab)
				}
			}
			if len(ids) >= len(text) {
				t.Errorf("%q encodes to %d ids: the merges do nothing", text, len(ids))
			}
			if got := tk.Decode(ids, true); got != text {
				t.Errorf("Decode(Encode(%q)) = %q", text, got)
			}
			chat, err := tk.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: "Hi"}}, true)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(chat, "Hi") {
				t.Errorf("chat template rendered %q", chat)
			}
			if _, ok := tk.EOS(); !ok {
				t.Errorf("eos_token %q has no id", spec.eos)
			}
		})
	}
}
