package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/train"
)

// trainFlags are the values of sluice train's flags that are not Config
// fields as they stand.
type trainFlags struct {
	data, targets string
	workers       string
	seed          uint64
}

// bindTrain declares sluice train's flags over c and f, with d's defaults.
func bindTrain(fs *flag.FlagSet, c *train.Config, f *trainFlags, d train.Config) {
	fs.StringVar(&c.Model, "model", d.Model, "model directory (config.json, *.safetensors, tokenizer.json; local or s3://)")
	fs.StringVar(&f.data, "data", f.data, "JSONL or Parquet rows: a file, directory or glob, local or s3://")
	fs.IntVar(&c.Steps, "steps", d.Steps, "optimizer steps")
	fs.Float64Var(&c.LR, "lr", d.LR, "peak learning rate")
	fs.IntVar(&c.BatchSize, "batch-size", d.BatchSize, "rows per micro-batch")
	fs.IntVar(&c.MaxSeqLen, "max-seq-len", d.MaxSeqLen, "longer rows are cut to this many tokens")
	fs.StringVar(&c.Out, "out", d.Out, "directory for the trained model (Hugging Face layout), local or s3://")
	fs.IntVar(&c.LoRARank, "lora-rank", d.LoRARank, "train LoRA adapters of this rank instead of every weight (0: full fine-tune)")
	fs.Float64Var(&c.LoRAAlpha, "lora-alpha", d.LoRAAlpha, "LoRA alpha (the adapter is scaled by alpha/rank)")
	fs.StringVar(&f.targets, "lora-targets", strings.Join(d.LoRATargets, ","), "comma-separated module names LoRA adapts")
	fs.StringVar(&c.Device, "device", d.Device, "a gpu backend with backward ops: cpu or cuda")
	fs.StringVar(&c.Precision, "precision", d.Precision, "how the GEMMs compute: bf16 or tf32 (tensor cores, f32 weights and accumulation) or f32 (empty: bf16 on cuda, f32 on cpu)")
	fs.Uint64Var(&f.seed, "seed", d.Seed, "seed of the shuffle and the LoRA initialization")
	fs.BoolVar(&c.Shuffle, "shuffle", d.Shuffle, "shuffle the rows each epoch (--shuffle=false keeps file order)")
	fs.IntVar(&c.ShuffleBuffer, "shuffle-buffer", max(d.ShuffleBuffer, train.DefaultShuffleBuffer), "rows the shuffle mixes at a time (the data streams; it is never all held)")
	fs.StringVar(&c.TextColumn, "text-column", d.TextColumn, "column of text, tokenized with the model's tokenizer")
	fs.StringVar(&c.IDsColumn, "ids-column", d.IDsColumn, "column of token id lists (used when present)")
	fs.BoolVar(&c.Chat, "chat", d.Chat, "render the messages column with the tokenizer's chat template")
	fs.StringVar(&c.ChatLoss, "chat-loss", d.ChatLoss, "with --chat: assistant (loss on the assistant turns only) or all (every token)")
	fs.StringVar(&c.PromptColumn, "prompt-column", d.PromptColumn, "prompt/completion rows: the prompt column (no loss on its tokens; needs --completion-column)")
	fs.StringVar(&c.CompletionColumn, "completion-column", d.CompletionColumn, "prompt/completion rows: the completion column (the loss is on its tokens only)")
	fs.StringVar(&c.Optimizer, "optimizer", d.Optimizer, "adamw (betas 0.9, 0.999, eps 1e-8) or sgd (momentum 0.9)")
	fs.Float64Var(&c.WeightDecay, "weight-decay", d.WeightDecay, "decoupled weight decay (AdamW) or L2 (SGD)")
	fs.Float64Var(&c.MaxGradNorm, "max-grad-norm", d.MaxGradNorm, "clip gradients to this global norm (0: off)")
	fs.StringVar(&c.LRSchedule, "lr-schedule", d.LRSchedule, "constant, linear or cosine")
	fs.IntVar(&c.WarmupSteps, "warmup-steps", d.WarmupSteps, "linear warmup steps")
	fs.IntVar(&c.GradAccum, "grad-accum", d.GradAccum, "micro-batches per optimizer step")
	fs.Float64Var(&c.PeakFLOPS, "peak-flops", d.PeakFLOPS, "the device's peak FLOP/s for the MFU figure, 6·params·tokens/s over it (0: the device's own, if it reports one; else no MFU)")
	fs.IntVar(&c.LogitChunk, "logit-chunk", d.LogitChunk, "target rows per chunk of the fused LM head and cross-entropy (0: as many as 256 MiB of logits hold)")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", d.CheckpointEvery, "write OUT/checkpoint every N steps and at the end (0: never)")
	fs.StringVar(&f.workers, "workers", f.workers, "data-parallel: comma-separated host:port of every worker, the same list on each (empty: one worker)")
	fs.IntVar(&c.Rank, "rank", d.Rank, "data-parallel: this worker's index in --workers (rank 0 writes --out)")
	fs.StringVar(&c.Resume, "resume", d.Resume, "continue from this checkpoint directory (OUT/checkpoint of an earlier run), local or s3://")
}

