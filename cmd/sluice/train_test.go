package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/train"
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
	for _, extra := range [][]string{nil, {"--lora-rank", "2", "--shuffle=false", "--peak-flops", "1e9", "--logit-chunk", "2"}} {
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
			if _, ok := m["mfu"]; ok != (extra != nil) {
				t.Errorf("line %d: mfu present %v with --peak-flops %v: %s", i+1, ok, extra != nil, l)
			}
			if int(m["step"]) != i+1 || !(m["loss"] > 0) {
				t.Errorf("line %d: %s", i+1, l)
			}
		}
		// One progress line per step, the bar filling.
		for _, p := range []string{"[#######-------------] step 1/3 loss ", "[#############-------] step 2/3 loss ", "[####################] step 3/3 loss "} {
			if !strings.Contains(stderr.String(), p) {
				t.Errorf("no progress line %q on stderr: %s", p, stderr.String())
			}
		}
		if strings.Contains(stderr.String(), " mfu ") != (extra != nil) {
			t.Errorf("mfu on the progress line with --peak-flops %v: %s", extra != nil, stderr.String())
		}
		want := []string{"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "metrics.jsonl", "metrics.parquet"}
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

// TestTrainLossMasks: --prompt-column/--completion-column and --chat with
// --chat-loss reach train.Config: the first step's loss is the one
// train.Run computes with those fields, and it differs from the loss over
// every token.
func TestTrainLossMasks(t *testing.T) {
	dir := t.TempDir()
	fixture := filepath.Join("..", "..", "infer", "model", "testdata", "fixtures", "llama3")
	write := func(name string, rows []map[string]string) string {
		var b strings.Builder
		for _, r := range rows {
			js, _ := json.Marshal(r)
			b.Write(append(js, '\n'))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pairs := write("pairs.jsonl", []map[string]string{{"prompt": "the quick brown", "completion": " fox", "text": "the quick brown fox"},
		{"prompt": "hello", "completion": " world and more", "text": "hello world and more"}})
	conv := func(u, a string) string {
		js, _ := json.Marshal([]map[string]string{{"role": "user", "content": u}, {"role": "assistant", "content": a}})
		return string(js)
	}
	chats := write("chats.jsonl", []map[string]string{{"messages": conv("a b c", "d e")}, {"messages": conv("hello there", "the lazy dog")}})
	loss := func(data string, flags ...string) float64 {
		t.Helper()
		args := append([]string{"train", "--model", fixture, "--data", data, "--steps", "1", "--batch-size", "2", "--max-seq-len", "64",
			"--shuffle=false", "--out", filepath.Join(t.TempDir(), "out")}, flags...)
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), &env{stdout: &stdout, stderr: &stderr}, args); code != 0 {
			t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		var m train.Metrics
		if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, stdout.String())
		}
		return m.Loss
	}
	goLoss := func(data string, edit func(*train.Config)) float64 {
		t.Helper()
		c := train.DefaultConfig()
		c.Model, c.Out, c.Steps, c.BatchSize, c.MaxSeqLen, c.Shuffle = fixture, filepath.Join(t.TempDir(), "out"), 1, 2, 64, false
		edit(&c)
		var got float64
		c.OnStep = func(m train.Metrics) error { got = m.Loss; return nil }
		if err := train.Run(context.Background(), c, dataset.ReadJSONL(data)); err != nil {
			t.Fatal(err)
		}
		return got
	}
	pc := loss(pairs, "--prompt-column", "prompt", "--completion-column", "completion")
	if want := goLoss(pairs, func(c *train.Config) { c.PromptColumn, c.CompletionColumn = "prompt", "completion" }); pc != want {
		t.Errorf("--prompt-column/--completion-column: loss %v, train.Run %v", pc, want)
	}
	if whole := loss(pairs); whole == pc {
		t.Errorf("the completion-only loss equals the loss over the whole text (%v)", whole)
	}
	chat, all := loss(chats, "--chat"), loss(chats, "--chat", "--chat-loss", "all")
	if want := goLoss(chats, func(c *train.Config) { c.Chat = true }); chat != want {
		t.Errorf("--chat: loss %v, train.Run %v", chat, want)
	}
	if want := goLoss(chats, func(c *train.Config) { c.Chat, c.ChatLoss = true, "all" }); all != want || all == chat {
		t.Errorf("--chat-loss all: loss %v, train.Run %v, assistant-only %v", all, want, chat)
	}
}
