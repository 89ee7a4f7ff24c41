package train

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// precisionDev is the cpu device with cuda's SetPrecision, recording the
// precisions it is given.
type precisionDev struct{ gpu.Device }

var precisions struct {
	sync.Mutex
	got []string
}

func (precisionDev) Name() string { return "train-test-precision" }

func (precisionDev) SetPrecision(p string) error {
	if p != "bf16" && p != "tf32" && p != "f32" {
		return errors.New("bad precision")
	}
	precisions.Lock()
	defer precisions.Unlock()
	precisions.got = append(precisions.got, p)
	return nil
}

// attnDev is the cpu device with a CausalAttention of its own (cuda's
// tensor-core path has the same signature): ops.Attention over the
// sequences as train's fallback builds it, counted; with unsupported set
// it answers errors.ErrUnsupported, as cuda does with a PTX from before
// the training attention.
type attnDev struct {
	gpu.Device
	unsupported bool
}

var attnCalls atomic.Int64

func (d attnDev) Name() string {
	if d.unsupported {
		return "train-test-attn-unsupported"
	}
	return "train-test-attn"
}

type attnOps struct {
	gpu.Ops
	gpu.BackwardOps
	d attnDev
}

func (d attnDev) Ops() gpu.Ops {
	ops := d.Device.Ops()
	return attnOps{ops, ops.(gpu.BackwardOps), d}
}

func (o attnOps) CausalAttention(out, q, k, v *gpu.Tensor, seqLen int, scale float32) error {
	attnCalls.Add(1)
	if o.d.unsupported {
		return errors.ErrUnsupported
	}
	B := q.Dim(0) / seqLen
	bt, ctxs, starts := make([]int32, B), make([]int32, B), make([]int32, B+1)
	for s := range B {
		bt[s], ctxs[s], starts[s+1] = int32(s), int32(seqLen), int32((s+1)*seqLen)
	}
	var ts []*gpu.Tensor
	defer func() {
		for _, t := range ts {
			t.Free()
		}
	}()
	ints := func(v []int32) (*gpu.Tensor, error) {
		t, err := o.d.Alloc(gpu.I32, len(v))
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
		return t, gpu.Upload(t, v)
	}
	btT, err := ints(bt)
	if err != nil {
		return err
	}
	ctxT, err := ints(ctxs)
	if err != nil {
		return err
	}
	stT, err := ints(starts)
	if err != nil {
		return err
	}
	btV, _ := btT.View(B, 1)
	kv, hd := k.Dim(1), k.Dim(2)
	kc, _ := k.View(B, seqLen, kv, hd)
	vc, _ := v.View(B, seqLen, kv, hd)
	return o.Ops.Attention(out, q, kc, vc, gpu.AttnBatch{BlockTables: btV, ContextLens: ctxT, QueryStarts: stT,
		MaxQueryLen: seqLen, MaxContextLen: seqLen, Scale: scale})
}

func init() {
	gpu.Register("train-test-precision", func() (gpu.Device, error) {
		d, err := gpu.Open("cpu")
		if err != nil {
			return nil, err
		}
		return precisionDev{d}, nil
	})
	for _, unsupported := range []bool{false, true} {
		name := attnDev{unsupported: unsupported}.Name()
		gpu.Register(name, func() (gpu.Device, error) {
			d, err := gpu.Open("cpu")
			if err != nil {
				return nil, err
			}
			return attnDev{d, unsupported}, nil
		})
	}
}

// TestPrecision: --precision reaches a device that has SetPrecision (bf16
// when not given, as on cuda); cpu computes in f32 and refuses bf16 and
// tf32, naming the flag; an unknown value is refused by Validate.
func TestPrecision(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	for _, tc := range []struct {
		flag, want string
	}{{"", "bf16"}, {"tf32", "tf32"}, {"f32", "f32"}} {
		precisions.Lock()
		precisions.got = nil
		precisions.Unlock()
		c := baseConfig(t, "llama3")
		c.Steps, c.Device, c.Precision = 1, "train-test-precision", tc.flag
		runLosses(t, c, data)
		precisions.Lock()
		got := precisions.got
		precisions.Unlock()
		if len(got) == 0 || got[len(got)-1] != tc.want {
			t.Errorf("--precision %q: the device was set to %v, want %s last", tc.flag, got, tc.want)
		}
	}
	for _, p := range []string{"", "f32"} {
		c := baseConfig(t, "llama3")
		c.Steps, c.Precision = 1, p
		runLosses(t, c, data)
	}
	for _, p := range []string{"bf16", "tf32"} {
		c := baseConfig(t, "llama3")
		c.Steps, c.Precision = 1, p
		err := Run(context.Background(), c, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--precision "+p) || !strings.Contains(err.Error(), "cpu") {
			t.Errorf("--precision %s on cpu: %v, want ErrConfig naming the flag and the backend", p, err)
		}
	}
	c := baseConfig(t, "llama3")
	c.Precision = "fp8"
	if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `--precision "fp8"`) {
		t.Errorf("Validate with --precision fp8: %v", err)
	}
}

// TestCausalAttentionPath: a device with CausalAttention gets the forward
// attention of every layer and micro-batch through it (cuda's tensor-core
// path); one answering errors.ErrUnsupported falls back to ops.Attention.
// Both give cpu's losses bit for bit, as the same kernels run.
func TestCausalAttentionPath(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	c := baseConfig(t, "llama3")
	c.Steps, c.GradAccum = 2, 2
	want := runLosses(t, c, data)
	n, err := loadNet(context.Background(), c.Model, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	calls := int64(c.Steps * c.GradAccum * n.cfg.Layers)
	n.close()
	for _, dev := range []string{"train-test-attn", "train-test-attn-unsupported"} {
		attnCalls.Store(0)
		c.Device = dev
		got := runLosses(t, c, data)
		if n := attnCalls.Load(); n != calls {
			t.Errorf("%s: CausalAttention called %d times, want %d (once per layer and micro-batch)", dev, n, calls)
		}
		for i := range want {
			if got[i].Loss != want[i].Loss || got[i].GradNorm != want[i].GradNorm {
				t.Errorf("%s step %d: loss %v grad_norm %v; cpu %v %v", dev, i+1, got[i].Loss, got[i].GradNorm, want[i].Loss, want[i].GradNorm)
			}
		}
	}
}
