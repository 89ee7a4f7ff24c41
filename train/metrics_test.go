package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/gpu"
)

// peaked is the cpu device reporting a peak FLOP/s.
type peaked struct{ gpu.Device }

func (peaked) Name() string { return "train-test-peak" }

func (peaked) PeakFLOPS(dt gpu.DType) float64 {
	if dt != gpu.F32 {
		return 0
	}
	return 2e9
}

var _ PeakFLOPSReporter = peaked{}

func init() {
	gpu.Register("train-test-peak", func() (gpu.Device, error) {
		d, err := gpu.Open("cpu")
		if err != nil {
			return nil, err
		}
		return peaked{d}, nil
	})
}

// parquetMetrics reads Out/metrics.parquet back with dataset.
func parquetMetrics(t *testing.T, out string) (ms []Metrics, mfuNull []bool) {
	t.Helper()
	for rec, err := range dataset.ReadParquet(filepath.Join(out, "metrics.parquet")).Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		col := func(name string) int {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) != 1 {
				t.Fatalf("metrics.parquet has no column %q: %v", name, rec.Schema())
			}
			return idx[0]
		}
		step, loss, lr := rec.Column(col("step")).(*array.Int64), rec.Column(col("loss")).(*array.Float64), rec.Column(col("lr")).(*array.Float64)
		gn, tok, tps := rec.Column(col("grad_norm")).(*array.Float64), rec.Column(col("tokens")).(*array.Int64), rec.Column(col("tokens_per_sec")).(*array.Float64)
		mf := rec.Column(col("mfu")).(*array.Float64)
		f64 := func(name string) *array.Float64 { return rec.Column(col(name)).(*array.Float64) }
		td, tf, tb, to, tt := f64("time_data_s"), f64("time_forward_s"), f64("time_backward_s"), f64("time_optimizer_s"), f64("time_transfer_s")
		for i := range int(rec.NumRows()) {
			ms = append(ms, Metrics{Step: int(step.Value(i)), Loss: loss.Value(i), LR: lr.Value(i), GradNorm: gn.Value(i),
				Tokens: int(tok.Value(i)), TokensPerSec: tps.Value(i), MFU: mf.Value(i),
				TimeData: td.Value(i), TimeForward: tf.Value(i), TimeBackward: tb.Value(i), TimeOptimizer: to.Value(i), TimeTransfer: tt.Value(i)})
			mfuNull = append(mfuNull, mf.IsNull(i))
		}
	}
	return ms, mfuNull
}

// fileParams counts the elements of a model directory's tensors.
func fileParams(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, w := range readTensors(t, filepath.Join(dir, "model.safetensors")) {
		n += len(w)
	}
	return n
}

