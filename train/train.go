package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer/tokenizer"
	"github.com/sluicehq/sluice/storage"
)

// Errors, matched with errors.Is; messages name the flag (Config field),
// the column or the file.
var (
	// ErrConfig: a Config field is out of range or inconsistent.
	ErrConfig = errors.New("train: invalid config")
	// ErrData: the dataset is empty, lacks the column, or has a null or
	// malformed row.
	ErrData = errors.New("train: invalid data")
	// ErrCheckpoint: a checkpoint to resume from is unreadable or was made
	// for another model or run.
	ErrCheckpoint = errors.New("train: invalid checkpoint")
)

// Metrics are one step's figures, reported after the step's update.
type Metrics struct {
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"` // mean cross-entropy of the step's batch, before its update
	LR           float64 `json:"lr"`
	GradNorm     float64 `json:"grad_norm"` // global L2 norm before clipping
	Tokens       int     `json:"tokens"`    // real (not padding) tokens of the step's rows
	TokensPerSec float64 `json:"tokens_per_sec"`
	// MFU is the step's model FLOPs utilization (metrics.go: 6·N·tokens/s
	// over the peak), absent when no peak is known.
	MFU float64 `json:"mfu,omitempty"`
	// Where the step's wall-clock seconds went: reading and batching rows,
	// the micro-batches' forward passes (through the loss and the LM
	// head's gradient) and the rest of their backward passes, the
	// optimizer (the norm, clipping and update), and the transfers between
	// host and device of weights and gradients (with the data-parallel
	// reduction) outside the passes. The device is waited for at the end of
	// each pass and of the optimizer, so queued work counts in its phase.
	TimeData      float64 `json:"time_data_s"`
	TimeForward   float64 `json:"time_forward_s"`
	TimeBackward  float64 `json:"time_backward_s"`
	TimeOptimizer float64 `json:"time_optimizer_s"`
	TimeTransfer  float64 `json:"time_transfer_s"`
}

