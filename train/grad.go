package train

import (
	"math"
)

// The decoder's forward pass and its reverse-mode gradient, in float32 on
// the host: every op keeps what its backward needs (inputs, inverse RMS,
// attention probabilities) and the backward pass runs the ops in reverse,
// accumulating into each param's g. Cross-entropy is fused with the LM head
// one row at a time, so a batch's logits are never all held at once.

// batch is one micro-batch: B right-padded rows of T ids; lens[b] tokens of
// row b are real. Targets are ids[b][t+1] for t+1 < lens[b].
type batch struct {
	ids  [][]int32
	lens []int
	T    int
}

func (b *batch) targets() int {
	n := 0
	for _, l := range b.lens {
		if l > 1 {
			n += l - 1
		}
	}
	return n
}

// layerActs is what one block's backward needs.
type layerActs struct {
	x0, inv1, h1  []float32 // block input (residual), its norm
	qPre, kPre    []float32 // q, k before the q/k norms (Qwen3)
	qInv, kInv    []float32
	q, k, v       []float32 // after RoPE
	p             []float32 // attention probabilities [B, heads, T, T]
	attn          []float32 // attention output before o_proj
	x1, inv2, h2  []float32 // after attention, its norm
	gate, up, act []float32
}

// lossAndGrad runs b forward, returns the sum of the cross-entropy over its
// targets and their count, and adds scale·∂sum/∂param into every param's g
// (scale = 1/targets of the whole step makes the gradient of the mean).
func (n *net) lossAndGrad(b *batch, scale float32) (float64, int) {
	c := n.cfg
	B, T := len(b.ids), b.T
	N, H := B*T, c.Hidden
	qd, kvd, hd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim, c.HeadDim
	eps := c.RMSNormEps
	inv := c.Rope.InvFreq(hd)
	cos, sin := make([]float32, T*hd/2), make([]float32, T*hd/2)
	for t := range T {
		for i, f := range inv {
			s, co := math.Sincos(float64(float32(t) * f))
			cos[t*hd/2+i], sin[t*hd/2+i] = float32(co), float32(s)
		}
	}
	x := make([]float32, N*H)
	for bi, row := range b.ids {
		for t, id := range row {
			copy(x[(bi*T+t)*H:(bi*T+t+1)*H], n.embed.w[int(id)*H:int(id+1)*H])
		}
	}
	acts := make([]layerActs, c.Layers)
	for li := range n.layers {
		ly, a := &n.layers[li], &acts[li]
		a.x0 = x
		a.h1, a.inv1 = rmsNorm(x, ly.inNorm.w, H, eps)
		a.q = linear(a.h1, ly.q, ly.qBias, N, H, qd)
		a.k = linear(a.h1, ly.k, ly.kBias, N, H, kvd)
		a.v = linear(a.h1, ly.v, ly.vBias, N, H, kvd)
		if ly.qNorm != nil {
			a.qPre, a.kPre = a.q, a.k
			a.q, a.qInv = rmsNorm(a.qPre, ly.qNorm.w, hd, eps)
			a.k, a.kInv = rmsNorm(a.kPre, ly.kNorm.w, hd, eps)
		}
		rope(a.q, cos, sin, T, c.Heads, hd, false)
		rope(a.k, cos, sin, T, c.KVHeads, hd, false)
		a.attn, a.p = attention(a.q, a.k, a.v, B, T, c.Heads, c.KVHeads, hd)
		o := linear(a.attn, ly.o, ly.oBias, N, qd, H)
		a.x1 = add(x, o)
		a.h2, a.inv2 = rmsNorm(a.x1, ly.postNorm.w, H, eps)
		a.gate = linear(a.h2, ly.gate, ly.gateBias, N, H, c.Intermediate)
		a.up = linear(a.h2, ly.up, ly.upBias, N, H, c.Intermediate)
		a.act = siluMul(a.gate, a.up)
		d := linear(a.act, ly.down, ly.downBias, N, c.Intermediate, H)
		x = add(a.x1, d)
	}
	hf, invF := rmsNorm(x, n.norm.w, H, eps)

	// Fused LM head and cross-entropy, one target row at a time.
	var sum float64
	count := 0
	dhf := make([]float32, N*H)
	logits := make([]float32, c.Vocab)
	for bi, row := range b.ids {
		for t := 0; t+1 < b.lens[bi]; t++ {
			r := bi*T + t
			hrow := hf[r*H : (r+1)*H]
			mx := float32(math.Inf(-1))
			for j := range logits {
				logits[j] = dot(hrow, n.lmHead.w[j*H:(j+1)*H])
				mx = max(mx, logits[j])
			}
			var se float64
			for _, l := range logits {
				se += math.Exp(float64(l - mx))
			}
			lse := float64(mx) + math.Log(se)
			tgt := int(row[t+1])
			sum += lse - float64(logits[tgt])
			count++
			drow := dhf[r*H : (r+1)*H]
			for j, l := range logits {
				g := float32(math.Exp(float64(l) - lse))
				if j == tgt {
					g--
				}
				g *= scale
				if g == 0 {
					continue
				}
				w := n.lmHead.w[j*H : (j+1)*H]
				gw := n.lmHead.g[j*H : (j+1)*H]
				for i := range drow {
					drow[i] += g * w[i]
					gw[i] += g * hrow[i]
				}
			}
		}
	}

	dx := rmsNormBack(dhf, x, invF, n.norm, H)
	for li := len(n.layers) - 1; li >= 0; li-- {
		ly, a := &n.layers[li], &acts[li]
		// x = x1 + down(act): dx flows to x1 and into the MLP.
		dAct := linearBack(dx, a.act, ly.down, ly.downBias, N, c.Intermediate, H)
		dGate, dUp := siluMulBack(dAct, a.gate, a.up)
		dh2 := linearBack(dGate, a.h2, ly.gate, ly.gateBias, N, H, c.Intermediate)
		addInto(dh2, linearBack(dUp, a.h2, ly.up, ly.upBias, N, H, c.Intermediate))
		dx1 := rmsNormBack(dh2, a.x1, a.inv2, ly.postNorm, H)
		addInto(dx1, dx)
		// x1 = x0 + o_proj(attn).
		dAttn := linearBack(dx1, a.attn, ly.o, ly.oBias, N, qd, H)
		dq, dk, dv := attentionBack(dAttn, a.q, a.k, a.v, a.p, B, T, c.Heads, c.KVHeads, hd)
		rope(dq, cos, sin, T, c.Heads, hd, true)
		rope(dk, cos, sin, T, c.KVHeads, hd, true)
		if ly.qNorm != nil {
			dq = rmsNormBack(dq, a.qPre, a.qInv, ly.qNorm, hd)
			dk = rmsNormBack(dk, a.kPre, a.kInv, ly.kNorm, hd)
		}
		dh1 := linearBack(dq, a.h1, ly.q, ly.qBias, N, H, qd)
		addInto(dh1, linearBack(dk, a.h1, ly.k, ly.kBias, N, H, kvd))
		addInto(dh1, linearBack(dv, a.h1, ly.v, ly.vBias, N, H, kvd))
		dx0 := rmsNormBack(dh1, a.x0, a.inv1, ly.inNorm, H)
		addInto(dx0, dx1)
		dx = dx0
	}
	H2 := H
	for bi, row := range b.ids {
		for t, id := range row {
			g := n.embed.g[int(id)*H2 : int(id+1)*H2]
			d := dx[(bi*T+t)*H2 : (bi*T+t+1)*H2]
			for i := range g {
				g[i] += d[i]
			}
		}
	}
	return sum, count
}

