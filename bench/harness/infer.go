package harness

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model"
)

// InferResult is what `bench infer` reports.
type InferResult struct {
	Prompts            int     `json:"prompts"`
	PromptTokens       int     `json:"prompt_tokens"`
	OutputTokens       int     `json:"output_tokens"`
	Seconds            float64 `json:"seconds"`
	OutputTokensPerSec float64 `json:"output_tokens_per_s"`
	TotalTokensPerSec  float64 `json:"total_tokens_per_s"` // prompt + output
	LoadSeconds        float64 `json:"load_s"`             // infer.Load: weights to the device
	EngineStartSeconds float64 `json:"engine_start_s"`     // engine.New: profiling, KV cache
	KVBlocks           int     `json:"kv_blocks"`
	PeakDeviceBytes    int64   `json:"peak_device_bytes"`
	PeakDeviceSource   string  `json:"peak_device_source"`
	DeviceUsedBytes    int64   `json:"device_used_bytes,omitempty"`  // total − free after the run (gpu.MemInfo)
	DeviceTotalBytes   int64   `json:"device_total_bytes,omitempty"` // (gpu.MemInfo)
	Steps              int64   `json:"steps"`
	PrefillSteps       int64   `json:"prefill_steps"`   // steps with a prompt chunk (engine.Stats)
	PrefillSeconds     float64 `json:"prefill_seconds"` // their wall-clock time
	DecodeSteps        int64   `json:"decode_steps"`    // steps of one token a sequence
	DecodeSeconds      float64 `json:"decode_seconds"`  // their wall-clock time
	Preemptions        int64   `json:"preemptions"`
	ModelGFLOPS        float64 `json:"model_gflops"`
	Device             string  `json:"device"`
	Threads            int     `json:"threads"`
	GEMMShape          string  `json:"gemm_shape"`
	GEMMGFLOPS         float64 `json:"gemm_gflops"`
	GonumGFLOPS        float64 `json:"gonum_sgemm_gflops"`
	LoRAs              int     `json:"loras,omitempty"` // adapters the requests used in turn
	Workload           string  `json:"workload"`        // "random" or "copy" (InferConfig.Workload)
	// Speculative decoding, when on: the method ("ngram", "draft_model"
	// with the draft's directory), draft tokens per step, and the run's
	// draft tokens proposed and accepted and their ratio.
	Speculative        string  `json:"speculative,omitempty"`
	SpecTokens         int     `json:"num_speculative_tokens,omitempty"`
	SpecDraftTokens    int64   `json:"spec_draft_tokens"`
	SpecAcceptedTokens int64   `json:"spec_accepted_tokens"`
	SpecAcceptanceRate float64 `json:"spec_acceptance_rate"`
}

// WriteText prints the result as `bench infer --output text` does.
func (res *InferResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "infer bench on %s: %d prompts (%d tokens), %d output tokens in %.2fs: %.1f output tokens/s\n",
		res.Device, res.Prompts, res.PromptTokens, res.OutputTokens, res.Seconds, res.OutputTokensPerSec)
	if res.Workload == "copy" {
		fmt.Fprintf(w, "  prompt-copying workload: each prompt repeats one random span\n")
	}
	if res.LoRAs > 0 {
		fmt.Fprintf(w, "  requests over %d LoRA adapters in turn\n", res.LoRAs)
	}
	if res.Speculative != "" {
		fmt.Fprintf(w, "  speculative decoding %s, %d tokens per step: %d draft tokens, %d accepted, acceptance rate %.3f\n",
			res.Speculative, res.SpecTokens, res.SpecDraftTokens, res.SpecAcceptedTokens, res.SpecAcceptanceRate)
	}
	fmt.Fprintf(w, "  %d steps, %d preemptions; model matmuls %.2f GFLOP/s (estimated)\n",
		res.Steps, res.Preemptions, res.ModelGFLOPS)
	fmt.Fprintf(w, "  %d prefill steps in %.2fs, %d decode steps in %.2fs\n",
		res.PrefillSteps, res.PrefillSeconds, res.DecodeSteps, res.DecodeSeconds)
	fmt.Fprintf(w, "  GEMM %s on %s: %.2f GFLOP/s; gonum Sgemm %.2f GFLOP/s (%d threads)\n",
		res.GEMMShape, res.Device, res.GEMMGFLOPS, res.GonumGFLOPS, res.Threads)
	fmt.Fprintf(w, "  %.1f total (prompt + output) tokens/s; model load %.2fs, engine start %.2fs (KV cache: %d blocks)\n",
		res.TotalTokensPerSec, res.LoadSeconds, res.EngineStartSeconds, res.KVBlocks)
	fmt.Fprintf(w, "  peak device memory %s (%s)", MiB(res.PeakDeviceBytes), res.PeakDeviceSource)
	if res.DeviceTotalBytes > 0 {
		fmt.Fprintf(w, "; driver: %s in use of %s after the run", MiB(res.DeviceUsedBytes), MiB(res.DeviceTotalBytes))
	}
	fmt.Fprintln(w)
}

