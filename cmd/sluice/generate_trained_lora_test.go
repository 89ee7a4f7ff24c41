package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGenerateTrainedLoRA: the PEFT adapter a short `sluice train
// --lora-rank` run writes, served unmerged over the base model with
// --lora-modules name=DIR --lora name, gives the tokens of the merged
// model the same run writes beside it (and not the base model's, so the
// adapter is in use).
func TestGenerateTrainedLoRA(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "rows.jsonl")
	var rows strings.Builder
	for _, ids := range [][]int{{1, 17, 30, 42, 9, 5, 17, 30}, {4, 4, 8, 15, 16, 23, 42}, {100, 200, 300, 400, 100, 200}} {
		js, _ := json.Marshal(map[string][]int{"input_ids": ids})
		rows.Write(append(js, '\n'))
	}
	if err := os.WriteFile(data, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(fixtures, "llama3")
	out := filepath.Join(dir, "out")
	args := []string{"train", "--model", base, "--data", data, "--steps", "8", "--lr", "3e-2", "--batch-size", "3",
		"--max-seq-len", "16", "--out", out, "--device", "cpu", "--seed", "1", "--lora-rank", "4", "--lora-alpha", "8",
		"--lora-targets", "q_proj,v_proj,o_proj,up_proj,down_proj"}
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), &env{stdout: &stdout, stderr: &stderr}, args); code != 0 {
		t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	adapter := filepath.Join(out, "adapter")
	gen := []string{"--device", "cpu", "--prompt-ids", "1,17,30,42,9", "--max-tokens", "16", "--temperature", "0", "--ignore-eos", "--output", "json"}
	unmerged := generateJSON(t, append([]string{"--model", base, "--lora-modules", "trained=" + adapter, "--lora", "trained"}, gen...)...)
	merged := generateJSON(t, append([]string{"--model", out}, gen...)...)
	plain := generateJSON(t, append([]string{"--model", base}, gen...)...)
	if !slices.Equal(unmerged.TokenIDs, merged.TokenIDs) {
		t.Errorf("the trained adapter served unmerged: %v; the merged model: %v", unmerged.TokenIDs, merged.TokenIDs)
	}
	if slices.Equal(merged.TokenIDs, plain.TokenIDs) {
		t.Errorf("the trained model's tokens %v are the base model's: the run did not change the output, the test checks nothing", plain.TokenIDs)
	}
}
