package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// Finite-difference checks of every backward op: for L = Σ dy·f(x) with a
// random dy, the op's ∂L/∂x against the central difference
// (L(x+h) − L(x−h)) / 2h of the forward op, summed in float64. The ops
// compute in float32, so the tolerance is 1e-2 of the largest gradient; the
// whole decoder is checked against PyTorch in train.

type fdEnv struct {
	t   *testing.T
	d   *Device
	r   *rand.Rand
	all []*gpu.Tensor
}

func (e *fdEnv) tensor(data []float32, shape ...int) *gpu.Tensor {
	e.t.Helper()
	x, err := gpu.FromHost(e.d, data, shape...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.all = append(e.all, x)
	return x
}

func (e *fdEnv) ints(data []int32) *gpu.Tensor {
	e.t.Helper()
	x, err := gpu.FromHost(e.d, data, len(data))
	if err != nil {
		e.t.Fatal(err)
	}
	e.all = append(e.all, x)
	return x
}

func (e *fdEnv) rand(s float64, shape ...int) *gpu.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(e.r.NormFloat64() * s)
	}
	return e.tensor(v, shape...)
}

func (e *fdEnv) zeros(shape ...int) *gpu.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return e.tensor(make([]float32, n), shape...)
}

func (e *fdEnv) host(x *gpu.Tensor) []float32 {
	e.t.Helper()
	v, err := gpu.ToHost[float32](x)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *fdEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// dotLoss is Σ dy·y in float64.
func (e *fdEnv) dotLoss(dy, y *gpu.Tensor) float64 {
	a, b := e.host(dy), e.host(y)
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// check perturbs each element of x and compares the loss's central
// difference with the analytic gradient g.
func (e *fdEnv) check(name string, x, g *gpu.Tensor, loss func() float64) {
	e.t.Helper()
	const h = 1e-2
	xs, gs := e.host(x), e.host(g)
	var gmax float64
	for _, v := range gs {
		gmax = math.Max(gmax, math.Abs(float64(v)))
	}
	if gmax == 0 {
		e.t.Fatalf("%s: the gradient is zero", name)
	}
	for i := range xs {
		v := xs[i]
		xs[i] = v + h
		e.must(gpu.Upload(x, xs))
		lp := loss()
		xs[i] = v - h
		e.must(gpu.Upload(x, xs))
		lm := loss()
		xs[i] = v
		e.must(gpu.Upload(x, xs))
		if fd := (lp - lm) / (2 * h); math.Abs(fd-float64(gs[i])) > 1e-2*gmax {
			e.t.Errorf("%s[%d]: gradient %.6g, finite difference %.6g", name, i, gs[i], fd)
			return
		}
	}
}

func TestBackwardFiniteDifferences(t *testing.T) {
	d, err := New(Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer gputest.CheckLeaks(t, d)
	e := &fdEnv{t: t, d: d, r: rand.New(rand.NewPCG(1, 2))}
	defer func() {
		for _, x := range e.all {
			x.Free()
		}
	}()

	t.Run("matmul", func(t *testing.T) {
		m, k, n := 3, 5, 4
		a, b, bias := e.rand(1, m, k), e.rand(1, n, k), e.rand(1, n)
		dc, c := e.rand(1, m, n), e.zeros(m, n)
		loss := func() float64 { e.must(d.MatMul(c, a, b, bias)); return e.dotLoss(dc, c) }
		da, db, dbias := e.zeros(m, k), e.zeros(n, k), e.zeros(n)
		e.must(d.MatMulBackward(da, db, dbias, dc, a, b))
		e.check("a", a, da, loss)
		e.check("b", b, db, loss)
		e.check("bias", bias, dbias, loss)
	})
	t.Run("embed", func(t *testing.T) {
		table, ids := e.rand(1, 5, 3), e.ints([]int32{4, 1, 4, 0})
		dy, y := e.rand(1, 4, 3), e.zeros(4, 3)
		loss := func() float64 { e.must(d.Embed(y, table, ids)); return e.dotLoss(dy, y) }
		dt := e.zeros(5, 3)
		e.must(d.EmbedBackward(dt, dy, ids))
		e.check("table", table, dt, loss)
	})
	t.Run("rmsnorm", func(t *testing.T) {
		h := 6
		x, w := e.rand(1, 3, h), e.rand(1, h)
		dy, y := e.rand(1, 3, h), e.zeros(3, h)
		loss := func() float64 { e.must(d.RMSNorm(y, x, nil, w, 1e-5)); return e.dotLoss(dy, y) }
		dx, dw := e.zeros(3, h), e.zeros(h)
		e.must(d.RMSNormBackward(dx, dw, dy, x, w, 1e-5))
		e.check("x", x, dx, loss)
		e.check("weight", w, dw, loss)
	})
	t.Run("rope", func(t *testing.T) {
		T, heads, kvh, hd := 4, 2, 1, 6
		rope := gpu.Rope{Theta: 100}
		q, k := e.rand(1, T, heads, hd), e.rand(1, T, kvh, hd)
		pos := e.ints([]int32{0, 1, 2, 5})
		dq, dk := e.rand(1, T, heads, hd), e.rand(1, T, kvh, hd)
		yq, yk := e.zeros(T, heads, hd), e.zeros(T, kvh, hd)
		loss := func() float64 {
			e.must(d.Copy(yq, q))
			e.must(d.Copy(yk, k))
			e.must(d.RoPE(yq, yk, pos, rope))
			return e.dotLoss(dq, yq) + e.dotLoss(dk, yk)
		}
		gq, gk := e.zeros(T, heads, hd), e.zeros(T, kvh, hd)
		e.must(d.Copy(gq, dq))
		e.must(d.Copy(gk, dk))
		e.must(d.RoPEBackward(gq, gk, pos, rope))
		e.check("q", q, gq, loss)
		e.check("k", k, gk, loss)
	})
	t.Run("silu", func(t *testing.T) {
		g, u := e.rand(2, 2, 5), e.rand(1, 2, 5)
		dy, y := e.rand(1, 2, 5), e.zeros(2, 5)
		loss := func() float64 { e.must(d.SiLUMul(y, g, u)); return e.dotLoss(dy, y) }
		dg, du := e.zeros(2, 5), e.zeros(2, 5)
		e.must(d.SiLUMulBackward(dg, du, dy, g, u))
		e.check("gate", g, dg, loss)
		e.check("up", u, du, loss)
	})
	t.Run("attention", func(t *testing.T) {
		B, T, heads, kvh, hd := 2, 4, 4, 2, 3
		q, k, v := e.rand(1, B*T, heads, hd), e.rand(1, B*T, kvh, hd), e.rand(1, B*T, kvh, hd)
		dy, y := e.rand(1, B*T, heads, hd), e.zeros(B*T, heads, hd)
		// Causal attention is Attention over a cache whose block b is
		// sequence b.
		kc, _ := k.View(B, T, kvh, hd)
		vc, _ := v.View(B, T, kvh, hd)
		batch := gpu.AttnBatch{
			BlockTables: e.ints([]int32{0, 1}), ContextLens: e.ints([]int32{int32(T), int32(T)}),
			QueryStarts: e.ints([]int32{0, int32(T), int32(2 * T)}),
		}
		batch.BlockTables, _ = batch.BlockTables.View(B, 1)
		loss := func() float64 { e.must(d.Attention(y, q, kc, vc, batch)); return e.dotLoss(dy, y) }
		dq, dk, dv := e.zeros(B*T, heads, hd), e.zeros(B*T, kvh, hd), e.zeros(B*T, kvh, hd)
		e.must(d.CausalAttentionBackward(dq, dk, dv, dy, q, k, v, T, 0))
		e.check("q", q, dq, loss)
		e.check("k", k, dk, loss)
		e.check("v", v, dv, loss)
	})
	t.Run("cross_entropy", func(t *testing.T) {
		x := e.rand(2, 3, 7)
		tg := e.ints([]int32{2, -1, 6})
		l, dl := e.zeros(3), e.zeros(3, 7)
		loss := func() float64 {
			e.must(d.CrossEntropy(l, dl, x, tg, 1))
			var s float64
			for _, v := range e.host(l) {
				s += float64(v)
			}
			return s
		}
		loss()
		g := e.zeros(3, 7)
		e.must(d.Copy(g, dl))
		if row := e.host(g)[7:14]; row[0] != 0 || row[6] != 0 {
			t.Errorf("the ignored row's gradient is %v, want zeros", row)
		}
		e.check("logits", x, g, loss)
	})
	t.Run("f32_only", func(t *testing.T) {
		a, err := d.Alloc(gpu.BF16, 2, 2)
		e.must(err)
		defer a.Free()
		if err := d.SiLUMulBackward(a, a, a, a, a); err == nil {
			t.Error("bf16 tensors were accepted")
		}
	})
}
