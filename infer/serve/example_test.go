package serve_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve"
)

func Example() {
	// A fake model and tokenizer; infer.Load(dir, ...) gives a real one's.
	e, err := engine.New(engine.NewFakeRunner(256), engine.FakeTokenizer(), engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	cfg := serve.DefaultConfig()
	cfg.ModelName = "fake"
	s, err := serve.New(e, engine.FakeTokenizer(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	// s.Run(ctx, listener) serves until ctx ends, then drains.
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	resp, err := http.Post(hs.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"model": "fake", "prompt": "Hello", "max_tokens": 5, "ignore_eos": true, "n": 2}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Object  string
		Choices []struct {
			Index        int
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, out.Object, len(out.Choices), out.Choices[1].FinishReason, out.Usage.PromptTokens, out.Usage.CompletionTokens)
	// Output:
	// 200 text_completion 2 length 6 10
}