func dot(a, b []float32) float32 {
	var s float32
	b = b[:len(a)]
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func add(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range out {
		out[i] = a[i] + b[i]
	}
	return out
}

func addInto(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}

// linear is x·wᵀ + bias: x [m, k], w [n, k] (torch.nn.Linear), out [m, n].
func linear(x []float32, w, bias *param, m, k, n int) []float32 {
	out := make([]float32, m*n)
	parallel(m, func(i int) {
		xr := x[i*k : (i+1)*k]
		or := out[i*n : (i+1)*n]
		for j := range or {
			s := dot(xr, w.w[j*k:(j+1)*k])
			if bias != nil {
				s += bias.w[j]
			}
			or[j] = s
		}
	})
	return out
}

// linearBack adds dout's gradients into w.g (and bias.g) and returns dx.
func linearBack(dout, x []float32, w, bias *param, m, k, n int) []float32 {
	dx := make([]float32, m*k)
	parallel(m, func(i int) {
		dr := dx[i*k : (i+1)*k]
		for j, d := range dout[i*n : (i+1)*n] {
			if d == 0 {
				continue
			}
			wr := w.w[j*k : (j+1)*k]
			for l := range dr {
				dr[l] += d * wr[l]
			}
		}
	})
	parallel(n, func(j int) {
		gr := w.g[j*k : (j+1)*k]
		var bs float32
		for i := range m {
			d := dout[i*n+j]
			bs += d
			if d == 0 {
				continue
			}
			xr := x[i*k : (i+1)*k]
			for l := range gr {
				gr[l] += d * xr[l]
			}
		}
		if bias != nil {
			bias.g[j] += bs
		}
	})
	return dx
}

// rmsNorm normalizes rows of width h: x / sqrt(mean(x²) + eps) · w; it
// returns the output and each row's inverse RMS.
func rmsNorm(x, w []float32, h int, eps float32) ([]float32, []float32) {
	rows := len(x) / h
	out, inv := make([]float32, len(x)), make([]float32, rows)
	for r := range rows {
		xr := x[r*h : (r+1)*h]
		var ss float32
		for _, v := range xr {
			ss += v * v
		}
		iv := float32(1 / math.Sqrt(float64(ss/float32(h)+eps)))
		inv[r] = iv
		or := out[r*h : (r+1)*h]
		for j, v := range xr {
			or[j] = v * iv * w[j]
		}
	}
	return out, inv
}

// rmsNormBack adds the weight's gradient into w.g and returns dx.
func rmsNormBack(dy, x, inv []float32, w *param, h int) []float32 {
	dx := make([]float32, len(x))
	for r := range inv {
		iv := inv[r]
		xr, dr, out := x[r*h:(r+1)*h], dy[r*h:(r+1)*h], dx[r*h:(r+1)*h]
		var s float32
		for j, d := range dr {
			w.g[j] += d * xr[j] * iv
			s += d * w.w[j] * xr[j]
		}
		c := iv * iv * iv * s / float32(h)
		for j, d := range dr {
			out[j] = iv*d*w.w[j] - c*xr[j]
		}
	}
	return dx
}

// rope rotates [B·T, heads, hd] in place by the angle of each row's
// position (row % T), rotate-half as Hugging Face Llama; back rotates by the
// opposite angle, which is the gradient of the rotation.
func rope(x, cos, sin []float32, T, heads, hd int, back bool) {
	half := hd / 2
	rows := len(x) / (heads * hd)
	for r := range rows {
		t := r % T
		c, s := cos[t*half:(t+1)*half], sin[t*half:(t+1)*half]
		for h := range heads {
			v := x[(r*heads+h)*hd : (r*heads+h+1)*hd]
			for i := range half {
				a, b := v[i], v[i+half]
				if back {
					v[i] = a*c[i] + b*s[i]
					v[i+half] = b*c[i] - a*s[i]
				} else {
					v[i] = a*c[i] - b*s[i]
					v[i+half] = b*c[i] + a*s[i]
				}
			}
		}
	}
}

// attention is causal attention with grouped-query heads over B sequences
// of T positions: q [B·T, heads, hd], k and v [B·T, kvHeads, hd]. It
// returns the output and the probabilities [B, heads, T, T].
func attention(q, k, v []float32, B, T, heads, kvHeads, hd int) ([]float32, []float32) {
	out := make([]float32, B*T*heads*hd)
	p := make([]float32, B*heads*T*T)
	scale := float32(1 / math.Sqrt(float64(hd)))
	group := heads / kvHeads
	parallel(B*heads, func(bh int) {
		b, h := bh/heads, bh%heads
		g := h / group
		for i := range T {
			qi := q[((b*T+i)*heads+h)*hd:][:hd]
			pr := p[((b*heads+h)*T+i)*T:][:T]
			mx := float32(math.Inf(-1))
			for j := 0; j <= i; j++ {
				pr[j] = dot(qi, k[((b*T+j)*kvHeads+g)*hd:][:hd]) * scale
				mx = max(mx, pr[j])
			}
			var sum float32
			for j := 0; j <= i; j++ {
				pr[j] = float32(math.Exp(float64(pr[j] - mx)))
				sum += pr[j]
			}
			oi := out[((b*T+i)*heads+h)*hd:][:hd]
			for j := 0; j <= i; j++ {
				pr[j] /= sum
				vj := v[((b*T+j)*kvHeads+g)*hd:][:hd]
				for l := range oi {
					oi[l] += pr[j] * vj[l]
				}
			}
		}
	})
	return out, p
}

func attentionBack(dout, q, k, v, p []float32, B, T, heads, kvHeads, hd int) (dq, dk, dv []float32) {
	dq = make([]float32, len(q))
	dk, dv = make([]float32, len(k)), make([]float32, len(v))
	scale := float32(1 / math.Sqrt(float64(hd)))
	group := heads / kvHeads
	// One task per sequence and kv head, so that dk and dv of a head group
	// are written by one goroutine in a fixed order.
	parallel(B*kvHeads, func(bg int) {
		b, g := bg/kvHeads, bg%kvHeads
		dp := make([]float32, T)
		for h := g * group; h < (g+1)*group; h++ {
			for i := range T {
				do := dout[((b*T+i)*heads+h)*hd:][:hd]
				qi := q[((b*T+i)*heads+h)*hd:][:hd]
				dqi := dq[((b*T+i)*heads+h)*hd:][:hd]
				pr := p[((b*heads+h)*T+i)*T:][:T]
				var s float32
				for j := 0; j <= i; j++ {
					vj := v[((b*T+j)*kvHeads+g)*hd:][:hd]
					dvj := dv[((b*T+j)*kvHeads+g)*hd:][:hd]
					dp[j] = dot(do, vj)
					s += pr[j] * dp[j]
					for l := range dvj {
						dvj[l] += pr[j] * do[l]
					}
				}
				for j := 0; j <= i; j++ {
					ds := pr[j] * (dp[j] - s) * scale
					kj := k[((b*T+j)*kvHeads+g)*hd:][:hd]
					dkj := dk[((b*T+j)*kvHeads+g)*hd:][:hd]
					for l := range dqi {
						dqi[l] += ds * kj[l]
						dkj[l] += ds * qi[l]
					}
				}
			}
		}
	})
	return dq, dk, dv
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func siluMul(gate, up []float32) []float32 {
	out := make([]float32, len(gate))
	for i, g := range gate {
		out[i] = g * sigmoid(g) * up[i]
	}
	return out
}

func siluMulBack(dy, gate, up []float32) (dg, du []float32) {
	dg, du = make([]float32, len(gate)), make([]float32, len(up))
	for i, g := range gate {
		s := sigmoid(g)
		du[i] = dy[i] * g * s
		dg[i] = dy[i] * up[i] * s * (1 + g*(1-s))
	}
	return dg, du
}
