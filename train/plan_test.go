package train

import (
	"errors"
	"slices"
	"testing"
)

func TestParsePlan(t *testing.T) {
	p, err := ParsePlan("sft.yaml", []byte(`name: sft
train:
  model: m
  data: s3://b/rows/
  format: parquet
  out: s3://b/out
  steps: 7
  lr: 2e-4
  seed: 3
  shuffle: false
  lora: {rank: 4, alpha: 8, targets: [q_proj, k_proj]}
  lr_schedule: cosine
  prompt_column: q
  completion_column: a
`))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	if p.Name != "sft" || p.Data != "s3://b/rows/" || p.Format != "parquet" || c.Model != "m" || c.Out != "s3://b/out" ||
		c.Steps != 7 || c.LR != 2e-4 || c.Seed != 3 || c.Shuffle || c.LoRARank != 4 || c.LoRAAlpha != 8 ||
		!slices.Equal(c.LoRATargets, []string{"q_proj", "k_proj"}) || c.LRSchedule != "cosine" || c.PromptColumn != "q" || c.CompletionColumn != "a" || c.BatchSize != DefaultConfig().BatchSize {
		t.Errorf("parsed %+v into %+v", p, c)
	}
	for _, tc := range []struct{ body, want string }{
		{"name: x\n", "p.yaml:1:1: train: missing: the run's model, data, out and hyperparameters"},
		{"name: x\ntrain:\n  model: m\n  out: o\n", "p.yaml:3:3: train.data: required"},
		{"name: x\ntrain:\n  model: m\n  data: d\n  out: o\n  lr: fast\n", `p.yaml:6:7: train.lr: "fast" is not a finite number`},
		{"name: x\ntrain:\n  model: m\n  data: d\n  out: o\n  batchsize: 2\n", "p.yaml:6:3: train.batchsize: unknown key; want one of batch_size, chat, chat_loss, checkpoint_every, completion_column, data, device, format, grad_accum, ids_column, logit_chunk, lora, lr, lr_schedule, max_grad_norm, max_seq_len, model, optimizer, out, peak_flops, precision, prompt_column, resume, seed, shuffle, shuffle_buffer, steps, text_column, warmup_steps, weight_decay"},
		{"name: x\ntrain:\n  model: m\n  data: d\n  out: o\n  lora: {rank: 2, dropout: 0.1}\n", "p.yaml:6:19: train.lora.dropout: unknown key; want one of alpha, rank, targets"},
		{"name: x\nwrite: {parquet: o}\n", "p.yaml:2:1: write: unknown key; a training plan has name, description and train"},
	} {
		_, err := ParsePlan("p.yaml", []byte(tc.body))
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrConfig) {
			t.Errorf("%q:\n got %v\nwant %s", tc.body, err, tc.want)
		}
	}
}
