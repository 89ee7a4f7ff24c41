package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var conversation = []Message{
	{Role: "system", Content: "You are helpful."},
	{Role: "user", Content: "Hi"},
	{Role: "assistant", Content: "Hello! How can I help?"},
	{Role: "user", Content: "What is 2+2?"},
}

// TestChatTemplates renders a two-turn conversation with the real templates
// and compares with strings written by following the template text.
func TestChatTemplates(t *testing.T) {
	qwen := loadFixture(t, "qwen3")
	llama := loadFixture(t, "llama3")
	cases := []struct {
		name string
		tk   *Tokenizer
		msgs []Message
		gen  bool
		vars map[string]any
		want string
	}{
		{"qwen3", qwen, conversation, true, nil,
			"<|im_start|>system\nYou are helpful.<|im_end|>\n" +
				"<|im_start|>user\nHi<|im_end|>\n" +
				"<|im_start|>assistant\nHello! How can I help?<|im_end|>\n" +
				"<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
				"<|im_start|>assistant\n"},
		{"qwen3 no thinking", qwen, conversation[1:2], true, map[string]any{"enable_thinking": false},
			"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"},
		// The last assistant turn after the last query gets an empty think
		// block; earlier reasoning is cut at </think>.
		{"qwen3 reasoning", qwen, []Message{
			{Role: "user", Content: "Hi"},
			{Role: "assistant", Content: "<think>\nplan\n</think>\n\nHello!"},
		}, false, nil,
			"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\nHello!<|im_end|>\n"},
		{"llama3", llama, conversation, true, nil,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n"},
		// Content is trimmed by the template's `| trim`.
		{"llama3 trim", llama, []Message{{Role: "user", Content: "  Hi \n"}}, true, nil,
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	}
	for _, c := range cases {
		got, err := c.tk.ApplyChatTemplateVars(c.msgs, c.gen, c.vars)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	// The rendered prompt encodes with the template's own BOS only.
	prompt, _ := llama.ApplyChatTemplate(conversation, true)
	ids := llama.Encode(prompt, false)
	if ids[0] != 128000 || ids[1] != 128006 || ids[len(ids)-1] == 128000 {
		t.Errorf("prompt ids start %v", ids[:4])
	}
}

// TestChatTemplateFeatures covers what transformers adds to Jinja and the
// settings it renders with (trim_blocks, lstrip_blocks).
func TestChatTemplateFeatures(t *testing.T) {
	tk := loadTiny(t, nil)
	src := `{%- set date = strftime_now("%d %b %Y") -%}
Date: {{ date }}
{% for m in messages %}
    {% if loop.index > 2 %}{% break %}{% endif %}
{{ m | tojson }}
{% endfor %}
{{ tools | tojson(indent=2) }}
{% if messages | length > 5 %}{{ raise_exception("too many messages") }}{% endif %}`
	if err := tk.setChatTemplate(src); err != nil {
		t.Fatal(err)
	}
	tk.chat.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	msgs := []Message{
		{Role: "user", Content: "Hi \"there\" ü\n"},
		{Role: "assistant", Content: "x", Extra: map[string]any{"tool_calls": []any{map[string]any{"name": "f", "arguments": map[string]any{"b": 1.5, "a": 2}}}}},
		{Role: "user", Content: "never shown"},
	}
	tools := []any{map[string]any{"type": "function", "function": map[string]any{"name": "f", "parameters": map[string]any{}}}}
	got, err := tk.ApplyChatTemplateVars(msgs, false, map[string]any{"tools": tools})
	if err != nil {
		t.Fatal(err)
	}
	want := "Date: 02 Jan 2026\n" +
		`{"role": "user", "content": "Hi \"there\" ü\n"}` + "\n" +
		`{"role": "assistant", "content": "x", "tool_calls": [{"arguments": {"a": 2, "b": 1.5}, "name": "f"}]}` + "\n" +
		"[\n  {\n    \"function\": {\n      \"name\": \"f\",\n      \"parameters\": {}\n    },\n    \"type\": \"function\"\n  }\n]\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	_, err = tk.ApplyChatTemplateVars(make([]Message, 6), false, map[string]any{"tools": tools})
	if err == nil || !strings.Contains(err.Error(), "too many messages") {
		t.Errorf("raise_exception: err = %v", err)
	}
	var none Tokenizer
	if _, err := none.ApplyChatTemplate(nil, true); !errors.Is(err, ErrNoChatTemplate) {
		t.Errorf("no template: %v", err)
	}
}

func TestChatTemplateConcurrent(t *testing.T) {
	tk := loadFixture(t, "qwen3")
	want, err := tk.ApplyChatTemplate(conversation, true)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got, err := tk.ApplyChatTemplate(conversation, true); err != nil || got != want {
					t.Errorf("concurrent render: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestLoadChatTemplateFile checks that chat_template.jinja overrides the
// config's template, as transformers does.
func TestLoadChatTemplateFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{fileJSON, fileConfig} {
		data, err := os.ReadFile(filepath.Join("testdata", "tiny_sp", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte("{% for m in messages %}{{ m.content }}|{% endfor %}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Jinja drops the template's single trailing newline.
	if got, err := tk.ApplyChatTemplate(conversation[:2], true); err != nil || got != "You are helpful.|Hi|" {
		t.Errorf("got %q, %v", got, err)
	}
	if err := tk.setChatTemplate("{% for %}"); err == nil {
		t.Error("a broken template parsed")
	}
}
