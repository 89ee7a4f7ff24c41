package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/model/loratest"
)

// sluice generate --lora-modules name=DIR --lora name completes with the
// adapter: the tokens of the model with the adapter merged, and not the
// base model's; bad flags name themselves.
func TestGenerateLoRA(t *testing.T) {
	base := "../../infer/model/testdata/fixtures/llama3"
	root := t.TempDir()
	ad, merged := filepath.Join(root, "ad"), filepath.Join(root, "merged")
	if err := loratest.Write(base, ad, loratest.Spec{Rank: 8, Alpha: 16, Targets: []string{"q_proj", "v_proj", "up_proj"}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := loratest.Merge(base, ad, merged); err != nil {
		t.Fatal(err)
	}
	args := []string{"--prompt-ids", "1,17,30,42,9,5", "--max-tokens", "12", "--temperature", "0", "--ignore-eos", "--output", "json"}
	got := generateJSON(t, append([]string{"--model", base, "--lora-modules", "sql=" + ad, "--lora", "sql"}, args...)...)
	want := generateJSON(t, append([]string{"--model", merged}, args...)...)
	plain := generateJSON(t, append([]string{"--model", base, "--lora-modules", "sql=" + ad}, args...)...)
	if !slices.Equal(got.TokenIDs, want.TokenIDs) {
		t.Errorf("--lora sql: %v, the merged model's %v", got.TokenIDs, want.TokenIDs)
	}
	if slices.Equal(plain.TokenIDs, want.TokenIDs) {
		t.Errorf("without --lora the adapter's tokens %v: the base model should not use it", plain.TokenIDs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--lora-modules", "sql"}, `--lora-modules "sql": want name=DIR`},
		{[]string{"--lora-modules", "sql=" + ad, "--max-lora-rank", "4"}, "r (8) is larger than max_lora_rank (4)"},
		{[]string{"--lora-modules", "sql=" + ad, "--lora", "chat"}, `unknown LoRA adapter "chat" (loaded: sql)`},
	} {
		var out, errb bytes.Buffer
		code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, append(append([]string{"generate", "--model", base}, tc.args...), args...))
		if code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to say %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// sluice bench infer --random-loras N writes and loads N adapters and runs
// the requests over them in turn.
func TestBenchInferRandomLoRAs(t *testing.T) {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, []string{"bench", "infer",
		"--model", "../../infer/model/testdata/fixtures/llama3", "--device", "cpu", "--prompts", "8", "--min-len", "4", "--max-len", "8",
		"--max-tokens", "2", "--random-loras", "3", "--max-loras", "2", "--output", "json"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res struct {
		LoRAs        int `json:"loras"`
		OutputTokens int `json:"output_tokens"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.LoRAs != 3 || res.OutputTokens != 16 {
		t.Errorf("got %+v, want 3 adapters and 16 output tokens", res)
	}
}