// InferConfig is the offline inference benchmark (infer/tiny-cpu,
// infer/offline-512): Prompts random prompts of MinLen to MaxLen tokens,
// each with Params (its Seed set to Seed plus its index when sampling).
type InferConfig struct {
	Prompts        int
	MinLen, MaxLen int
	Params         engine.SamplingParams
	Seed           uint64
	// LoRAs, when set, are the engine's adapters the requests use in
	// turn: request i names LoRAs[i % len(LoRAs)] (multi-LoRA).
	LoRAs []string
	// Workload is "random" (or ""): prompts of uniformly random tokens; or
	// "copy", the prompt-copying workload where n-gram speculation pays: a
	// prompt is one random span of CopySpan tokens repeated to its length,
	// so every n-gram of it recurs, and a model that continues the pattern
	// (as trained models do: induction) repeats spans of the prompt. Random
	// weights need not continue it: the acceptance rate says what the run
	// got.
	Workload string
	// CopySpan is the repeated span's length with Workload "copy"; 0
	// means 16.
	CopySpan int
}

// Infer runs the benchmark on an engine over the loaded model l, after one
// short warm-up request, and measures a GEMM of the model's shape on its
// device and with gonum. The caller sets the result's LoadSeconds and
// EngineStartSeconds.
func Infer(ctx context.Context, e *engine.Engine, l *infer.Loaded, c InferConfig) (*InferResult, error) {
	n, minLen, maxLen, params, seed := c.Prompts, c.MinLen, c.MaxLen, c.Params, c.Seed
	mc := l.Model.Config()
	rng := rand.New(rand.NewPCG(seed, 0x7e57))
	reqs := make([]engine.Request, n)
	res := &InferResult{Prompts: n, Device: l.Model.Device().Name(), Threads: runtime.GOMAXPROCS(0), LoRAs: len(c.LoRAs), Workload: "random"}
	span := c.CopySpan
	switch c.Workload {
	case "", "random":
	case "copy":
		res.Workload = "copy"
		if span == 0 {
			span = 16
		}
		if span < 1 {
			return nil, fmt.Errorf("harness: CopySpan must be positive, got %d", span)
		}
	default:
		return nil, fmt.Errorf("harness: workload %q: want random or copy", c.Workload)
	}
	for i := range reqs {
		ids := make([]int32, minLen+rng.IntN(maxLen-minLen+1))
		for j := range ids {
			if res.Workload == "copy" && j >= span {
				ids[j] = ids[j-span]
				continue
			}
			ids[j] = int32(rng.IntN(mc.Vocab))
		}
		res.PromptTokens += len(ids)
		p := params
		if p.Temperature > 0 {
			s := int64(seed) + int64(i)
			p.Seed = &s
		}
		reqs[i] = engine.Request{PromptIDs: ids, Params: p}
		if len(c.LoRAs) > 0 {
			reqs[i].LoRA = c.LoRAs[i%len(c.LoRAs)]
		}
	}
	// One short warm-up request grows the model's step buffers.
	if _, err := e.Generate(ctx, []engine.Request{{PromptIDs: reqs[0].PromptIDs[:1], Params: engine.SamplingParams{MaxTokens: 2}}}); err != nil {
		return nil, err
	}
	before := e.Stats()
	start := time.Now()
	comps, err := e.Generate(ctx, reqs)
	if err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	for _, c := range comps {
		res.OutputTokens += c.CompletionTokens
	}
	st := e.Stats()
	res.Steps, res.Preemptions = st.Steps-before.Steps, st.Preemptions-before.Preemptions
	res.PrefillSteps, res.DecodeSteps = st.PrefillSteps-before.PrefillSteps, st.DecodeSteps-before.DecodeSteps
	res.PrefillSeconds, res.DecodeSeconds = st.PrefillSeconds-before.PrefillSeconds, st.DecodeSeconds-before.DecodeSeconds
	res.OutputTokensPerSec = float64(res.OutputTokens) / res.Seconds
	res.TotalTokensPerSec = float64(res.PromptTokens+res.OutputTokens) / res.Seconds
	res.KVBlocks = st.NumBlocks
	if sc := e.Config().Speculative; sc.Method != "" {
		res.Speculative, res.SpecTokens = sc.Method, sc.NumSpeculativeTokens
		if sc.Model != "" {
			res.Speculative += " " + sc.Model
		}
		res.SpecDraftTokens = st.SpecDraftTokens - before.SpecDraftTokens
		res.SpecAcceptedTokens = st.SpecAcceptedTokens - before.SpecAcceptedTokens
		if res.SpecDraftTokens > 0 {
			res.SpecAcceptanceRate = float64(res.SpecAcceptedTokens) / float64(res.SpecDraftTokens)
		}
	}
	dev := l.Model.Device()
	if mi, ok := dev.(gpu.MemInfo); ok {
		res.PeakDeviceBytes, res.PeakDeviceSource = mi.PeakBytes(), "peak of the device's allocations since the engine's profiling step, gpu.MemInfo.PeakBytes"
		free, total, err := mi.MemInfo()
		if err != nil {
			return nil, err
		}
		res.DeviceUsedBytes, res.DeviceTotalBytes = total-free, total
	} else {
		res.PeakDeviceBytes, res.PeakDeviceSource = dev.LiveBytes(), "LiveBytes after the run: weights, KV cache, step buffers; "+dev.Name()+" tracks no peak"
	}
	work := flopWork{computed: st.BatchedTokens - before.BatchedTokens, outputs: int64(res.OutputTokens),
		drafted: res.SpecDraftTokens, accepted: res.SpecAcceptedTokens, k: res.SpecTokens}
	var draft *model.Config
	if sc := e.Config().Speculative; sc.Method == "draft_model" && sc.Model != "" {
		dc, err := model.ReadConfig(ctx, sc.Model)
		if err != nil {
			return nil, fmt.Errorf("harness: the draft model's shape for the FLOP estimate: %w", err)
		}
		draft = &dc
	}
	res.ModelGFLOPS = modelFLOPs(mc, draft, work) / res.Seconds / 1e9

	// The GEMM of the model's MLP up projection for a decode batch of n
	// sequences, on the device and with gonum, in this run.
	m, nn, k := n, mc.Intermediate, mc.Hidden
	res.GEMMShape = fmt.Sprintf("m%d n%d k%d", m, nn, k)
	if res.GEMMGFLOPS, err = deviceGEMM(l.Model, m, nn, k); err != nil {
		return nil, err
	}
	res.GonumGFLOPS = gonumGEMM(m, nn, k)
	return res, nil
}

