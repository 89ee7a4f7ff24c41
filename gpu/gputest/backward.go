package gputest

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// The conformance tests of gpu.BackwardOps: every method against a float64
// reference written from the definitions (below, apart from any backend), on
// fresh seeded random f32 inputs, odd sizes, grouped-query attention, nil
// optional outputs, aliased outputs and negative cross-entropy targets.
// Outputs the method writes start as NaN, so that an unwritten element
// shows; outputs it accumulates into start random, so that an overwrite
// shows. Tolerances are relative, 1e-4 of each element's magnitude bound
// (the sum of the absolute values of the terms it adds up); for attention's
// gradients, whose bound is long to write, 1e-4 of |want| plus the RMS of
// the tensor. The ops that must not depend on scheduling are also run
// twice and compared bit for bit.

// relTol is the relative tolerance of the f32 backward ops.
const relTol = 1e-4

// RunBackward runs the BackwardOps conformance tests as subtests of t. It
// fails, rather than skips, on a device whose Ops have no BackwardOps.
func (s Suite) RunBackward(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*env, gpu.BackwardOps)
	}{
		{"MatMulBackward", testMatMulBackward},
		{"EmbedBackward", testEmbedBackward},
		{"RMSNormBackward", testRMSNormBackward},
		{"RoPEBackward", testRoPEBackward},
		{"SiLUMulBackward", testSiLUMulBackward},
		{"CausalAttentionBackward", testAttentionBackward},
		{"CrossEntropy", testCrossEntropy},
		{"Errors", testBackwardErrors},
	}
	if s.CheckIndices {
		tests = append(tests, struct {
			name string
			fn   func(*env, gpu.BackwardOps)
		}{"IndexErrors", testBackwardIndexErrors})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := s.env(t)
			b, ok := e.ops.(gpu.BackwardOps)
			if !ok {
				t.Fatalf("the %s device's ops (%T) have no gpu.BackwardOps", e.dev.Name(), e.ops)
			}
			tc.fn(e, b)
		})
	}
}

// f32s uploads data as an f32 tensor.
func (e *env) f32s(data []float32, shape ...int) *gpu.Tensor {
	e.t.Helper()
	return e.tensor(f32, data, shape...)
}

// relTols returns relTol·mag + floor per element.
func relTols(mag []float64, floor float64) []float64 {
	tol := make([]float64, len(mag))
	for i, m := range mag {
		tol[i] = relTol*m + floor
	}
	return tol
}

// rmsTols returns relTol·(|want| + rms(want)) per element.
func rmsTols(want []float64) []float64 {
	var ss float64
	for _, w := range want {
		ss += w * w
	}
	rms := 0.0
	if len(want) > 0 {
		rms = math.Sqrt(ss / float64(len(want)))
	}
	tol := make([]float64, len(want))
	for i, w := range want {
		tol[i] = relTol*(math.Abs(w)+rms) + 1e-12
	}
	return tol
}

// same fails when two runs' results differ in any bit.
func (e *env) same(what string, a, b []float32) {
	e.t.Helper()
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			e.t.Errorf("%s[%d]: %v on the first run, %v on the second: results depend on scheduling", what, i, a[i], b[i])
			return
		}
	}
}

