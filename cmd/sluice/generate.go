package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/harness"
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/model/loratest"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// Commands of the LLM engine: generate, and the infer/tiny-cpu benchmark.

// strList is a repeatable string flag.
type strList []string

func (l *strList) String() string     { return strings.Join(*l, ",") }
func (l *strList) Set(s string) error { *l = append(*l, s); return nil }

// engineFlags are the model and engine options both commands take.
type engineFlags struct {
	model, tokenizer, device, dtype string
	quantization, kvCacheDType      string
	blockSize, numBlocks            int
	maxModelLen, maxNumSeqs         int
	maxBatched                      int
	gpuMemUtil                      float64
	noPrefixCaching                 bool
	specModel                       string // vLLM's --speculative-model: "[ngram]" or a draft model's directory
	numSpecTokens, ngramMax         int
	ngramMin                        int
	loraModules                     strList // name=DIR, vLLM's --lora-modules
	maxLoRAs, maxLoRARank           int

	loadTime, startTime time.Duration // set by open: infer.Load, engine.New
}

func (o *engineFlags) declare(fs *flag.FlagSet) {
	d := engine.DefaultConfig()
	fs.StringVar(&o.model, "model", "", "model directory (config.json, *.safetensors; local or s3://)")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "directory of tokenizer.json when it is not the model's")
	fs.StringVar(&o.device, "device", "auto", "device: auto, cpu or cuda")
	fs.StringVar(&o.dtype, "dtype", "auto", "weights and KV cache dtype: auto (f32 on the cpu, bf16 on a GPU), f32, bf16 or f16")
	fs.StringVar(&o.quantization, "quantization", "", "fp8: quantize a float checkpoint's linear layers to FP8 at load, per tensor (quantized checkpoints are detected from config.json without it)")
	fs.StringVar(&o.kvCacheDType, "kv-cache-dtype", "auto", "KV cache dtype: auto (--dtype) or fp8 (E4M3, half of bf16's bytes: about twice the sequences; per-layer k_scale/v_scale from the checkpoint, else 1, as vLLM)")
	fs.IntVar(&o.blockSize, "block-size", d.BlockSize, "KV cache block size in tokens")
	fs.IntVar(&o.numBlocks, "num-blocks", 0, "KV cache blocks (0: from --gpu-memory-utilization on a GPU, a 256 MiB budget on the cpu)")
	fs.Float64Var(&o.gpuMemUtil, "gpu-memory-utilization", d.GPUMemoryUtilization, "share of the GPU's memory for weights, activations and KV cache when --num-blocks is 0")
	fs.IntVar(&o.maxModelLen, "max-model-len", 0, "max prompt plus output tokens (0: the model's)")
	fs.IntVar(&o.maxNumSeqs, "max-num-seqs", d.MaxNumSeqs, "max sequences per step")
	fs.IntVar(&o.maxBatched, "max-num-batched-tokens", d.MaxNumBatchedTokens, "max tokens per step")
	fs.BoolVar(&o.noPrefixCaching, "no-prefix-caching", false, "disable automatic prefix caching")
	fs.StringVar(&o.specModel, "speculative-model", "", `speculative decoding: "[ngram]" drafts by prompt lookup; a model directory (local or s3://) drafts with that model, which must share the tokenizer (loaded on the same device, with --dtype, --quantization and --kv-cache-dtype)`)
	fs.IntVar(&o.numSpecTokens, "num-speculative-tokens", 0, "draft tokens per decode step with --speculative-model")
	fs.IntVar(&o.ngramMax, "ngram-prompt-lookup-max", 0, "longest n-gram the [ngram] speculator matches (0: 4)")
	fs.IntVar(&o.ngramMin, "ngram-prompt-lookup-min", 0, "shortest n-gram the [ngram] speculator matches (0: 1)")
	o.loraModules = nil // fs.Var sets no default: clear what a previous in-process run left
	fs.Var(&o.loraModules, "lora-modules", "LoRA adapters to load at start, name=DIR of a PEFT adapter (adapter_config.json, adapter_model.safetensors); repeatable, several per flag space-separated")
	fs.IntVar(&o.maxLoRAs, "max-loras", 1, "most distinct LoRA adapters in one batch")
	fs.IntVar(&o.maxLoRARank, "max-lora-rank", 16, "largest LoRA rank accepted")
}

