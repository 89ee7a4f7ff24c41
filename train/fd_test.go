package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Finite-difference checks of every op's backward: for L = Σ dy·f(x) with
// a random dy, the analytic ∂L/∂x against the central difference
// (L(x+h) − L(x−h)) / 2h, summed in float64. The ops compute in float32, so
// the tolerance is 1e-2 of the largest gradient; the whole decoder is
// checked against PyTorch at 1e-4 in reference_test.go.

func randVec(r *rand.Rand, n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * s)
	}
	return v
}

func dotF64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkFD perturbs each element of x (a slice f reads) and compares with
// the analytic gradient g.
func checkFD(t *testing.T, name string, x, g []float32, loss func() float64) {
	t.Helper()
	const h = 1e-2
	var gmax float64
	for _, v := range g {
		gmax = math.Max(gmax, math.Abs(float64(v)))
	}
	if gmax == 0 {
		t.Fatalf("%s: the gradient is zero", name)
	}
	for i := range x {
		v := x[i]
		x[i] = v + h
		lp := loss()
		x[i] = v - h
		lm := loss()
		x[i] = v
		fd := (lp - lm) / (2 * h)
		if math.Abs(fd-float64(g[i])) > 1e-2*gmax {
			t.Errorf("%s[%d]: gradient %.6g, finite difference %.6g", name, i, g[i], fd)
			return
		}
	}
}

func TestFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	t.Run("linear", func(t *testing.T) {
		m, k, n := 3, 5, 4
		x := randVec(r, m*k, 1)
		w := &param{w: randVec(r, n*k, 1), g: make([]float32, n*k)}
		b := &param{w: randVec(r, n, 1), g: make([]float32, n)}
		dy := randVec(r, m*n, 1)
		loss := func() float64 { return dotF64(dy, linear(x, w, b, m, k, n)) }
		dx := linearBack(dy, x, w, b, m, k, n)
		checkFD(t, "x", x, dx, loss)
		checkFD(t, "w", w.w, w.g, loss)
		checkFD(t, "bias", b.w, b.g, loss)
	})
	t.Run("rmsnorm", func(t *testing.T) {
		h := 6
		x := randVec(r, 3*h, 1)
		w := &param{w: randVec(r, h, 1), g: make([]float32, h)}
		dy := randVec(r, 3*h, 1)
		loss := func() float64 { y, _ := rmsNorm(x, w.w, h, 1e-5); return dotF64(dy, y) }
		_, inv := rmsNorm(x, w.w, h, 1e-5)
		dx := rmsNormBack(dy, x, inv, w, h)
		checkFD(t, "x", x, dx, loss)
		checkFD(t, "weight", w.w, w.g, loss)
	})
	t.Run("rope", func(t *testing.T) {
		T, heads, hd := 4, 2, 6
		cos, sin := make([]float32, T*hd/2), make([]float32, T*hd/2)
		for p := range T {
			for i := range hd / 2 {
				a := float64(p) * math.Pow(100, -float64(2*i)/float64(hd))
				cos[p*hd/2+i], sin[p*hd/2+i] = float32(math.Cos(a)), float32(math.Sin(a))
			}
		}
		x := randVec(r, 2*T*heads*hd, 1)
		dy := randVec(r, len(x), 1)
		loss := func() float64 {
			y := append([]float32(nil), x...)
			rope(y, cos, sin, T, heads, hd, false)
			return dotF64(dy, y)
		}
		dx := append([]float32(nil), dy...)
		rope(dx, cos, sin, T, heads, hd, true)
		checkFD(t, "x", x, dx, loss)
	})
	t.Run("attention", func(t *testing.T) {
		B, T, heads, kv, hd := 2, 4, 4, 2, 3
		q := randVec(r, B*T*heads*hd, 1)
		k := randVec(r, B*T*kv*hd, 1)
		v := randVec(r, B*T*kv*hd, 1)
		dy := randVec(r, len(q), 1)
		loss := func() float64 { o, _ := attention(q, k, v, B, T, heads, kv, hd); return dotF64(dy, o) }
		_, p := attention(q, k, v, B, T, heads, kv, hd)
		dq, dk, dv := attentionBack(dy, q, k, v, p, B, T, heads, kv, hd)
		checkFD(t, "q", q, dq, loss)
		checkFD(t, "k", k, dk, loss)
		checkFD(t, "v", v, dv, loss)
	})
	t.Run("silu", func(t *testing.T) {
		g, u := randVec(r, 10, 2), randVec(r, 10, 1)
		dy := randVec(r, 10, 1)
		loss := func() float64 { return dotF64(dy, siluMul(g, u)) }
		dg, du := siluMulBack(dy, g, u)
		checkFD(t, "gate", g, dg, loss)
		checkFD(t, "up", u, du, loss)
	})
}

// TestFiniteDifferencesModel checks the embedding, the final norm and the
// fused LM head with cross-entropy (ignored targets included) through the
// whole decoder at a few elements.
func TestFiniteDifferencesModel(t *testing.T) {
	n, err := loadNet(t.Context(), fixtureDir("llama2"))
	if err != nil {
		t.Fatal(err)
	}
	b := &batch{ids: [][]int32{{1, 7, 9, 30, 2}, {5, 6, 0, 0, 0}}, lens: []int{5, 2}, T: 5}
	cnt := b.targets()
	loss := func() float64 {
		n.zeroGrad()
		s, _ := n.lossAndGrad(b, 1/float32(cnt))
		return s / float64(cnt)
	}
	loss()
	for _, p := range []*param{n.embed, n.norm, n.lmHead, n.layers[1].down} {
		g := append([]float32(nil), p.g...)
		var gmax float64
		for _, v := range g {
			gmax = math.Max(gmax, math.Abs(float64(v)))
		}
		// The largest few and some fixed elements.
		for _, i := range []int{0, 7, len(g) / 3, len(g) - 1, argmaxAbs(g)} {
			v := p.w[i]
			const h = 1e-2
			p.w[i] = v + h
			lp := loss()
			p.w[i] = v - h
			lm := loss()
			p.w[i] = v
			fd := (lp - lm) / (2 * h)
			if math.Abs(fd-float64(g[i])) > 2e-2*gmax {
				t.Errorf("%s[%d]: gradient %.6g, finite difference %.6g (largest %.3g)", p.name, i, g[i], fd, gmax)
			}
		}
	}
}

func argmaxAbs(g []float32) int {
	best := 0
	for i, v := range g {
		if math.Abs(float64(v)) > math.Abs(float64(g[best])) {
			best = i
		}
	}
	return best
}