func testMatMulBackward(e *env, ops gpu.BackwardOps) {
	type outs struct{ da, db, dbias bool }
	all := outs{true, true, true}
	cases := []struct {
		m, n, k int
		o       outs
		views   bool // a, dc and da as [2, m/2, ·]
	}{
		{1, 1, 1, all, false}, {3, 5, 7, all, false}, {13, 17, 19, all, false}, {14, 17, 19, all, true}, {64, 33, 100, all, false},
		{130, 50, 257, all, true}, {33, 129, 65, all, false},
		{7, 9, 11, outs{da: true}, false}, {7, 9, 11, outs{db: true}, false}, {7, 9, 11, outs{dbias: true}, false},
		{8, 6, 5, outs{db: true, dbias: true}, true}, {5, 4, 3, outs{}, false},
		{2, 3, 0, all, false}, // k = 0: only the bias has a gradient
		{4, 0, 5, all, false}, // n = 0: da = 0
		{0, 3, 4, all, false}, // m = 0: nothing added
	}
	for _, c := range cases {
		m, n, k := c.m, c.n, c.k
		name := fmt.Sprintf("%dx%dx%d/da=%v,db=%v,dbias=%v", m, n, k, c.o.da, c.o.db, c.o.dbias)
		if c.views {
			name += "/views"
		}
		e.run(name, func(e *env) {
			a, b, dc := e.values(f32, m*k, 1), e.values(f32, n*k, 1), e.values(f32, m*n, 1)
			db0, dbias0 := e.values(f32, n*k, 1), e.values(f32, n, 1)
			rowsOf := func(cols int) []int {
				if c.views {
					return []int{2, m / 2, cols}
				}
				return []int{m, cols}
			}
			at, bt, dct := e.f32s(a, rowsOf(k)...), e.f32s(b, n, k), e.f32s(dc, rowsOf(n)...)
			var dat, dbt, dbiast *gpu.Tensor
			if c.o.da {
				dat = e.poison(f32, rowsOf(k)...)
			}
			if c.o.db {
				dbt = e.f32s(db0, n, k)
			}
			if c.o.dbias {
				dbiast = e.f32s(dbias0, n)
			}
			e.must(ops.MatMulBackward(dat, dbt, dbiast, dct, at, bt))
			if c.o.da {
				want, mag := make([]float64, m*k), make([]float64, m*k)
				for i := range m {
					for p := range k {
						for j := range n {
							x := float64(dc[i*n+j]) * float64(b[j*k+p])
							want[i*k+p] += x
							mag[i*k+p] += math.Abs(x)
						}
					}
				}
				e.near("da", e.get(dat), want, relTols(mag, 1e-12))
			}
			if c.o.db {
				want, mag := make([]float64, n*k), make([]float64, n*k)
				for j := range n {
					for p := range k {
						want[j*k+p], mag[j*k+p] = float64(db0[j*k+p]), math.Abs(float64(db0[j*k+p]))
						for i := range m {
							x := float64(dc[i*n+j]) * float64(a[i*k+p])
							want[j*k+p] += x
							mag[j*k+p] += math.Abs(x)
						}
					}
				}
				e.near("db", e.get(dbt), want, relTols(mag, 1e-12))
			}
			if c.o.dbias {
				want, mag := make([]float64, n), make([]float64, n)
				for j := range n {
					want[j], mag[j] = float64(dbias0[j]), math.Abs(float64(dbias0[j]))
					for i := range m {
						want[j] += float64(dc[i*n+j])
						mag[j] += math.Abs(float64(dc[i*n+j]))
					}
				}
				e.near("dbias", e.get(dbiast), want, relTols(mag, 1e-12))
			}
		})
	}
}

func testEmbedBackward(e *env, ops gpu.BackwardOps) {
	for _, c := range []struct{ rows, t, h int }{
		{1, 1, 1}, {7, 11, 5}, {5, 40, 67}, {300, 17, 300}, {4, 0, 3}, {50, 200, 1025},
	} {
		e.run(fmt.Sprintf("n%d/t%d/h%d", c.rows, c.t, c.h), func(e *env) {
			ids := make([]int32, c.t)
			for i := range ids {
				ids[i] = int32(e.rng.IntN(c.rows))
			}
			if c.t >= 3 {
				ids[2] = ids[0] // a row gathered twice, or more, gets each
			}
			tab0, dy := e.values(f32, c.rows*c.h, 1), e.values(f32, c.t*c.h, 1)
			want, mag := make([]float64, len(tab0)), make([]float64, len(tab0))
			for i, v := range tab0 {
				want[i], mag[i] = float64(v), math.Abs(float64(v))
			}
			for i, id := range ids {
				for j := range c.h {
					want[int(id)*c.h+j] += float64(dy[i*c.h+j])
					mag[int(id)*c.h+j] += math.Abs(float64(dy[i*c.h+j]))
				}
			}
			idt := e.ints(ids, c.t)
			dyt := e.f32s(dy, c.t, c.h)
			run := func() []float32 {
				tab := e.f32s(tab0, c.rows, c.h)
				e.must(ops.EmbedBackward(tab, dyt, idt))
				return e.get(tab)
			}
			got := run()
			e.near("dtable", got, want, relTols(mag, 1e-12))
			e.same("dtable", got, run())
		})
	}
}