// loras parses --lora-modules into names and directories, in order.
func (o *engineFlags) loras() (names, dirs []string, _ error) {
	for _, arg := range o.loraModules {
		for m := range strings.FieldsSeq(arg) {
			name, dir, ok := strings.Cut(m, "=")
			if !ok || name == "" || dir == "" {
				return nil, nil, fmt.Errorf("--lora-modules %q: want name=DIR", m)
			}
			names, dirs = append(names, name), append(dirs, dir)
		}
	}
	return names, dirs, nil
}

// speculative turns the speculative flags into the engine's config.
func (o *engineFlags) speculative() (engine.SpeculativeConfig, error) {
	switch o.specModel {
	case "":
		if o.numSpecTokens != 0 {
			return engine.SpeculativeConfig{}, fmt.Errorf("--num-speculative-tokens needs --speculative-model: %w", errUsage)
		}
		return engine.SpeculativeConfig{}, nil
	case "[ngram]":
		c := engine.SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: o.numSpecTokens, PromptLookupMax: o.ngramMax, PromptLookupMin: o.ngramMin}
		if err := c.Validate(); err != nil {
			return c, fmt.Errorf("--speculative-model [ngram] --num-speculative-tokens %d --ngram-prompt-lookup-max %d --ngram-prompt-lookup-min %d: %w",
				o.numSpecTokens, o.ngramMax, o.ngramMin, err)
		}
		return c, nil
	}
	if o.numSpecTokens < 1 {
		return engine.SpeculativeConfig{}, fmt.Errorf("--speculative-model %s needs --num-speculative-tokens of at least 1, got %d", o.specModel, o.numSpecTokens)
	}
	if o.ngramMax != 0 || o.ngramMin != 0 {
		return engine.SpeculativeConfig{}, fmt.Errorf("--ngram-prompt-lookup-max/min are for --speculative-model [ngram], not a draft model (%s)", o.specModel)
	}
	// The draft is loaded by open, on the target's device.
	return engine.SpeculativeConfig{Method: "draft_model", Model: o.specModel, NumSpeculativeTokens: o.numSpecTokens}, nil
}

// open loads the model and starts an engine; close both with the returned func.
func (o *engineFlags) open() (*engine.Engine, *infer.Loaded, func() error, error) {
	if o.model == "" {
		return nil, nil, nil, fmt.Errorf("--model is required: %w", errUsage)
	}
	start := time.Now()
	dt, err := gpu.ParseDType(o.dtype)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--dtype: %w: %w", err, errUsage)
	}
	if o.quantization != "" && o.quantization != "fp8" {
		return nil, nil, nil, fmt.Errorf("--quantization %q: want fp8 (or leave it out)", o.quantization)
	}
	if o.kvCacheDType != "auto" && o.kvCacheDType != "fp8" {
		return nil, nil, nil, fmt.Errorf("--kv-cache-dtype %q: want auto or fp8", o.kvCacheDType)
	}
	spec, err := o.speculative()
	if err != nil {
		return nil, nil, nil, err
	}
	loraNames, loraDirs, err := o.loras()
	if err != nil {
		return nil, nil, nil, err
	}
	if o.maxLoRAs < 1 || o.maxLoRARank < 1 {
		return nil, nil, nil, fmt.Errorf("--max-loras (%d) and --max-lora-rank (%d) must be positive", o.maxLoRAs, o.maxLoRARank)
	}
	mopts := model.Options{DType: dt, Quantization: o.quantization, KVCacheDType: o.kvCacheDType}
	l, err := infer.Load(o.model, infer.LoadOptions{Device: o.device, Tokenizer: o.tokenizer, Model: mopts})
	if err != nil {
		return nil, nil, nil, err
	}
	if spec.Method == "draft_model" {
		dm, err := l.LoadDraft(o.model, spec.Model, "", mopts)
		if err != nil {
			return nil, nil, nil, errors.Join(fmt.Errorf("--speculative-model %s: %w", spec.Model, err), l.Close())
		}
		spec.Draft = engine.FromModel(dm)
	}
	o.loadTime = time.Since(start)
	cfg := engine.DefaultConfig()
	cfg.BlockSize, cfg.NumBlocks, cfg.MaxModelLen = o.blockSize, o.numBlocks, o.maxModelLen
	cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = o.maxNumSeqs, o.maxBatched
	cfg.GPUMemoryUtilization = o.gpuMemUtil
	cfg.EnablePrefixCaching = !o.noPrefixCaching
	cfg.Speculative = spec
	cfg.MaxLoRAs, cfg.MaxLoRARank = o.maxLoRAs, o.maxLoRARank
	start = time.Now()
	e, err := engine.New(l.Runner, l.Tokenizer, cfg)
	if err != nil {
		return nil, nil, nil, errors.Join(err, l.Close())
	}
	for i, name := range loraNames {
		if err := e.LoadLoRA(name, loraDirs[i]); err != nil {
			return nil, nil, nil, errors.Join(fmt.Errorf("--lora-modules %s=%s: %w", name, loraDirs[i], err), e.Close(), l.Close())
		}
	}
	o.startTime = time.Since(start)
	return e, l, func() error { return errors.Join(e.Close(), l.Close()) }, nil
}