// Config is one training run. The flag of `sluice train` that sets each
// field is in its comment.
type Config struct {
	Model     string  // --model: Hugging Face model directory (local or s3://)
	Out       string  // --out: directory for the trained model, local or s3://
	Steps     int     // --steps: optimizer steps in all (a resumed run counts the checkpoint's)
	LR        float64 // --lr
	BatchSize int     // --batch-size: rows per micro-batch
	MaxSeqLen int     // --max-seq-len: longer rows are cut
	LoRARank  int     // --lora-rank: 0 trains every weight
	// LoRAAlpha is --lora-alpha (the adapter's scale is alpha/rank);
	// LoRATargets --lora-targets, module names such as q_proj.
	LoRAAlpha   float64
	LoRATargets []string
	// Device is --device: a gpu backend whose Ops implement
	// gpu.BackwardOps (cpu; cuda once its backward kernels are in). Run
	// refuses one without them, naming it.
	Device string
	// Precision is --precision: how the device's f32 GEMMs (linear layers,
	// attention) compute: bf16 or tf32 on the tensor cores (f32 in and out,
	// f32 accumulation; the weights, gradients and optimizer stay f32), or
	// f32. Empty: bf16 where the device can (cuda), else f32 (cpu, which
	// computes f32 only and refuses bf16 and tf32).
	Precision string
	Seed      uint64 // --seed: shuffling
	Shuffle   bool   // --shuffle
	// ShuffleBuffer is --shuffle-buffer: how many rows the shuffle mixes
	// at a time (0: DefaultShuffleBuffer). The data streams; it is never
	// all held.
	ShuffleBuffer int

	TextColumn, IDsColumn string // --text-column, --ids-column
	Chat                  bool   // --chat: apply the chat template to the messages column
	// ChatLoss is --chat-loss: "assistant" (the default) computes the loss
	// on the assistant turns only (their text and end-of-turn tokens);
	// "all" on every token of the rendered conversation.
	ChatLoss string
	// PromptColumn and CompletionColumn are --prompt-column and
	// --completion-column: set both to train on prompt/completion pairs,
	// the loss on the completion's tokens only. A string is tokenized (the
	// prompt with the tokenizer's BOS, the completion with its EOS added);
	// a list of integers (Parquet) is taken as token ids.
	PromptColumn, CompletionColumn string

	Optimizer   string  // --optimizer: adamw or sgd
	WeightDecay float64 // --weight-decay
	MaxGradNorm float64 // --max-grad-norm: 0 turns clipping off
	LRSchedule  string  // --lr-schedule: constant, linear or cosine
	WarmupSteps int     // --warmup-steps
	GradAccum   int     // --grad-accum: micro-batches per step

	// Workers are the addresses (host:port) of a data-parallel run's
	// workers, the same list on each; Rank is this worker's index in it
	// (--workers, --rank). Each worker computes its share of every batch;
	// rank 0 writes the checkpoints, metrics and model.
	Workers []string
	Rank    int

	// PeakFLOPS is --peak-flops: the device's peak FLOP/s for MFU
	// (metrics.go); 0 takes the device's own figure, if it reports one.
	PeakFLOPS float64
	// LogitChunk is --logit-chunk: target rows per chunk of the fused LM
	// head and cross-entropy (0: as many as 256 MiB of f32 logits hold).
	LogitChunk int

	CheckpointEvery int    // --checkpoint-every: write Out/checkpoint every N steps (0: never)
	Resume          string // --resume: a checkpoint directory to continue from, local or s3://

	// OnStep, when set, receives every step's metrics; an error stops the
	// run and is returned.
	OnStep func(Metrics) error
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultConfig is `sluice train`'s defaults.
func DefaultConfig() Config {
	return Config{
		Steps: 100, LR: 1e-4, BatchSize: 8, MaxSeqLen: 512, Device: "cpu", Shuffle: true,
		TextColumn: "text", IDsColumn: "input_ids", ChatLoss: "assistant", Optimizer: "adamw", MaxGradNorm: 1.0,
		LRSchedule: "constant", GradAccum: 1, LoRAAlpha: 16, LoRATargets: DefaultLoRATargets,
	}
}

// Validate reports the first field that is out of range, named by its flag.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("train: %s: %w", fmt.Sprintf(format, args...), ErrConfig)
	}
	switch {
	case c.Model == "":
		return bad("--model is required")
	case c.Out == "":
		return bad("--out is required")
	case c.Steps <= 0:
		return bad("--steps (%d) must be positive", c.Steps)
	case math.IsNaN(c.LR) || math.IsInf(c.LR, 0) || c.LR < 0:
		return bad("--lr (%v) must be a finite non-negative number", c.LR)
	case c.BatchSize <= 0:
		return bad("--batch-size (%d) must be positive", c.BatchSize)
	case c.MaxSeqLen < 2:
		return bad("--max-seq-len (%d) must be at least 2", c.MaxSeqLen)
	case c.LoRARank < 0:
		return bad("--lora-rank (%d) must not be negative", c.LoRARank)
	case c.LoRARank > 0 && (math.IsNaN(c.LoRAAlpha) || c.LoRAAlpha <= 0):
		return bad("--lora-alpha (%v) must be positive", c.LoRAAlpha)
	case c.Device == "":
		return bad("--device must name a backend (cpu, cuda)")
	case c.Precision != "" && c.Precision != "bf16" && c.Precision != "tf32" && c.Precision != "f32":
		return bad("--precision %q: want bf16, tf32 or f32", c.Precision)
	case c.Optimizer != "adamw" && c.Optimizer != "sgd":
		return bad("--optimizer %q: want adamw or sgd", c.Optimizer)
	case math.IsNaN(c.WeightDecay) || c.WeightDecay < 0:
		return bad("--weight-decay (%v) must be non-negative", c.WeightDecay)
	case math.IsNaN(c.MaxGradNorm) || c.MaxGradNorm < 0:
		return bad("--max-grad-norm (%v) must be non-negative (0 turns clipping off)", c.MaxGradNorm)
	case c.LRSchedule != "constant" && c.LRSchedule != "linear" && c.LRSchedule != "cosine":
		return bad("--lr-schedule %q: want constant, linear or cosine", c.LRSchedule)
	case c.WarmupSteps < 0:
		return bad("--warmup-steps (%d) must not be negative", c.WarmupSteps)
	case c.Rank < 0 || c.Rank >= max(len(c.Workers), 1):
		return bad("--rank (%d) must be in [0, %d), one per address of --workers", c.Rank, max(len(c.Workers), 1))
	case c.ShuffleBuffer < 0:
		return bad("--shuffle-buffer (%d) must not be negative", c.ShuffleBuffer)
	case c.GradAccum <= 0:
		return bad("--grad-accum (%d) must be positive", c.GradAccum)
	case math.IsNaN(c.PeakFLOPS) || math.IsInf(c.PeakFLOPS, 0) || c.PeakFLOPS < 0:
		return bad("--peak-flops (%v) must be a finite non-negative number (0: the device's own figure)", c.PeakFLOPS)
	case c.LogitChunk < 0:
		return bad("--logit-chunk (%d) must not be negative", c.LogitChunk)
	case c.CheckpointEvery < 0:
		return bad("--checkpoint-every (%d) must not be negative", c.CheckpointEvery)
	case c.TextColumn == "" || c.IDsColumn == "":
		return bad("--text-column and --ids-column must not be empty")
	case (c.PromptColumn == "") != (c.CompletionColumn == ""):
		return bad("--prompt-column (%q) and --completion-column (%q) go together: set both or neither", c.PromptColumn, c.CompletionColumn)
	case c.PromptColumn != "" && c.Chat:
		return bad("--chat and --prompt-column: a row is a conversation or a prompt/completion pair, not both")
	case c.ChatLoss != "assistant" && c.ChatLoss != "all" && c.ChatLoss != "":
		return bad("--chat-loss %q: want assistant or all", c.ChatLoss)
	}
	return nil
}

