package structured_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/serve/structured"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

const schema = `{"type": "object", "properties": {
	"name": {"type": "string", "maxLength": 8},
	"age": {"type": "integer"},
	"score": {"type": "number"},
	"tags": {"type": "array", "items": {"enum": ["a", "b", 3]}, "maxItems": 3},
	"ok": {"type": "boolean"},
	"nested": {"type": "object", "properties": {"x": {"type": "null"}}, "required": ["x"]}
}, "required": ["name", "age", "ok"]}`

func TestFeed(t *testing.T) {
	g, err := structured.Schema([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc       string
		ok, whole bool
	}{
		{`{"age":3,"name":"bo","ok":true}`, true, true},
		{`{"age":-3,"name":"b\"o\u00e9","nested":{"x":null},"ok":false,"score":1.5e-3,"tags":["a",3]}`, true, true},
		{`{"age":3,"name":"bo"`, true, false},
		{`{"name":"bo","age":3,"ok":true}`, false, false}, // sorted order only
		{`{"age":3,"ok":true}`, false, false},             // name is required
		{`{"age":3.5`, false, false},
		{`{"age":3,"name":"123456789"`, false, false}, // maxLength
		{`{"age":3,"name":"x","ok":true,"tags":["c"]`, false, false},
		{`{"age":3,"name":"x","ok":true,"tags":["a","b",3,"a"]`, false, false},
		{`{"age":01`, false, false},
		{`{"age":3,"name":"x","ok":true} `, false, false},
		{`{ "age":3`, false, false},
	} {
		p := g.Start()
		if ok := p.Feed([]byte(tc.doc)); ok != tc.ok || ok && p.Done() != tc.whole {
			t.Errorf("%s: fed %v done %v, want %v %v", tc.doc, ok, p.Done(), tc.ok, tc.whole)
		}
	}
	p := structured.Object().Start()
	if !p.Feed([]byte(`{"a":[1,{"b":null},"x",true,-0.5E+2],"c":{}}`)) || !p.Done() {
		t.Errorf("json_object rejects a valid object")
	}
	if p := structured.Object().Start(); p.Feed([]byte(`[1]`)) {
		t.Errorf("json_object accepts an array")
	}
	for _, bad := range []string{`{"anyOf": []}`, `{"type": "object", "properties": {"a": {"$ref": "#/x"}}}`, `{"type": "date"}`, `[]`, `{"type": "string", "minLength": 5, "maxLength": 2}`} {
		if _, err := structured.Schema([]byte(bad)); !errors.Is(err, structured.ErrSchema) {
			t.Errorf("Schema(%s): %v, want ErrSchema", bad, err)
		}
	}
}

// validate checks a document against the test schema.
func validate(t *testing.T, doc string) {
	t.Helper()
	var v struct {
		Name   *string  `json:"name"`
		Age    *int     `json:"age"`
		Score  *float64 `json:"score"`
		Tags   []any    `json:"tags"`
		OK     *bool    `json:"ok"`
		Nested *struct {
			X any `json:"x"`
		} `json:"nested"`
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	if v.Name == nil || v.Age == nil || v.OK == nil || len([]rune(*v.Name)) > 8 || len(v.Tags) > 3 {
		t.Fatalf("%s does not validate", doc)
	}
}

// TestMaskRandomWalks draws random tokens among those the mask allows,
// over a real tokenizer, until only EOS is: the text always validates.
func TestMaskRandomWalks(t *testing.T) {
	tok, err := tokenizer.Load("../../model/testdata/fixtures/llama3")
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	v := structured.NewVocab(tok, 512, []int32{eos})
	g, err := structured.Schema([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for walk := range 40 {
		gram := g
		if walk%2 == 1 {
			gram = structured.Object()
		}
		c := gram.Constraint(v)
		var out []int32
		for step := 0; ; step++ {
			mask := c.Allowed(out)
			var allowed []int32
			for id, ok := range mask {
				if ok {
					allowed = append(allowed, int32(id))
				}
			}
			if len(allowed) == 0 {
				t.Fatalf("walk %d: nothing allowed after %q", walk, tok.Decode(out, true))
			}
			// Prefer ending once allowed, so walks stay short.
			id := allowed[rng.IntN(len(allowed))]
			if mask[eos] && (step > 60 || rng.IntN(2) == 0) {
				id = eos
			}
			if id == eos {
				break
			}
			out = append(out, id)
			if step > 2000 {
				t.Fatalf("walk %d: no end after 2000 tokens: %q", walk, tok.Decode(out, true))
			}
		}
		doc := tok.Decode(out, true)
		if walk%2 == 0 {
			validate(t, doc)
		} else if !json.Valid([]byte(doc)) || doc[0] != '{' {
			t.Fatalf("json_object walk gave %q", doc)
		}
	}
}

func BenchmarkMask(b *testing.B) {
	tok, err := tokenizer.Load("../../model/testdata/fixtures/llama3")
	if err != nil {
		b.Fatal(err)
	}
	v := structured.NewVocab(tok, 512, []int32{511})
	g, _ := structured.Schema([]byte(schema))
	prefix := tok.Encode(`{"age":12,"name":"ab`, false)
	c := g.Constraint(v)
	c.Allowed(prefix)
	b.ResetTimer()
	for b.Loop() {
		c.Allowed(prefix) // the mask from the same state: one step's cost
	}
}

// BenchmarkMaskLlama3 is one step's mask over Llama 3's real vocabulary
// (128,256 tokens; the tokenizer tests cache it under .cache/tokenizers).
func BenchmarkMaskLlama3(b *testing.B) {
	tok, err := tokenizer.Load("../../../.cache/tokenizers/llama3")
	if err != nil {
		b.Skipf("the llama3 tokenizer is not cached (go test ./infer/tokenizer fetches it): %v", err)
	}
	eos, _ := tok.EOS()
	v := structured.NewVocab(tok, 128256, []int32{eos})
	g, _ := structured.Schema([]byte(schema))
	for _, state := range []string{`{"age":12,"name":"ab`, `{"age":1`, `{"age":12,`} {
		b.Run(state, func(b *testing.B) {
			prefix := tok.Encode(state, false)
			c := g.Constraint(v)
			c.Allowed(prefix)
			for b.Loop() {
				c.Allowed(prefix)
			}
		})
	}
}
