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

// TestTrainPlan: sluice train plan.yaml runs the plan's train: keys, a
// flag beside the plan overrides its key, and a mistake in the plan names
// its line, column and key.
func TestTrainPlan(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "rows.jsonl")
	if err := os.WriteFile(data, []byte(`{"input_ids":[1,2,3,4,5]}`+"\n"+`{"input_ids":[9,8,7]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fixture := filepath.Join("..", "..", "infer", "model", "testdata", "fixtures", "llama3")
	out := filepath.Join(dir, "out")
	plan := filepath.Join(dir, "sft.yaml")
	body := "name: sft-test\ntrain:\n  model: " + fixture + "\n  data: " + data + "\n  out: " + out +
		"\n  steps: 5\n  lr: 1e-3\n  batch_size: 2\n  max_seq_len: 8\n  lora: {rank: 2, alpha: 4, targets: [q_proj, o_proj]}\n"
	if err := os.WriteFile(plan, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), &env{stdout: &stdout, stderr: &stderr}, []string{"train", "--steps", "2", plan}); code != 0 {
		t.Fatalf("sluice train --steps 2 %s: exit %d: %s", plan, code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 2 {
		t.Errorf("%d steps printed, want --steps 2 over the plan's 5: %s", n, stdout.String())
	}
	ac, err := os.ReadFile(filepath.Join(out, "adapter", "adapter_config.json"))
	if err != nil || !strings.Contains(string(ac), `"o_proj"`) {
		t.Errorf("the plan's lora keys did not reach the adapter: %v %s", err, ac)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\ntrain:\n  model: m\n  data: d.jsonl\n  out: o\n  lora: {rank: two}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := runMain(context.Background(), &env{stdout: &stdout, stderr: &stderr}, []string{"train", bad}); code == 0 ||
		!strings.Contains(stderr.String(), `bad.yaml:6:16: train.lora.rank: "two" is not an integer`) {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
}