// Run trains cfg.Model on the rows of ds and writes the model to cfg.Out.
// Everything is checked (config, model, data, the checkpoint to resume)
// before anything is written.
func Run(ctx context.Context, cfg Config, ds *dataset.Dataset) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	// Object storage: the run writes into a local staging directory and
	// publishes from it (remote.go).
	remote := ""
	if storage.IsURL(cfg.Out) {
		remote = cfg.Out
		stage, err := os.MkdirTemp("", "sluice-train-")
		if err != nil {
			return fmt.Errorf("train: staging --out %s: %w", remote, err)
		}
		defer os.RemoveAll(stage)
		cfg.Out = filepath.Join(stage, "out")
		if cfg.Resume != "" {
			// A resumed run appends to the metrics the remote directory has.
			fsys, err := storage.For(remote)
			if err != nil {
				return fmt.Errorf("train: --out %s: %w", remote, err)
			}
			b, err := storage.ReadFile(ctx, fsys, storage.Join(remote, "metrics.jsonl"))
			if err == nil {
				if err = os.MkdirAll(cfg.Out, 0o755); err == nil {
					err = os.WriteFile(filepath.Join(cfg.Out, "metrics.jsonl"), b, 0o644)
				}
			}
			if err != nil && !errors.Is(err, storage.ErrNotExist) {
				return fmt.Errorf("train: --out %s: metrics.jsonl: %w", remote, err)
			}
		}
	}
	if storage.IsURL(cfg.Resume) {
		dir, err := fetchDir(ctx, cfg.Resume)
		if err != nil {
			return fmt.Errorf("train: --resume %s: %w: %w", cfg.Resume, err, ErrCheckpoint)
		}
		defer os.RemoveAll(dir)
		cfg.Resume = dir
	}
	n, err := loadNet(ctx, cfg.Model, cfg.Device)
	if err != nil {
		return err
	}
	defer n.close()
	if err := n.setPrecision(cfg.Precision); err != nil {
		return err
	}
	n.chunk = cfg.LogitChunk
	peak, nParams := peakFLOPS(cfg, n.dev), countParams(n.params)
	if cfg.MaxSeqLen > n.cfg.MaxPositions {
		return fmt.Errorf("train: --max-seq-len (%d) is longer than the model's max_position_embeddings (%d): %w",
			cfg.MaxSeqLen, n.cfg.MaxPositions, ErrConfig)
	}
	if w := n.cfg.SlidingWindow; w > 0 && cfg.MaxSeqLen > w {
		return fmt.Errorf("train: --max-seq-len (%d) is longer than the model's sliding_window (%d): %w",
			cfg.MaxSeqLen, w, ErrConfig)
	}
	var tok *tokenizer.Tokenizer
	loadTok := func() (*tokenizer.Tokenizer, error) {
		if tok == nil {
			t, err := tokenizer.LoadContext(ctx, cfg.Model)
			if err != nil {
				return nil, fmt.Errorf("train: the text column needs the model's tokenizer: %w", err)
			}
			tok = t
		}
		return tok, nil
	}
	if ds == nil {
		return fmt.Errorf("train: no dataset: %w", ErrData)
	}
	var lora *loraSet
	if cfg.LoRARank > 0 {
		lora = newLoRA(n, cfg.LoRARank, cfg.LoRAAlpha, cfg.LoRATargets, cfg.Seed)
		if len(lora.adapts) == 0 {
			return fmt.Errorf("train: --lora-targets %v match no weight of the model: %w", cfg.LoRATargets, ErrConfig)
		}
	}
	trainable := n.params
	if lora != nil {
		trainable = lora.params
	}
	opt := newOptimizer(cfg.Optimizer, cfg.WeightDecay)
	src := &stream{rows: func() iter.Seq2[sample, error] { return tokenRows(ctx, cfg, ds, n.cfg.Vocab, loadTok) }}
	if cfg.Resume != "" {
		if src.pos, err = readCheckpoint(ctx, cfg, cfg.Resume, n, lora, opt); err != nil {
			return err
		}
		fmt.Fprintf(logw, "train: resumed from %s at step %d\n", cfg.Resume, opt.step)
		st, err := resumeData(cfg.Resume)
		if err != nil {
			return err
		}
		if st.Seed != cfg.Seed || st.Shuffle != cfg.Shuffle || st.ShuffleBuffer != cfg.ShuffleBuffer {
			fmt.Fprintf(logw, "train: the checkpoint read its data with --seed %d --shuffle=%v --shuffle-buffer %d; continuing with those (this run asked for --seed %d --shuffle=%v --shuffle-buffer %d)\n",
				st.Seed, st.Shuffle, st.ShuffleBuffer, cfg.Seed, cfg.Shuffle, cfg.ShuffleBuffer)
			cfg.Seed, cfg.Shuffle, cfg.ShuffleBuffer = st.Seed, st.Shuffle, st.ShuffleBuffer
		}
		src.want = st.Rows
	}
	src.shuffle, src.seed, src.bufSize = cfg.Shuffle, cfg.Seed, cfg.ShuffleBuffer
	if src.bufSize <= 0 {
		src.bufSize = DefaultShuffleBuffer
	}
	defer src.close()
	// Data-parallel: rank 0 leads (writes); every worker steps in lockstep.
	var rg *ring
	lead := cfg.Rank == 0
	if len(cfg.Workers) > 1 {
		if rg, err = dialRing(ctx, cfg.Workers, cfg.Rank); err != nil {
			return err
		}
		defer rg.Close()
	}
	fmt.Fprintf(logw, "train: %s, %d parameters trained, %d steps\n", n.cfg.Arch, countParams(trainable), cfg.Steps)
	st := newStepper(cfg, n, lora, opt, rg)
	for opt.step < cfg.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		s := opt.step
		var mbs []*batch
		tokens := 0
		for range cfg.GradAccum {
			b := &batch{}
			for range cfg.BatchSize {
				r, err := src.row()
				if err != nil {
					return err
				}
				b.ids = append(b.ids, r.ids)
				b.lens = append(b.lens, len(r.ids))
				b.mask = append(b.mask, r.mask)
				b.T = max(b.T, len(r.ids))
				tokens += len(r.ids)
			}
			for i, r := range b.ids {
				if len(r) < b.T {
					b.ids[i] = append(slices.Clone(r), make([]int32, b.T-len(r))...)
				}
			}
			mbs = append(mbs, b)
		}
		count := 0
		for _, b := range mbs {
			count += b.targets()
		}
		if count == 0 {
			return fmt.Errorf("train: step %d: no row of the batch has a token to predict (a second token, of the completion or of an assistant turn): %w", s+1, ErrData)
		}
		var tm phaseTimes
		since(&tm.data, start)
		loss, norm, lr, err := st.step(mbs, count, &tm)
		if err != nil {
			return err
		}
		el := time.Since(start).Seconds()
		m := Metrics{Step: s + 1, Loss: loss, LR: lr, GradNorm: norm, Tokens: tokens, TokensPerSec: float64(tokens) / max(el, 1e-9),
			TimeData: tm.data.Seconds(), TimeForward: tm.forward.Seconds(), TimeBackward: tm.backward.Seconds(),
			TimeOptimizer: tm.optim.Seconds(), TimeTransfer: tm.transfer.Seconds()}
		m.MFU = mfu(nParams, m.TokensPerSec, peak)
		// The checkpoint of a step is written before the step is reported, so
		// a caller that stops on seeing step s finds it.
		if lead && cfg.CheckpointEvery > 0 && opt.step%cfg.CheckpointEvery == 0 && opt.step < cfg.Steps {
			if err := n.pull(); err != nil {
				return err
			}
			if err := writeCheckpoint(cfg, n, lora, opt, src.pos, src.known); err != nil {
				return err
			}
			if remote != "" {
				if err := publish(ctx, cfg.Out, "checkpoint", remote); err != nil {
					return err
				}
			}
			fmt.Fprintf(logw, "train: checkpoint at step %d\n", opt.step)
		}
		if lead {
			if err := appendMetrics(cfg.Out, m); err != nil {
				return err
			}
			if cfg.CheckpointEvery > 0 && opt.step%cfg.CheckpointEvery == 0 && opt.step < cfg.Steps {
				if err := writeMetricsParquet(cfg.Out); err != nil {
					return err
				}
				// A remote --out gets the metrics through the checkpoint's
				// step too, so a run resumed from it (which appends to the
				// remote metrics) keeps every step.
				if remote != "" {
					if err := publishMetrics(ctx, cfg.Out, remote); err != nil {
						return err
					}
				}
			}
		}
		if cfg.OnStep != nil {
			if err := cfg.OnStep(m); err != nil {
				return err
			}
		}
	}
	if !lead {
		return nil
	}
	if err := n.pull(); err != nil {
		return err
	}
	if cfg.CheckpointEvery > 0 {
		if err := writeCheckpoint(cfg, n, lora, opt, src.pos, src.known); err != nil {
			return err
		}
	}
	if err := writeMetricsParquet(cfg.Out); err != nil {
		return err
	}
	if err := writeModel(ctx, cfg, n, lora); err != nil {
		return err
	}
	if remote != "" {
		if err := publish(ctx, cfg.Out, "", remote); err != nil {
			return err
		}
		cfg.Out = remote
	}
	fmt.Fprintf(logw, "train: wrote %s\n", cfg.Out)
	return nil
}

func countParams(ps []*param) int {
	n := 0
	for _, p := range ps {
		n += len(p.w)
	}
	return n
}

// dataPos is where the row stream stands: epoch and row within it.
type dataPos struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}
