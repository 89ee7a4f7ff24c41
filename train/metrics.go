package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/gpu"
)

// Metrics files: every step appends a line to Out/metrics.jsonl (a resumed
// run appends to the same file); Out/metrics.parquet holds the same rows
// as a table (step, loss, lr, grad_norm, tokens, tokens_per_sec, mfu, and
// the time_*_s phase seconds),
// rewritten from metrics.jsonl at each checkpoint and at the end of the
// run, since a Parquet file cannot be appended to.
//
// MFU (model FLOPs utilization) is PaLM's estimate without its attention
// term, as nanoGPT's estimate_mfu and llm.c count it:
//
//	mfu = 6 · N · tokens_per_sec / peak_flops
//
// N is the model's parameter count (every weight, a tied embedding once;
// LoRA's adapters not counted: the forward and backward passes go through
// the full weights either way), 6·N the FLOPs of one token's forward (2N)
// and backward (4N) pass, tokens the step's real tokens (not padding), and
// peak the device's peak FLOP/s: Config.PeakFLOPS when set, else what a
// device implementing PeakFLOPSReporter reports for f32, else MFU is not
// reported.

// PeakFLOPSReporter is a device that knows its peak FLOP/s for computing in
// a dtype (dense, without sparsity). It is optional: train detects it with
// a type assertion on the training device. No backend implements it yet.
type PeakFLOPSReporter interface {
	PeakFLOPS(dt gpu.DType) float64
}

// peakFLOPS is cfg's peak or the device's (0: unknown).
func peakFLOPS(cfg Config, dev gpu.Device) float64 {
	if cfg.PeakFLOPS > 0 {
		return cfg.PeakFLOPS
	}
	if r, ok := dev.(PeakFLOPSReporter); ok {
		return r.PeakFLOPS(gpu.F32)
	}
	return 0
}

// mfu is 6·params·tokensPerSec/peak, 0 when peak is unknown.
func mfu(params int, tokensPerSec, peak float64) float64 {
	if peak <= 0 {
		return 0
	}
	return 6 * float64(params) * tokensPerSec / peak
}

// appendMetrics adds m as one JSON line to Out/metrics.jsonl.
func appendMetrics(out string, m Metrics) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("train: --out: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(out, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("train: --out: %w", err)
	}
	js, _ := json.Marshal(m)
	_, err = f.Write(append(js, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("train: writing metrics: %w", err)
	}
	return nil
}

// metricsSchema is metrics.parquet's; mfu is null where it is unknown.
var metricsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "step", Type: arrow.PrimitiveTypes.Int64},
	{Name: "loss", Type: arrow.PrimitiveTypes.Float64},
	{Name: "lr", Type: arrow.PrimitiveTypes.Float64},
	{Name: "grad_norm", Type: arrow.PrimitiveTypes.Float64},
	{Name: "tokens", Type: arrow.PrimitiveTypes.Int64},
	{Name: "tokens_per_sec", Type: arrow.PrimitiveTypes.Float64},
	{Name: "mfu", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "time_data_s", Type: arrow.PrimitiveTypes.Float64},
	{Name: "time_forward_s", Type: arrow.PrimitiveTypes.Float64},
	{Name: "time_backward_s", Type: arrow.PrimitiveTypes.Float64},
	{Name: "time_optimizer_s", Type: arrow.PrimitiveTypes.Float64},
	{Name: "time_transfer_s", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// writeMetricsParquet rewrites Out/metrics.parquet from Out/metrics.jsonl.
func writeMetricsParquet(out string) error {
	src := filepath.Join(out, "metrics.jsonl")
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	b := array.NewRecordBuilder(memory.DefaultAllocator, metricsSchema)
	defer b.Release()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("train: %s:%d: %w", src, line, err)
		}
		b.Field(0).(*array.Int64Builder).Append(int64(m.Step))
		b.Field(1).(*array.Float64Builder).Append(m.Loss)
		b.Field(2).(*array.Float64Builder).Append(m.LR)
		b.Field(3).(*array.Float64Builder).Append(m.GradNorm)
		b.Field(4).(*array.Int64Builder).Append(int64(m.Tokens))
		b.Field(5).(*array.Float64Builder).Append(m.TokensPerSec)
		if m.MFU > 0 {
			b.Field(6).(*array.Float64Builder).Append(m.MFU)
		} else {
			b.Field(6).AppendNull()
		}
		for i, v := range []float64{m.TimeData, m.TimeForward, m.TimeBackward, m.TimeOptimizer, m.TimeTransfer} {
			b.Field(7 + i).(*array.Float64Builder).Append(v)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("train: %s: %w", src, err)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(metricsSchema, &buf, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err == nil {
		err = w.Write(rec)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("train: metrics.parquet: %w", err)
	}
	return writeAtomic(filepath.Join(out, "metrics.parquet"), buf.Bytes())
}

// progressWidth is the progress bar's cells.
const progressWidth = 20

// ProgressLine is the line `sluice train` prints on stderr after each of
// steps steps: a bar, the step, the loss, lr, grad norm, tokens/s and, when
// known, MFU:
//
//	[#####---------------] step 5/20 loss 2.3456 lr 0.001 grad_norm 0.812 1520 tok/s
func ProgressLine(m Metrics, steps int) string {
	done := progressWidth
	if steps > 0 {
		done = min(progressWidth, int(math.Round(float64(progressWidth*m.Step)/float64(steps))))
	}
	line := fmt.Sprintf("[%s%s] step %d/%d loss %.4f lr %.3g grad_norm %.3f %.0f tok/s",
		strings.Repeat("#", done), strings.Repeat("-", progressWidth-done), m.Step, steps, m.Loss, m.LR, m.GradNorm, m.TokensPerSec)
	if m.MFU > 0 {
		line += fmt.Sprintf(" mfu %.1f%%", 100*m.MFU)
	}
	return line
}
