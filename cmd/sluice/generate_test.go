package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

// sluice generate reproduces transformers' greedy continuation of a fixture
// model, printed as one JSON object per completion.
func TestGenerateMatchesTransformers(t *testing.T) {
	dir := "../../infer/model/testdata/fixtures/llama3"
	data, err := os.ReadFile(dir + "/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		F32 struct {
			Greedy []struct {
				Prompt []int32 `json:"prompt"`
				Tokens []int32 `json:"tokens"`
			} `json:"greedy"`
		} `json:"f32"`
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	g := want.F32.Greedy[0]
	ids := make([]string, len(g.Prompt))
	for i, id := range g.Prompt {
		ids[i] = strconv.Itoa(int(id))
	}
	var out, errb bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, []string{
		"generate", "--model", dir, "--prompt-ids", strings.Join(ids, ","),
		"--max-tokens", strconv.Itoa(len(g.Tokens)), "--temperature", "0", "--seed", "1", "--ignore-eos", "--output", "json"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Text         *string `json:"text"`
		TokenIDs     []int32 `json:"token_ids"`
		FinishReason string  `json:"finish_reason"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if !slices.Equal(got.TokenIDs, g.Tokens) || got.FinishReason != "length" || got.Text == nil {
		t.Fatalf("got %+v\nwant tokens %v, finish_reason length", got, g.Tokens)
	}
}

// generateJSON runs sluice generate with args and returns its one JSON
// completion.
func generateJSON(t *testing.T, args ...string) genOutput {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, append([]string{"generate"}, args...))
	if code != 0 {
		t.Fatalf("sluice generate %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	var got genOutput
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	return got
}

type genOutput struct {
	Text         *string `json:"text"`
	TokenIDs     []int32 `json:"token_ids"`
	FinishReason string  `json:"finish_reason"`
	PromptTokens int     `json:"prompt_tokens"`
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// sluice generate --prompt tokenizes the text with the model directory's
// tokenizer (and --chat renders it with the chat template first): the
// completion is the one of --prompt-ids with those ids, and its text is
// their decoding.
func TestGenerateTextPrompt(t *testing.T) {
	dir := "../../infer/model/testdata/fixtures/llama3"
	tk, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	const text = "Hello world! The sea is blue."
	common := []string{"--model", dir, "--max-tokens", "12", "--temperature", "0", "--seed", "1", "--output", "json"}
	rendered, err := tk.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: text}}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		ids  []int32
	}{
		{"prompt", []string{"--prompt", text}, tk.Encode(text, true)},
		{"chat", []string{"--prompt", text, "--chat"}, tk.Encode(rendered, false)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := generateJSON(t, append(c.args, common...)...)
			want := generateJSON(t, append([]string{"--prompt-ids", joinIDs(c.ids)}, common...)...)
			if got.PromptTokens != len(c.ids) {
				t.Errorf("prompt_tokens %d, want %d (the ids of %q)", got.PromptTokens, len(c.ids), text)
			}
			if len(got.TokenIDs) == 0 || !slices.Equal(got.TokenIDs, want.TokenIDs) || got.FinishReason != want.FinishReason {
				t.Errorf("got %v (%s), want %v (%s) as with --prompt-ids %s",
					got.TokenIDs, got.FinishReason, want.TokenIDs, want.FinishReason, joinIDs(c.ids))
			}
			if got.Text == nil || *got.Text != tk.Decode(got.TokenIDs, true) {
				t.Errorf("text %q, want %q, the decoding of %v", deref(got.Text), tk.Decode(got.TokenIDs, true), got.TokenIDs)
			}
		})
	}
	if rendered == text || !strings.Contains(rendered, "<|start_header_id|>user") {
		t.Errorf("the chat template rendered %q", rendered)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