// checkPrompts fails, naming the flags, where infer would name its Go
// fields or cut a completion short: text prompts or stop strings without
// a tokenizer, and a prompt whose tokens plus --max-tokens pass the max
// model length (the engine would stop at the length, reporting
// finish_reason "length" as if --max-tokens were reached). The --prompt
// requests come first in reqs, then the --prompt-ids ones.
func checkPrompts(reqs []engine.Request, tok *tokenizer.Tokenizer, maxLen int, model string, nText, nStops int) error {
	if tok == nil && (nText > 0 || nStops > 0) {
		what := "--prompt"
		if nText == 0 {
			what = "--stop"
		}
		return fmt.Errorf("%s needs a tokenizer, and %s has no tokenizer.json: give --tokenizer DIR, or the prompt as token ids with --prompt-ids", what, model)
	}
	for i, r := range reqs {
		n := len(r.PromptIDs)
		flag := fmt.Sprintf("--prompt-ids #%d", i-nText+1)
		switch {
		case r.Messages != nil:
			text, err := tok.ApplyChatTemplate(r.Messages, true)
			if err != nil {
				return fmt.Errorf("--prompt #%d: chat template: %w", i+1, err)
			}
			n, flag = len(tok.Encode(text, false)), fmt.Sprintf("--prompt #%d", i+1)
		case r.Prompt != "":
			n, flag = len(tok.Encode(r.Prompt, true)), fmt.Sprintf("--prompt #%d", i+1)
		}
		if n+r.Params.MaxTokens > maxLen {
			return fmt.Errorf("%s: %d prompt tokens + --max-tokens %d = %d tokens, past the max model length of %d: shorten the prompt, lower --max-tokens or raise --max-model-len",
				flag, n, r.Params.MaxTokens, n+r.Params.MaxTokens, maxLen)
		}
	}
	return nil
}

func parseIDs(s string) ([]int32, error) {
	var ids []int32
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("token id %q: %w", f, err)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}

