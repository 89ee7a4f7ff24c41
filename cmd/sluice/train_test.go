package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainCommand runs issue 20's contract end to end: text rows
// tokenized with the model's tokenizer, one JSON object per step on
// stdout, progress on stderr, and a model directory that sluice generate
// loads; with --lora-rank also the PEFT adapter.
func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "rows.jsonl")
	var rows strings.Builder
	for _, s := range []string{"the quick brown fox", "jumps over the lazy dog", "hello world", "a b c d e f g"} {
		js, _ := json.Marshal(map[string]string{"text": s})
		rows.Write(append(js, '\n'))
	}
	if err := os.WriteFile(data, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fixture := filepath.Join("..", "..", "infer", "model", "testdata", "fixtures", "llama3")
	for _, extra := range [][]string{nil, {"--lora-rank", "2", "--shuffle=false"}} {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"train", "--model", fixture, "--data", data, "--steps", "3", "--lr", "1e-3",
			"--batch-size", "3", "--max-seq-len", "16", "--out", out, "--device", "cpu", "--seed", "1",
			"--lr-schedule", "linear", "--warmup-steps", "1"}, extra...)
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), &env{stdout: &stdout, stderr: &stderr}, args); code != 0 {
			t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d stdout lines, want 3: %s", len(lines), stdout.String())
		}
		for i, l := range lines {
			var m map[string]float64
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %d: %v: %s", i+1, err, l)
			}
			for _, k := range []string{"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_sec"} {
				if _, ok := m[k]; !ok {
					t.Errorf("line %d has no %q: %s", i+1, k, l)
				}
			}
			if int(m["step"]) != i+1 || !(m["loss"] > 0) {
				t.Errorf("line %d: %s", i+1, l)
			}
		}
		if !strings.Contains(stderr.String(), "step 3/3") {
			t.Errorf("no progress on stderr: %s", stderr.String())
		}
		want := []string{"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "metrics.jsonl"}
		if extra != nil {
			want = append(want, "adapter/adapter_config.json", "adapter/adapter_model.safetensors")
		}
		for _, f := range want {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Error(err)
			}
		}
		got := generateJSON(t, "--model", out, "--prompt", "the quick", "--max-tokens", "4",
			"--temperature", "0", "--ignore-eos", "--output", "json", "--device", "cpu")
		if len(got.TokenIDs) != 4 {
			t.Errorf("generate from the trained model: %+v", got)
		}
	}
}
