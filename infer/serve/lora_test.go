package serve_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model/loratest"
	"github.com/sluicehq/sluice/infer/serve"
)

// TestLoRARouting: the "model" field picks the base model or a LoRA
// adapter (loaded at start or through /v1/load_lora_adapter), the answer
// names it and holds the engine's tokens for that adapter; /v1/models
// lists adapters with the base as parent; an unknown model is a 404 in
// OpenAI's shape naming it; an unloaded adapter is gone.
func TestLoRARouting(t *testing.T) {
	cfg := serve.DefaultConfig()
	cfg.AllowRuntimeLoRA = true
	v := newEnv(t, cfg, func(c *engine.Config) { c.MaxLoRAs = 2 })
	root := t.TempDir()
	var dirs []string
	for i := range 2 {
		d := filepath.Join(root, fmt.Sprint("a", i))
		if err := loratest.Write(fixture, d, loratest.Spec{Rank: 8, Alpha: 16, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: uint64(20 + i)}); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	if err := v.e.LoadLoRA("sql", dirs[0]); err != nil {
		t.Fatal(err)
	}
	code, body := post(t, v.url+"/v1/load_lora_adapter", fmt.Sprintf(`{"lora_name": "chat", "lora_path": %q}`, dirs[1]))
	if code != 200 || !strings.Contains(string(body), "Success") {
		t.Fatalf("load_lora_adapter: %d %s", code, body)
	}

	resp, err := http.Get(v.url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var ml struct {
		Data []struct {
			ID     string  `json:"id"`
			Root   string  `json:"root"`
			Parent *string `json:"parent"`
		} `json:"data"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &ml); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ml.Data {
		ids = append(ids, d.ID)
		switch {
		case d.ID == "llama3" && d.Parent != nil:
			t.Errorf("the base model has parent %q", *d.Parent)
		case d.ID != "llama3" && (d.Parent == nil || *d.Parent != "llama3"):
			t.Errorf("adapter %s: parent %v, want llama3", d.ID, d.Parent)
		}
	}
	if !slices.Equal(ids, []string{"llama3", "sql", "chat"}) {
		t.Errorf("/v1/models lists %v, want [llama3 sql chat]", ids)
	}

	prompt := []int32{1, 17, 30, 42, 9, 5}
	texts := map[string]string{}
	for _, m := range []string{"llama3", "sql", "chat"} {
		code, body := post(t, v.url+"/v1/completions", fmt.Sprintf(`{"model": %q, "prompt": [1, 17, 30, 42, 9, 5], "temperature": 0, "max_tokens": 12, "ignore_eos": true, "return_token_ids": true}`, m))
		if code != 200 {
			t.Fatalf("model %s: %d %s", m, code, body)
		}
		var c completion
		var named struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(body, &named)
		if named.Model != m {
			t.Errorf("asked for %s, the answer names %q", m, named.Model)
		}
		lora := m
		if m == "llama3" {
			lora = ""
		}
		want := v.want(t, engine.Request{PromptIDs: prompt, LoRA: lora, Params: engine.SamplingParams{MaxTokens: 12, IgnoreEOS: true}})
		if !slices.Equal(c.Choices[0].TokenIDs, want[0].TokenIDs) {
			t.Errorf("model %s: tokens %v, the engine's with adapter %q %v", m, c.Choices[0].TokenIDs, lora, want[0].TokenIDs)
		}
		texts[m] = fmt.Sprint(want[0].TokenIDs)
	}
	if texts["sql"] == texts["llama3"] || texts["chat"] == texts["llama3"] {
		t.Errorf("an adapter gives the base model's tokens: %v", texts)
	}

	code, body = post(t, v.url+"/v1/chat/completions", `{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}`)
	if code != 404 || !strings.Contains(string(body), `"param":"model"`) || !strings.Contains(string(body), `the model \"nope\" does not exist; this server serves \"llama3\", \"sql\", \"chat\"`) {
		t.Errorf("unknown model: %d %s", code, body)
	}
	code, body = post(t, v.url+"/v1/load_lora_adapter", `{"lora_name": "x", "lora_path": "/nonexistent/adapter"}`)
	if code != 400 || !strings.Contains(string(body), "/nonexistent/adapter") {
		t.Errorf("loading a missing adapter: %d %s", code, body)
	}
	code, body = post(t, v.url+"/v1/unload_lora_adapter", `{"lora_name": "chat"}`)
	if code != 200 {
		t.Fatalf("unload_lora_adapter: %d %s", code, body)
	}
	code, _ = post(t, v.url+"/v1/completions", `{"model": "chat", "prompt": [1, 2], "max_tokens": 2}`)
	if code != 404 {
		t.Errorf("an unloaded adapter: %d, want 404", code)
	}
	code, body = post(t, v.url+"/v1/unload_lora_adapter", `{"lora_name": "chat"}`)
	if code != 404 || !strings.Contains(string(body), `\"chat\"`) {
		t.Errorf("unloading twice: %d %s", code, body)
	}

	off := newEnv(t, serve.DefaultConfig(), nil)
	code, body = post(t, off.url+"/v1/load_lora_adapter", fmt.Sprintf(`{"lora_name": "chat", "lora_path": %q}`, dirs[1]))
	if code != 404 || !strings.Contains(string(body), "--allow-runtime-lora-updating") {
		t.Errorf("runtime loading off: %d %s", code, body)
	}
}