func init() {
	var g struct {
		engineFlags
		prompts, promptIDs, stops strList
		chat                      bool
		system                    string
		params                    engine.SamplingParams
		seed                      int64
		stopIDs, output           string
		lora                      string
	}
	register(&command{
		name:    "generate",
		args:    "",
		summary: "complete prompts with an LLM; one JSON object per completion with --output json",
		flags: func(fs *flag.FlagSet) {
			// fs.Var and fs.Func set no default: clear what a previous
			// in-process run left.
			g.prompts, g.promptIDs, g.stops, g.params.Seed = nil, nil, nil, nil
			g.engineFlags.declare(fs)
			d := engine.DefaultSamplingParams()
			fs.Var(&g.prompts, "prompt", "a text prompt (repeatable)")
			fs.Var(&g.promptIDs, "prompt-ids", "a prompt as comma-separated token ids, 1,2,3 (repeatable)")
			fs.BoolVar(&g.chat, "chat", false, "render text prompts as a user message with the tokenizer's chat template")
			fs.StringVar(&g.system, "system", "", "a system message before the prompt, with --chat")
			fs.IntVar(&g.params.MaxTokens, "max-tokens", d.MaxTokens, "max tokens per completion")
			fs.IntVar(&g.params.MinTokens, "min-tokens", 0, "tokens before EOS or a stop may end a completion")
			fs.Float64Var(&g.params.Temperature, "temperature", d.Temperature, "sampling temperature; 0 is greedy")
			fs.Float64Var(&g.params.TopP, "top-p", d.TopP, "nucleus sampling probability mass")
			fs.IntVar(&g.params.TopK, "top-k", 0, "sample from the k likeliest tokens (0: all)")
			fs.Float64Var(&g.params.MinP, "min-p", 0, "drop tokens less likely than min-p times the likeliest")
			fs.Float64Var(&g.params.PresencePenalty, "presence-penalty", 0, "presence penalty in [-2, 2]")
			fs.Float64Var(&g.params.FrequencyPenalty, "frequency-penalty", 0, "frequency penalty in [-2, 2]")
			fs.Float64Var(&g.params.RepetitionPenalty, "repetition-penalty", 1, "repetition penalty (1: none)")
			fs.IntVar(&g.params.N, "n", 1, "completions per prompt")
			fs.Func("seed", "seed of the sampling (default: unseeded)", func(s string) error {
				v, err := strconv.ParseInt(s, 10, 64)
				g.seed, g.params.Seed = v, &g.seed
				return err
			})
			fs.Var(&g.stops, "stop", "a stop string (repeatable)")
			fs.StringVar(&g.stopIDs, "stop-token-ids", "", "comma-separated ids that end a completion")
			fs.BoolVar(&g.params.IgnoreEOS, "ignore-eos", false, "generate past EOS")
			fs.IntVar(&g.params.Logprobs, "logprobs", 0, "return the log-probabilities of the n likeliest tokens")
			fs.StringVar(&g.output, "output", "text", "output: text or json (one object per completion)")
			fs.StringVar(&g.lora, "lora", "", "complete with this adapter of --lora-modules (default: the base model)")
		},
		run: func(ctx context.Context, env *env, args []string) error {
			if len(args) > 0 || len(g.prompts)+len(g.promptIDs) == 0 {
				return fmt.Errorf("give --prompt or --prompt-ids: %w", errUsage)
			}
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output must be text or json, got %q", g.output)
			}
			if g.params.MaxTokens < 1 {
				// infer reads 0 as "the default, 16": on the command line 0
				// would silently make 16 tokens.
				return fmt.Errorf("--max-tokens must be at least 1, got %d", g.params.MaxTokens)
			}
			p := g.params
			p.Stop = g.stops
			ids, err := parseIDs(g.stopIDs)
			if err != nil {
				return fmt.Errorf("--stop-token-ids: %w", err)
			}
			p.StopTokenIDs = ids
			if err := p.Validate(); err != nil {
				return err
			}
			var reqs []engine.Request
			for _, s := range g.prompts {
				r := engine.Request{Prompt: s, Params: p}
				if g.chat {
					r.Prompt = ""
					if g.system != "" {
						r.Messages = append(r.Messages, tokenizer.Message{Role: "system", Content: g.system})
					}
					r.Messages = append(r.Messages, tokenizer.Message{Role: "user", Content: s})
				}
				reqs = append(reqs, r)
			}
			for _, s := range g.promptIDs {
				ids, err := parseIDs(s)
				if err != nil {
					return fmt.Errorf("--prompt-ids: %w", err)
				}
				reqs = append(reqs, engine.Request{PromptIDs: ids, Params: p})
			}
			e, l, closeAll, err := g.engineFlags.open()
			if err != nil {
				return err
			}
			if err := checkPrompts(reqs, l.Tokenizer, e.Config().MaxModelLen, g.model, len(g.prompts), len(g.stops)); err != nil {
				return errors.Join(err, closeAll())
			}
			for i := range reqs {
				reqs[i].LoRA = g.lora
			}
			comps, genErr := e.Generate(ctx, reqs)
			enc := json.NewEncoder(env.stdout)
			for _, c := range comps {
				if c.Err != nil {
					continue
				}
				if g.output == "text" {
					fmt.Fprintln(env.stdout, c.Text)
					continue
				}
				if c.TokenIDs == nil {
					c.TokenIDs = []int32{}
				}
				if err := enc.Encode(struct {
					PromptIndex int `json:"prompt_index"`
					engine.Completion
				}{c.Request, c}); err != nil {
					genErr = errors.Join(genErr, err)
				}
			}
			return errors.Join(genErr, closeAll())
		},
	})

	var b struct {
		engineFlags
		prompts, minLen, maxLen, maxTokens int
		seed                               uint64
		output                             string
		sampling                           engine.SamplingParams // temperature, top_p, top_k of every request
		allLoRAs                           bool
		randomLoRAs, randomLoRARank        int
		randomLoRATargets                  string
		workload                           string
		copySpan                           int
	}
	register(&command{
		name:    "bench infer",
		summary: "offline inference benchmark (infer/tiny-cpu, infer/offline-512 by flags): output tokens/s, GEMM GFLOP/s against gonum",
		flags: func(fs *flag.FlagSet) {
			b.engineFlags.declare(fs)
			fs.IntVar(&b.prompts, "prompts", 64, "number of prompts")
			fs.IntVar(&b.minLen, "min-len", 32, "shortest prompt in tokens")
			fs.IntVar(&b.maxLen, "max-len", 128, "longest prompt in tokens")
			fs.IntVar(&b.maxTokens, "max-tokens", 64, "output tokens per prompt (EOS ignored)")
			fs.Uint64Var(&b.seed, "seed", 1, "seed of the prompts (and of each request's sampling, plus its index)")
			fs.StringVar(&b.output, "output", "text", "output: text or json")
			fs.Float64Var(&b.sampling.Temperature, "temperature", 0, "sampling temperature of every request (0: greedy, the workloads' setting)")
			fs.Float64Var(&b.sampling.TopP, "top-p", 1, "top_p of every request")
			fs.IntVar(&b.sampling.TopK, "top-k", 0, "top_k of every request (0: off)")
			fs.BoolVar(&b.allLoRAs, "use-loras", false, "requests use the --lora-modules adapters in turn (multi-LoRA; without it, the base model)")
			fs.IntVar(&b.randomLoRAs, "random-loras", 0, "write this many LoRA adapters with random A and B for the (f32) model, load them and use them in turn (the multi-LoRA workload)")
			fs.IntVar(&b.randomLoRARank, "random-lora-rank", 16, "rank of the --random-loras adapters")
			fs.StringVar(&b.workload, "workload", "random", "prompts: random (uniform random tokens) or copy (each prompt one random span repeated: the prompt-copying workload of n-gram speculation)")
			fs.IntVar(&b.copySpan, "copy-span", 16, "length of the repeated span with --workload copy")
			fs.StringVar(&b.randomLoRATargets, "random-lora-targets", "all-linear", "comma-separated target modules of the --random-loras adapters (all-linear: q, k, v, o, gate, up and down)")
		},
		run: func(ctx context.Context, env *env, args []string) error {
			if len(args) > 0 || b.minLen < 1 || b.maxLen < b.minLen || b.prompts < 1 || b.maxTokens < 1 {
				return errUsage
			}
			if b.workload != "random" && b.workload != "copy" {
				return fmt.Errorf("--workload %q: want random or copy", b.workload)
			}
			if b.copySpan < 1 {
				return fmt.Errorf("--copy-span must be at least 1, got %d", b.copySpan)
			}
			b.sampling.MaxTokens, b.sampling.IgnoreEOS = b.maxTokens, true
			if err := b.sampling.Validate(); err != nil {
				return err
			}
			e, l, closeAll, err := b.engineFlags.open()
			if err != nil {
				return err
			}
			ic := harness.InferConfig{Prompts: b.prompts, MinLen: b.minLen, MaxLen: b.maxLen, Params: b.sampling, Seed: b.seed,
				Workload: b.workload, CopySpan: b.copySpan}
			if b.randomLoRAs > 0 {
				dir, err := os.MkdirTemp("", "sluice-bench-loras-")
				if err != nil {
					return errors.Join(err, closeAll())
				}
				defer os.RemoveAll(dir)
				for i := range b.randomLoRAs {
					name := fmt.Sprintf("random-%d", i)
					d := filepath.Join(dir, name)
					targets := model.LoRATargets
					if b.randomLoRATargets != "all-linear" {
						targets = strings.Split(b.randomLoRATargets, ",")
					}
					spec := loratest.Spec{Rank: b.randomLoRARank, Alpha: float64(2 * b.randomLoRARank), Targets: targets, Seed: b.seed + uint64(i)}
					if err := loratest.Write(b.model, d, spec); err != nil {
						return errors.Join(fmt.Errorf("--random-loras: %w", err), closeAll())
					}
					if err := e.LoadLoRA(name, d); err != nil {
						return errors.Join(fmt.Errorf("--random-loras: %w", err), closeAll())
					}
				}
				b.allLoRAs = true
			}
			if b.allLoRAs {
				for _, a := range e.LoRAs() {
					ic.LoRAs = append(ic.LoRAs, a.Name)
				}
				if len(ic.LoRAs) == 0 {
					return errors.Join(fmt.Errorf("--use-loras needs --lora-modules: %w", errUsage), closeAll())
				}
			}
			res, err := harness.Infer(ctx, e, l, ic)
			err = errors.Join(err, closeAll())
			if err != nil {
				return err
			}
			res.LoadSeconds, res.EngineStartSeconds = b.loadTime.Seconds(), b.startTime.Seconds()
			if b.output == "json" {
				return json.NewEncoder(env.stdout).Encode(res)
			}
			res.WriteText(env.stdout)
			return nil
		},
	})
}
