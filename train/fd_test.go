package train

import (
	"math"
	"testing"
)

// Each backward op is checked against finite differences in gpu/cpu
// (TestBackwardFiniteDifferences); the whole decoder is checked against
// PyTorch at 1e-4 in reference_test.go.

// TestFiniteDifferencesModel checks the embedding, the final norm and the
// fused LM head with cross-entropy (ignored targets included) through the
// whole decoder at a few elements.
func TestFiniteDifferencesModel(t *testing.T) {
	n, err := loadNet(t.Context(), fixtureDir("llama2"), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	b := &batch{ids: [][]int32{{1, 7, 9, 30, 2}, {5, 6, 0, 0, 0}}, lens: []int{5, 2}, T: 5}
	cnt := b.targets()
	loss := func() float64 {
		n.zeroGrad()
		s, _, err := n.lossAndGrad(b, 1/float32(cnt))
		if err != nil {
			t.Fatal(err)
		}
		return s / float64(cnt)
	}
	loss()
	// A pass frees what it allocates: only the weights and gradients stay.
	var want int64
	for _, p := range n.params {
		want += int64(8 * len(p.w))
	}
	if got := n.dev.LiveBytes(); got != want {
		t.Errorf("after a pass the device holds %d bytes, want the %d of the weights and gradients", got, want)
	}
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
