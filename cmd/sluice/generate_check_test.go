package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// generateFails runs sluice generate with args and returns its stderr,
// failing the test unless it exits 1.
func generateFails(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, append([]string{"generate"}, args...))
	if code != 1 {
		t.Fatalf("sluice generate %s: exit %d, stdout %s, stderr %s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return errb.String()
}

// TestGenerateChecks: --max-tokens 0 is an error (it made 16 tokens), a
// prompt whose tokens plus --max-tokens pass the context is an error
// naming the lengths (it was cut short with finish_reason "length"), and a
// text prompt without a tokenizer names the flags (it named PromptIDs).
func TestGenerateChecks(t *testing.T) {
	dir := "../../infer/model/testdata/fixtures/llama3"
	if got := generateFails(t, "--model", dir, "--prompt-ids", "1,2,3", "--max-tokens", "0"); !strings.Contains(got, "sluice generate: --max-tokens must be at least 1, got 0\n") {
		t.Errorf("max-tokens 0: %s", got)
	}
	got := generateFails(t, "--model", dir, "--prompt-ids", "1,2,3,4,5", "--max-model-len", "8", "--max-tokens", "10", "--ignore-eos")
	if want := "sluice generate: --prompt-ids #1: 5 prompt tokens + --max-tokens 10 = 15 tokens, past the max model length of 8: shorten the prompt, lower --max-tokens or raise --max-model-len\n"; !strings.HasSuffix(got, want) {
		t.Errorf("too long:\n%s\nwant %s", got, want)
	}
	// A prompt that fits with its completion still runs.
	if g := generateJSON(t, "--model", dir, "--prompt-ids", "1,2,3,4,5", "--max-model-len", "8", "--max-tokens", "3", "--ignore-eos", "--output", "json"); len(g.TokenIDs) != 3 {
		t.Errorf("fitting prompt: %+v", g)
	}

	bare := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bare, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got = generateFails(t, "--model", bare, "--prompt", "hello")
	if want := "sluice generate: --prompt needs a tokenizer, and " + bare + " has no tokenizer.json: give --tokenizer DIR, or the prompt as token ids with --prompt-ids\n"; !strings.HasSuffix(got, want) {
		t.Errorf("no tokenizer:\n%s\nwant %s", got, want)
	}
}