// TestMetricsParquet: metrics.parquet beside metrics.jsonl holds every
// step's metrics as OnStep reported them, written at a checkpoint and
// rewritten at the end.
func TestMetricsParquet(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	c := baseConfig(t, "llama3")
	c.Steps, c.CheckpointEvery, c.PeakFLOPS = 4, 2, 1e9
	var atCheckpoint []Metrics
	c.OnStep = func(m Metrics) error {
		if m.Step == 3 {
			atCheckpoint, _ = parquetMetrics(t, c.Out)
		}
		return nil
	}
	var want []Metrics
	next := c.OnStep
	c.OnStep = func(m Metrics) error { want = append(want, m); return next(m) }
	if err := Run(context.Background(), c, dataset.ReadJSONL(data)); err != nil {
		t.Fatal(err)
	}
	if len(atCheckpoint) != 2 || atCheckpoint[1] != want[1] {
		t.Errorf("metrics.parquet after the step-2 checkpoint: %+v, want steps 1-2 %+v", atCheckpoint, want[:2])
	}
	got, null := parquetMetrics(t, c.Out)
	if len(got) != len(want) {
		t.Fatalf("metrics.parquet has %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] || null[i] {
			t.Errorf("row %d: %+v (mfu null %v), OnStep reported %+v", i, got[i], null[i], want[i])
		}
	}
	js, err := os.ReadFile(filepath.Join(c.Out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(js), "\n"); n != len(want) {
		t.Errorf("metrics.jsonl has %d lines", n)
	}
}

// TestMFU: mfu = 6·N·tokens_per_sec/peak with N the model's parameters,
// the peak from --peak-flops, else from a device that reports one; with
// neither, no mfu in the JSON and a null in the Parquet.
func TestMFU(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	np := fileParams(t, fixtureDir("llama3"))
	for _, tc := range []struct {
		name, device string
		peak, want   float64 // want: the peak the figure must use (0: none)
	}{
		{"flag", "cpu", 5e8, 5e8},
		{"device", "train-test-peak", 0, 2e9},
		{"flag over device", "train-test-peak", 3e9, 3e9},
		{"none", "cpu", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig(t, "llama3")
			c.Steps, c.Device, c.PeakFLOPS = 2, tc.device, tc.peak
			ms := runLosses(t, c, data)
			for _, m := range ms {
				want := 0.0
				if tc.want > 0 {
					want = 6 * float64(np) * m.TokensPerSec / tc.want
				}
				if !relClose(m.MFU, want, 1e-12) || (want == 0) != (m.MFU == 0) {
					t.Errorf("step %d: mfu %g, want 6·%d·%g/%g = %g", m.Step, m.MFU, np, m.TokensPerSec, tc.want, want)
				}
			}
			line := strings.SplitN(readFile(t, filepath.Join(c.Out, "metrics.jsonl")), "\n", 2)[0]
			var raw map[string]any
			if err := json.Unmarshal([]byte(line), &raw); err != nil {
				t.Fatal(err)
			}
			if _, has := raw["mfu"]; has != (tc.want > 0) {
				t.Errorf("metrics.jsonl line %s: mfu present %v", line, has)
			}
			_, null := parquetMetrics(t, c.Out)
			if null[0] != (tc.want == 0) {
				t.Errorf("metrics.parquet mfu null %v", null[0])
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLogitChunks: the fused LM head and cross-entropy give PyTorch's loss
// and gradients whether the batch's target rows go in one chunk (the
// default on the fixtures, and a chunk as large as the batch) or in
// several (chunks of 1 and 5 rows); the loss sums are the same bit for bit
// (each row's loss is computed alone and summed in order), the gradients
// within float rounding of the one-chunk pass.
func TestLogitChunks(t *testing.T) {
	for _, name := range []string{"llama3", "qwen2"} {
		t.Run(name, func(t *testing.T) {
			ref := readReference(t, name)
			n, err := loadNet(context.Background(), fixtureDir(name), "cpu")
			if err != nil {
				t.Fatal(err)
			}
			defer n.close()
			b := &batch{ids: ref.Grad.IDs, lens: ref.Grad.Lens, T: len(ref.Grad.IDs[0])}
			cnt := b.targets()
			if cnt <= 5 || cnt > logitElems/n.cfg.Vocab {
				t.Fatalf("%d targets: the cases below would not be several chunks and one", cnt)
			}
			var oneSum float64
			var one map[string][]float32
			for _, chunk := range []int{0, cnt, 5, 1} {
				n.chunk = chunk
				n.zeroGrad()
				sum, _, err := n.lossAndGrad(b, float32(1)/float32(cnt))
				if err != nil {
					t.Fatal(err)
				}
				if !relClose(sum/float64(cnt), ref.Grad.Loss, 1e-4) {
					t.Errorf("chunk %d: loss %.8g, PyTorch %.8g", chunk, sum/float64(cnt), ref.Grad.Loss)
				}
				if one == nil {
					oneSum, one = sum, map[string][]float32{}
					for _, p := range n.params {
						one[p.name] = append([]float32(nil), p.g...)
					}
					continue
				}
				if sum != oneSum {
					t.Errorf("chunk %d: loss sum %v, one chunk %v", chunk, sum, oneSum)
				}
				for _, p := range n.params {
					rp := ref.Grad.Params[p.name]
					var d float64
					for i, g := range p.g {
						d = math.Max(d, math.Abs(float64(g-one[p.name][i])))
					}
					if d > 1e-5*rp.Absmax {
						t.Errorf("chunk %d: %s differs from the one-chunk gradient by %g (PyTorch's largest %g)", chunk, p.name, d, rp.Absmax)
					}
					for i, idx := range rp.Index {
						if g := float64(p.g[idx]); math.Abs(g-rp.Values[i]) > 1e-4*rp.Absmax {
							t.Errorf("chunk %d: %s[%d]: grad %.8g, PyTorch %.8g", chunk, p.name, idx, g, rp.Values[i])
						}
					}
				}
			}
		})
	}
}

// TestProgressLine: the bar fills with the steps done; mfu shows when
// known.
func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		m     Metrics
		steps int
		want  string
	}{
		{Metrics{Step: 1, Loss: 2.5, LR: 1e-3, GradNorm: 0.5, TokensPerSec: 1234.4}, 4,
			"[#####---------------] step 1/4 loss 2.5000 lr 0.001 grad_norm 0.500 1234 tok/s"},
		{Metrics{Step: 4, Loss: 1.25, LR: 2e-4, GradNorm: 1.5, TokensPerSec: 99.6, MFU: 0.4567}, 4,
			"[####################] step 4/4 loss 1.2500 lr 0.0002 grad_norm 1.500 100 tok/s mfu 45.7%"},
		{Metrics{Step: 1, Loss: 3, LR: 1, GradNorm: 2, TokensPerSec: 10}, 1000,
			"[--------------------] step 1/1000 loss 3.0000 lr 1 grad_norm 2.000 10 tok/s"},
	} {
		if got := ProgressLine(tc.m, tc.steps); got != tc.want {
			t.Errorf("ProgressLine(%+v, %d)\n got %s\nwant %s", tc.m, tc.steps, got, tc.want)
		}
	}
}