func init() {
	var c train.Config
	var f trainFlags
	var tc trainCluster
	var fs *flag.FlagSet
	register(&command{
		name:    "train",
		args:    "[plan.yaml]",
		summary: "fine-tune a Hugging Face model on JSONL or Parquet rows (flags, or a plan's train: keys); one JSON object per step on stdout",
		flags: func(set *flag.FlagSet) {
			fs = set
			c = train.DefaultConfig()
			bindTrain(set, &c, &f, c)
			tc.bind(set)
			tc.bindStepDelay(set)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			format := ""
			switch len(args) {
			case 0:
			case 1:
				// A plan: its keys, then the flags given beside it.
				p, err := train.LoadPlan(ctx, args[0])
				if err != nil {
					return err
				}
				pc, pf := p.Config, trainFlags{data: p.Data, targets: strings.Join(p.Config.LoRATargets, ","), seed: p.Config.Seed,
					workers: strings.Join(p.Config.Workers, ",")}
				again := flag.NewFlagSet("train", flag.ContinueOnError)
				bindTrain(again, &pc, &pf, p.Config)
				var serr error
				fs.Visit(func(fl *flag.Flag) {
					if again.Lookup(fl.Name) == nil {
						return // a cluster flag (trainCluster)
					}
					if err := again.Set(fl.Name, fl.Value.String()); err != nil && serr == nil {
						serr = err
					}
				})
				if serr != nil {
					return serr
				}
				if pf.data != p.Data {
					p.Format = ""
				}
				c, f, format = pc, pf, p.Format
			default:
				return fmt.Errorf("train takes at most one argument, a plan file; got %q: %w", args, errUsage)
			}
			if f.data == "" {
				return fmt.Errorf("--data is required: %w", errUsage)
			}
			c.Seed = f.seed
			c.Workers = nil
			for a := range strings.SplitSeq(f.workers, ",") {
				if a = strings.TrimSpace(a); a != "" {
					c.Workers = append(c.Workers, a)
				}
			}
			c.LoRATargets = nil
			for t := range strings.SplitSeq(f.targets, ",") {
				if t = strings.TrimSpace(t); t != "" {
					c.LoRATargets = append(c.LoRATargets, t)
				}
			}
			if err := c.Validate(); err != nil {
				return err
			}
			if tc.ranks > 0 || fs.Lookup("coordinators").Value.String() != "" {
				return tc.run(ctx, e, fs, args, c.Out)
			}
			ds, err := train.OpenData(f.data, format)
			if err != nil {
				return fmt.Errorf("--data: %w: %w", err, errUsage)
			}
			enc := json.NewEncoder(e.stdout)
			c.Log = e.stderr
			c.OnStep = func(m train.Metrics) error {
				fmt.Fprintln(e.stderr, train.ProgressLine(m, c.Steps))
				defer tc.afterStep()
				return enc.Encode(m)
			}
			return train.Run(ctx, c, ds)
		},
	})
}