func testRMSNormBackward(e *env, ops gpu.BackwardOps) {
	for _, c := range []struct {
		rows, h int
		eps     float32
		alias   bool // dx is dy
	}{
		{1, 1, 1e-5, false}, {3, 6, 1e-5, false}, {17, 67, 1e-6, true}, {70, 1000, 1e-5, false},
		{5, 2500, 0, true}, {130, 33, 1e-5, false},
	} {
		e.run(fmt.Sprintf("%dx%d/eps%g/alias=%v", c.rows, c.h, c.eps, c.alias), func(e *env) {
			rows, h := c.rows, c.h
			x, w, dy := e.values(f32, rows*h, 2), e.values(f32, h, 1.5), e.values(f32, rows*h, 1)
			dw0 := e.values(f32, h, 1)
			wantX, magX := make([]float64, rows*h), make([]float64, rows*h)
			wantW, magW := make([]float64, h), make([]float64, h)
			for j, v := range dw0 {
				wantW[j], magW[j] = float64(v), math.Abs(float64(v))
			}
			for r := range rows {
				xr, gr := x[r*h:(r+1)*h], dy[r*h:(r+1)*h]
				var ss float64
				for _, v := range xr {
					ss += float64(v) * float64(v)
				}
				inv := 1 / math.Sqrt(ss/float64(h)+float64(c.eps))
				var sum, sumAbs float64
				for j := range h {
					t := float64(gr[j]) * float64(w[j]) * float64(xr[j])
					sum += t
					sumAbs += math.Abs(t)
					wantW[j] += float64(gr[j]) * float64(xr[j]) * inv
					magW[j] += math.Abs(float64(gr[j]) * float64(xr[j]) * inv)
				}
				k := inv * inv * inv / float64(h)
				for j := range h {
					wantX[r*h+j] = inv*float64(gr[j])*float64(w[j]) - k*sum*float64(xr[j])
					magX[r*h+j] = inv*math.Abs(float64(gr[j])*float64(w[j])) + k*sumAbs*math.Abs(float64(xr[j]))
				}
			}
			xt, wt := e.f32s(x, rows, h), e.f32s(w, h)
			run := func() (dx, dw []float32) {
				dyt := e.f32s(dy, rows, h)
				dxt := dyt
				if !c.alias {
					dxt = e.poison(f32, rows, h)
				}
				dwt := e.f32s(dw0, h)
				e.must(ops.RMSNormBackward(dxt, dwt, dyt, xt, wt, c.eps))
				return e.get(dxt), e.get(dwt)
			}
			dx, dw := run()
			e.near("dx", dx, wantX, relTols(magX, 1e-12))
			e.near("dweight", dw, wantW, relTols(magW, 1e-12))
			dx2, dw2 := run()
			e.same("dx", dx, dx2)
			e.same("dweight", dw, dw2)
		})
	}
}

func testRoPEBackward(e *env, ops gpu.BackwardOps) {
	llama3 := &gpu.Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	for _, c := range []struct {
		name   string
		rope   gpu.Rope
		d, kvh int // kvh 0: no dk
	}{
		{"theta1e4", gpu.Rope{Theta: 10000}, 2, 1}, {"theta1e4", gpu.Rope{Theta: 10000}, 6, 0},
		{"llama3", gpu.Rope{Theta: 500000, Llama3: llama3}, 64, 2}, {"theta1e6", gpu.Rope{Theta: 1e6}, 128, 1},
	} {
		e.run(fmt.Sprintf("%s/d%d/k%d", c.name, c.d, c.kvh), func(e *env) {
			const t, qh = 7, 6
			pos := []int32{0, 1, 17, 4095, 8191, 20000, 131071}
			inv := refInvFreq(c.rope.Theta, c.d, c.rope.Llama3)
			// The transpose of the rotation: by the negated angle.
			ref := func(x []float32, heads int) (out, mag []float64) {
				out, mag = make([]float64, len(x)), make([]float64, len(x))
				half := c.d / 2
				for ti, p := range pos {
					for h := range heads {
						o := (ti*heads + h) * c.d
						for i := range half {
							ang := float64(float32(p) * inv[i])
							cs, sn := math.Cos(ang), math.Sin(ang)
							x1, x2 := float64(x[o+i]), float64(x[o+half+i])
							out[o+i] = x1*cs + x2*sn
							out[o+half+i] = x2*cs - x1*sn
							mag[o+i] = math.Abs(x1) + math.Abs(x2)
							mag[o+half+i] = mag[o+i]
						}
					}
				}
				return out, mag
			}
			dq := e.values(f32, t*qh*c.d, 2)
			dqt := e.f32s(dq, t, qh, c.d)
			var dk []float32
			var dkt *gpu.Tensor
			if c.kvh > 0 {
				dk = e.values(f32, t*c.kvh*c.d, 2)
				dkt = e.f32s(dk, t, c.kvh, c.d)
			}
			e.must(ops.RoPEBackward(dqt, dkt, e.ints(pos, t), c.rope))
			want, mag := ref(dq, qh)
			e.near("dq", e.get(dqt), want, relTols(mag, 1e-12))
			if dkt != nil {
				want, mag := ref(dk, c.kvh)
				e.near("dk", e.get(dkt), want, relTols(mag, 1e-12))
			}
		})
	}
}