// timeGFLOPS runs f for about half a second and returns its GFLOP/s.
func timeGFLOPS(flops float64, f func() error) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	iters, start := 0, time.Now()
	for time.Since(start) < 500*time.Millisecond {
		if err := f(); err != nil {
			return 0, err
		}
		iters++
	}
	return flops * float64(iters) / time.Since(start).Seconds() / 1e9, nil
}

func benchFloats(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func deviceGEMM(m *model.Model, rows, n, k int) (float64, error) {
	dev := m.Device()
	a, err := gpu.FromHost(dev, benchFloats(rows*k), rows, k)
	if err != nil {
		return 0, err
	}
	defer a.Free()
	w, err := dev.Alloc(m.DType(), n, k)
	if err != nil {
		return 0, err
	}
	defer w.Free()
	if err := gpu.UploadF32(w, benchFloats(n*k)); err != nil {
		return 0, err
	}
	c, err := dev.Alloc(gpu.F32, rows, n)
	if err != nil {
		return 0, err
	}
	defer c.Free()
	ops := dev.Ops()
	return timeGFLOPS(2*float64(rows*n*k), func() error {
		if err := ops.MatMul(c, a, w, nil); err != nil {
			return err
		}
		return dev.Sync()
	})
}

func gonumGEMM(m, n, k int) float64 {
	a, w, c := benchFloats(m*k), benchFloats(n*k), make([]float32, m*n)
	var impl gonum.Implementation
	g, _ := timeGFLOPS(2*float64(m*n*k), func() error {
		impl.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, w, k, 0, c, n)
		return nil
	})
	return g
}

// flopWork is what a run computed, for modelFLOPs: the target's computed
// tokens (BatchedTokens: prompts, recomputation and verified drafts), the
// output tokens, and with speculation the draft tokens proposed and
// accepted and the draft tokens per step k.
type flopWork struct {
	computed, outputs, drafted, accepted int64
	k                                    int
}

// modelFLOPs estimates a run's matmul FLOPs: every computed token through
// every layer's projections, and the LM head for every row of logits.
// Without speculation the rows of logits are the output tokens; with it,
// a sequence's step of d drafts computes d+1 rows and outputs a+1 tokens
// (a accepted), so the rows are outputs + drafted - accepted. A draft
// model (draft non-nil) also runs: the target's tokens but the drafts
// (computed - drafted), then one pass per draft but the last of each
// step's k (drafted·(k-1)/k), and its LM head for every draft.
func modelFLOPs(mc model.Config, draft *model.Config, w flopWork) float64 {
	perToken := func(c model.Config) float64 {
		q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
		return float64(c.Layers) * float64(c.Hidden*(q+2*kv)+q*c.Hidden+3*c.Hidden*c.Intermediate)
	}
	rows := float64(w.outputs + w.drafted - w.accepted)
	f := float64(w.computed)*perToken(mc) + rows*float64(mc.Vocab*mc.Hidden)
	if draft != nil && w.k > 0 {
		d := float64(w.drafted)
		tokens := float64(w.computed) - d + d*float64(w.k-1)/float64(w.k)
		f += tokens*perToken(*draft) + d*float64(draft.Vocab*draft.Hidden)
	}
	return 2 * f
}