func testSiLUMulBackward(e *env, ops gpu.BackwardOps) {
	for _, c := range []struct {
		rows, n int
		alias   bool // dgate is gate, dup is up
	}{{1, 1, false}, {3, 37, false}, {5, 1000, true}, {2, 4099, false}} {
		e.run(fmt.Sprintf("%dx%d/alias=%v", c.rows, c.n, c.alias), func(e *env) {
			n := c.rows * c.n
			g, u, dy := e.values(f32, n, 12), e.values(f32, n, 2), e.values(f32, n, 1)
			wantG, magG, wantU, magU := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
			for i := range n {
				x, up, d := float64(g[i]), float64(u[i]), float64(dy[i])
				s := 1 / (1 + math.Exp(-x))
				wantU[i], magU[i] = d*x*s, math.Abs(d*x*s)
				wantG[i] = d * up * s * (1 + x*(1-s))
				magG[i] = math.Abs(d*up*s) * (1 + math.Abs(x)*(1-s))
			}
			gt, ut, dyt := e.f32s(g, c.rows, c.n), e.f32s(u, c.rows, c.n), e.f32s(dy, c.rows, c.n)
			dgt, dut := gt, ut
			if !c.alias {
				dgt, dut = e.poison(f32, c.rows, c.n), e.poison(f32, c.rows, c.n)
			}
			e.must(ops.SiLUMulBackward(dgt, dut, dyt, gt, ut))
			e.near("dgate", e.get(dgt), wantG, relTols(magG, 1e-12))
			e.near("dup", e.get(dut), wantU, relTols(magU, 1e-12))
		})
	}
}

// refAttentionBackward is the gradient of dense causal attention over seqs
// sequences of seqLen tokens, from the definitions: p = softmax(q·k·scale)
// over keys 0..i, dv_j = Σ_i p_ij·dout_i, dp_ij = dout_i·v_j, ds_ij =
// p_ij·(dp_ij − Σ_j' p_ij'·dp_ij'), dq_i = scale·Σ_j ds_ij·k_j, dk_j =
// scale·Σ_i ds_ij·q_i, summed over the heads of the key's group.
func refAttentionBackward(dout, q, k, v []float32, seqs, seqLen, heads, kvh, d int, scale float64) (dq, dk, dv []float64) {
	dq, dk, dv = make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
	g := heads / kvh
	qo := func(b, i, h int) int { return ((b*seqLen+i)*heads + h) * d }
	ko := func(b, j, h int) int { return ((b*seqLen+j)*kvh + h/g) * d }
	dot := func(x []float32, xo int, y []float32, yo int) float64 {
		var s float64
		for l := range d {
			s += float64(x[xo+l]) * float64(y[yo+l])
		}
		return s
	}
	p, dp := make([]float64, seqLen), make([]float64, seqLen)
	for b := range seqs {
		for h := range heads {
			for i := range seqLen {
				m := math.Inf(-1)
				for j := 0; j <= i; j++ {
					p[j] = dot(q, qo(b, i, h), k, ko(b, j, h)) * scale
					m = math.Max(m, p[j])
				}
				var z float64
				for j := 0; j <= i; j++ {
					p[j] = math.Exp(p[j] - m)
					z += p[j]
				}
				var sd float64
				for j := 0; j <= i; j++ {
					p[j] /= z
					dp[j] = dot(dout, qo(b, i, h), v, ko(b, j, h))
					sd += p[j] * dp[j]
				}
				for j := 0; j <= i; j++ {
					ds := p[j] * (dp[j] - sd) * scale
					for l := range d {
						dq[qo(b, i, h)+l] += ds * float64(k[ko(b, j, h)+l])
						dk[ko(b, j, h)+l] += ds * float64(q[qo(b, i, h)+l])
						dv[ko(b, j, h)+l] += p[j] * float64(dout[qo(b, i, h)+l])
					}
				}
			}
		}
	}
	return dq, dk, dv
}

func testAttentionBackward(e *env, ops gpu.BackwardOps) {
	for _, c := range []struct {
		seqs, seqLen, heads, kvh, d int
		scale                       float32
	}{
		{1, 1, 1, 1, 4, 0}, {2, 5, 4, 2, 8, 0}, {3, 7, 6, 2, 33, 0.3}, {1, 40, 8, 1, 64, 0},
		{2, 17, 4, 4, 128, 0}, {1, 9, 2, 1, 256, 0}, {2, 70, 3, 1, 16, 1},
	} {
		e.run(fmt.Sprintf("b%d/t%d/h%d/kv%d/d%d/scale%g", c.seqs, c.seqLen, c.heads, c.kvh, c.d, c.scale), func(e *env) {
			tq, tk := c.seqs*c.seqLen*c.heads*c.d, c.seqs*c.seqLen*c.kvh*c.d
			q, k, v, dout := e.values(f32, tq, 1), e.values(f32, tk, 1), e.values(f32, tk, 1), e.values(f32, tq, 1)
			scale := float64(c.scale)
			if c.scale == 0 {
				scale = 1 / math.Sqrt(float64(c.d))
			}
			wq, wk, wv := refAttentionBackward(dout, q, k, v, c.seqs, c.seqLen, c.heads, c.kvh, c.d, scale)
			rows := c.seqs * c.seqLen
			qt, kt, vt, dot := e.f32s(q, rows, c.heads, c.d), e.f32s(k, rows, c.kvh, c.d), e.f32s(v, rows, c.kvh, c.d), e.f32s(dout, rows, c.heads, c.d)
			run := func() (dq, dk, dv []float32) {
				dqt, dkt, dvt := e.poison(f32, rows, c.heads, c.d), e.poison(f32, rows, c.kvh, c.d), e.poison(f32, rows, c.kvh, c.d)
				e.must(ops.CausalAttentionBackward(dqt, dkt, dvt, dot, qt, kt, vt, c.seqLen, c.scale))
				return e.get(dqt), e.get(dkt), e.get(dvt)
			}
			dq, dk, dv := run()
			e.near("dq", dq, wq, rmsTols(wq))
			e.near("dk", dk, wk, rmsTols(wk))
			e.near("dv", dv, wv, rmsTols(wv))
			dq2, dk2, dv2 := run()
			e.same("dq", dq, dq2)
			e.same("dk", dk, dk2)
			e.same("dv", dv, dv2)
		})
	}
}

func testCrossEntropy(e *env, ops gpu.BackwardOps) {
	for _, c := range []struct {
		vocab int
		tgts  []int32
		scale float32
		alias bool // dlogits is logits
		big   bool // row 0 shifted by 80: exp overflows without the max
	}{
		{1, []int32{0, -1}, 1, false, false},
		{7, []int32{2, -1, 6, 0, -100}, 1, false, true},
		{1000, []int32{999, 3, -1}, 1.0 / 7, true, false},
		{32003, []int32{5, -1, 32002, 17}, 0.25, false, true},
		{4097, []int32{-1, -1}, 1, false, false},
	} {
		e.run(fmt.Sprintf("v%d/rows%d/scale%g/alias=%v", c.vocab, len(c.tgts), c.scale, c.alias), func(e *env) {
			rows, n := len(c.tgts), c.vocab
			x := e.values(f32, rows*n, 4)
			if c.big {
				for j := range n {
					x[j] += 80
				}
			}
			wantL, tolL := make([]float64, rows), make([]float64, rows)
			wantG, magG := make([]float64, rows*n), make([]float64, rows*n)
			sc := float64(c.scale)
			for r, tg := range c.tgts {
				if tg < 0 {
					continue
				}
				xr := x[r*n : (r+1)*n]
				m := math.Inf(-1)
				for _, v := range xr {
					m = math.Max(m, float64(v))
				}
				var z float64
				for _, v := range xr {
					z += math.Exp(float64(v) - m)
				}
				lse := m + math.Log(z)
				wantL[r] = lse - float64(xr[tg])
				tolL[r] = relTol*(math.Abs(lse)+math.Abs(float64(xr[tg]))) + 1e-7
				for j, v := range xr {
					p := math.Exp(float64(v) - lse)
					hot := 0.0
					if j == int(tg) {
						hot = 1
					}
					wantG[r*n+j] = sc * (p - hot)
					magG[r*n+j] = math.Abs(sc) * (p + hot)
				}
			}
			xt := e.f32s(x, rows, n)
			gt := xt
			if !c.alias {
				gt = e.poison(f32, rows, n)
			}
			lt := e.poison(f32, rows)
			e.must(ops.CrossEntropy(lt, gt, xt, e.ints(c.tgts, rows), c.scale))
			loss, g := e.get(lt), e.get(gt)
			e.near("loss", loss, wantL, tolL)
			e.near("dlogits", g, wantG, relTols(magG, 1e-30))
			for r, tg := range c.tgts {
				if tg >= 0 {
					continue
				}
				if loss[r] != 0 || slices.ContainsFunc(g[r*n:(r+1)*n], func(v float32) bool { return v != 0 }) {
					e.t.Errorf("row %d (target %d): loss %v and a gradient row that is not all 0", r, tg, loss[r])
				}
			}
		})
	}
}

// testBackwardErrors checks the argument checks every backend shares.
func testBackwardErrors(e *env, ops gpu.BackwardOps) {
	a, b := e.alloc(f32, 3, 4), e.alloc(f32, 5, 4)
	e.wantErr("MatMulBackward dc of the wrong width", ops.MatMulBackward(nil, nil, nil, e.alloc(f32, 3, 4), a, b), gpu.ErrShape)
	e.wantErr("MatMulBackward db unlike b", ops.MatMulBackward(nil, e.alloc(f32, 4, 5), nil, e.alloc(f32, 3, 5), a, b), gpu.ErrShape)
	x := e.alloc(f32, 2, 6)
	e.wantErr("RMSNormBackward weight of the wrong size", ops.RMSNormBackward(x, e.alloc(f32, 6), x, x, e.alloc(f32, 5), 1e-5), gpu.ErrShape)
	q, kv := e.alloc(f32, 6, 4, 8), e.alloc(f32, 6, 3, 8)
	e.wantErr("CausalAttentionBackward heads not a multiple of kv heads",
		ops.CausalAttentionBackward(q, kv, kv, q, q, kv, kv, 3, 0), gpu.ErrShape)
	kv2 := e.alloc(f32, 6, 2, 8)
	e.wantErr("CausalAttentionBackward seqLen not dividing the tokens",
		ops.CausalAttentionBackward(q, kv2, kv2, q, q, kv2, kv2, 4, 0), gpu.ErrArg)
	l := e.alloc(f32, 2)
	e.wantErr("CrossEntropy targets of the wrong length",
		ops.CrossEntropy(l, x, x, e.ints([]int32{0, 1, 2}, 3), 1), gpu.ErrShape)
	e.wantErr("CrossEntropy NaN scale",
		ops.CrossEntropy(l, x, x, e.ints([]int32{0, 1}, 2), float32(math.NaN())), gpu.ErrArg)
}

// testBackwardIndexErrors: out-of-range ids and targets (backends that
// check indices on the host), reported before anything is written.
func testBackwardIndexErrors(e *env, ops gpu.BackwardOps) {
	tab0 := e.values(f32, 5*3, 1)
	tab := e.f32s(tab0, 5, 3)
	dy := e.f32s(e.values(f32, 6, 1), 2, 3)
	e.wantErr("EmbedBackward id ≥ rows", ops.EmbedBackward(tab, dy, e.ints([]int32{1, 5}, 2)), gpu.ErrIndex)
	e.wantErr("EmbedBackward negative id", ops.EmbedBackward(tab, dy, e.ints([]int32{0, -1}, 2)), gpu.ErrIndex)
	if got := e.get(tab); !slices.Equal(got, tab0) {
		e.t.Errorf("EmbedBackward changed dtable before reporting a bad id: %v, want %v", got, tab0)
	}
	x := e.f32s(e.values(f32, 2*4, 1), 2, 4)
	e.wantErr("CrossEntropy target ≥ vocab", ops.CrossEntropy(e.alloc(f32, 2), e.alloc(f32, 2, 4), x, e.ints([]int32{0, 4}, 2), 1), gpu.ErrIndex)
}
