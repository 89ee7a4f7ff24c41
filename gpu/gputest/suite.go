package gputest

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/sluicehq/sluice/gpu"
)

const (
	f32  = gpu.F32
	bf16 = gpu.BF16
	f16  = gpu.F16
	f8   = gpu.F8E4M3 // KV caches only
)

func testTensor(e *env) {
	for _, dt := range []gpu.DType{f32, bf16, f16} {
		e.run(dt.String(), func(e *env) {
			before := e.dev.LiveBytes()
			data := e.values(dt, 15, 3)
			x := e.tensor(dt, data, 5, 3)
			if got := e.dev.LiveBytes() - before; got != int64(15*dt.Size()) {
				e.t.Errorf("LiveBytes grew by %d for %s, want %d", got, x, 15*dt.Size())
			}
			if got := e.get(x); !slices.Equal(got, data) {
				e.t.Errorf("round trip: got %v, want %v", got, data)
			}
			rows, err := x.Slice(1, 4)
			e.must(err)
			if got := e.get(rows); !slices.Equal(got, data[3:12]) {
				e.t.Errorf("Slice(1, 4): got %v, want %v", got, data[3:12])
			}
			flat, err := rows.View(9)
			e.must(err)
			if got := e.get(flat); !slices.Equal(got, data[3:12]) {
				e.t.Errorf("View(9) of a slice: got %v, want %v", got, data[3:12])
			}
			empty, err := x.Slice(5, 5)
			e.must(err)
			if empty.Len() != 0 || len(e.get(empty)) != 0 {
				e.t.Errorf("Slice(5, 5) = %s, want no rows", empty)
			}
			// Copy into a view writes only its rows.
			y := e.poison(dt, 5, 3)
			ys, err := y.Slice(2, 5)
			e.must(err)
			e.must(e.dev.Copy(ys, rows))
			got := e.get(y)
			if !slices.Equal(got[6:], data[3:12]) {
				e.t.Errorf("Copy into rows 2..5: got %v, want %v", got[6:], data[3:12])
			}
			e.stillPoisoned("Copy destination", got, []int{0, 1, 2, 3, 4, 5})
			rows.Free() // a view: no effect
			if got := e.get(x); !slices.Equal(got, data) {
				e.t.Errorf("after freeing a view: got %v, want %v", got, data)
			}
		})
	}
	e.run("i32", func(e *env) {
		ids := []int32{3, -1, math.MaxInt32, math.MinInt32, 0, 7}
		x := e.ints(ids, 2, 3)
		got, err := gpu.ToHost[int32](x)
		e.must(err)
		if !slices.Equal(got, ids) {
			e.t.Errorf("round trip: got %v, want %v", got, ids)
		}
	})
	e.run("Free", func(e *env) {
		before := e.dev.LiveBytes()
		x, err := e.dev.Alloc(bf16, 3, 0, 2)
		e.must(err)
		x.Free()
		y, err := e.dev.Alloc(f32, 7, 3)
		e.must(err)
		v, err := y.Slice(0, 2)
		e.must(err)
		y.Free()
		y.Free()
		if got := e.dev.LiveBytes(); got != before {
			e.t.Errorf("LiveBytes after Free = %d, want %d", got, before)
		}
		if err := gpu.DownloadF32(make([]float32, 6), v); !errors.Is(err, gpu.ErrFreed) {
			e.t.Errorf("Download of a view of a freed tensor: %v, want ErrFreed", err)
		}
	})
}

func testMatMul(e *env) {
	type combo struct{ a, b, c, bias gpu.DType } // bias 0: none
	combos := []combo{
		{f32, f32, f32, 0},
		{f32, bf16, f32, f32},
		{bf16, bf16, bf16, bf16},
		{f16, f16, f32, 0},
		{bf16, f32, f16, f16},
		{f32, f16, bf16, f32},
	}
	shapes := [][3]int{ // m, n, k
		{1, 1, 1}, {1, 7, 5}, {3, 5, 7}, {2, 3, 0}, {4, 4, 4}, {13, 17, 19},
		{8, 64, 33}, {64, 33, 100}, {5, 200, 48}, {33, 129, 257}, {130, 50, 1100},
	}
	for i, s := range shapes {
		for j, c := range combos {
			if i >= len(shapes)-3 && j >= 2 {
				continue // the big shapes with the main combos only
			}
			m, n, k := s[0], s[1], s[2]
			name := fmt.Sprintf("%dx%dx%d/%v·%v→%v+%v", m, n, k, c.a, c.b, c.c, c.bias)
			e.run(name, func(e *env) { e.matmul(m, n, k, c.a, c.b, c.c, c.bias, i%2 == 1) })
		}
	}
}

// matmul checks one MatMul; with views, a and c are slices of larger
// tensors and, for even m, viewed as [2, m/2, ·].
func (e *env) matmul(m, n, k int, da, db, dc, dbias gpu.DType, views bool) {
	a := e.values(da, m*k, 1)
	b := e.values(db, n*k, 1)
	var bias []float32
	var bt *gpu.Tensor
	if dbias != 0 {
		bias = e.values(dbias, n, 1)
		bt = e.tensor(dbias, bias, n)
	}
	at := e.tensor(da, a, m, k)
	ct := e.poison(dc, m, n)
	out := ct
	if views {
		big := e.tensor(da, append(append(e.values(da, 2*k, 1), a...), e.values(da, k, 1)...), m+3, k)
		var err error
		at, err = big.Slice(2, 2+m)
		e.must(err)
		ct = e.poison(dc, m+2, n)
		out, err = ct.Slice(1, 1+m)
		e.must(err)
		if m%2 == 0 && m > 0 {
			at, err = at.View(2, m/2, k)
			e.must(err)
			out, err = out.View(2, m/2, n)
			e.must(err)
		}
	}
	e.must(e.ops.MatMul(out, at, e.tensor(db, b, n, k), bt))
	want, mag := refMatMul(a, b, bias, m, n, k)
	tol := make([]float64, len(want))
	for i := range want {
		tol[i] = unit(dc)*math.Abs(want[i]) + float64(k+2)*0x1p-24*mag[i] + tiny
	}
	got := e.get(ct)
	if views {
		e.stillPoisoned("c row before the view", got[:n], seq(n))
		e.stillPoisoned("c row after the view", got[(m+1)*n:], seq(n))
		got = got[n : (m+1)*n]
	}
	e.near("c", got, want, tol)
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func testEmbed(e *env) {
	for _, c := range [][2]gpu.DType{{f32, f32}, {bf16, bf16}, {bf16, f32}, {f16, bf16}, {f32, bf16}} {
		e.run(fmt.Sprintf("%v→%v", c[0], c[1]), func(e *env) {
			const vocab, h, t = 37, 19, 11
			table := e.values(c[0], vocab*h, 2)
			ids := make([]int32, t)
			for i := range ids {
				ids[i] = int32(e.rng.IntN(vocab))
			}
			ids[0], ids[1], ids[2] = 0, vocab-1, ids[3] // ends and a repeat
			dst := e.poison(c[1], t, h)
			e.must(e.ops.Embed(dst, e.tensor(c[0], table, vocab, h), e.ints(ids, t)))
			want, tol := make([]float64, t*h), make([]float64, t*h)
			for i, id := range ids {
				for j := range h {
					w := float64(table[int(id)*h+j])
					want[i*h+j], tol[i*h+j] = w, unit(c[1])*math.Abs(w)
				}
			}
			e.near("dst", e.get(dst), want, tol)
		})
	}
}

func testRMSNorm(e *env) {
	type tc struct {
		name          string
		shape         []int
		x, res, w, dt gpu.DType // res 0: no residual; dt: dst
		inPlace       bool
	}
	cases := []tc{
		{"f32", []int{7, 33}, f32, 0, f32, f32, false},
		{"bf16", []int{5, 64}, bf16, 0, bf16, bf16, false},
		{"f16-in-place", []int{3, 17}, f16, 0, f32, f16, true},
		{"residual-f32", []int{6, 40}, f32, f32, f32, f32, false},
		{"residual-bf16-in-place", []int{9, 128}, bf16, bf16, bf16, bf16, true},
		{"residual-mixed", []int{4, 31}, f32, bf16, bf16, f32, false},
		{"per-head", []int{5, 4, 16}, bf16, 0, bf16, bf16, true},
		{"per-head-f32", []int{3, 2, 8}, f32, 0, f32, f32, false},
		// Rows as wide as a model's hidden size, and wider than cuda
		// keeps in registers (8 elements × 1024 threads).
		{"wide-residual-bf16-in-place", []int{3, 2048}, bf16, bf16, bf16, bf16, true},
		{"wider-than-registers-f32", []int{2, 9000}, f32, f32, f32, f32, false},
	}
	for _, c := range cases {
		e.run(c.name, func(e *env) {
			h := c.shape[len(c.shape)-1]
			n := 1
			for _, d := range c.shape {
				n *= d
			}
			const eps = 1e-5
			x := e.values(c.x, n, 2)
			w := e.values(c.w, h, 1.5)
			xt := e.tensor(c.x, x, c.shape...)
			dst := xt
			if !c.inPlace {
				dst = e.poison(c.dt, c.shape...)
			}
			var res []float32
			var rt *gpu.Tensor
			if c.res != 0 {
				res = e.values(c.res, n, 2)
				rt = e.tensor(c.res, res, c.shape...)
			}
			e.must(e.ops.RMSNorm(dst, xt, rt, e.tensor(c.w, w, h), eps))
			want, newRes := refRMSNorm(x, res, w, h, eps, c.res)
			tol := make([]float64, n)
			for i := range want {
				tol[i] = (unit(dst.DType())+float64(h+8)*0x1p-24)*math.Abs(want[i]) + tiny
			}
			e.near("dst", e.get(dst), want, tol)
			if rt != nil {
				e.near("residual", e.get(rt), newRes, make([]float64, n))
			}
		})
	}
}

func testRoPE(e *env) {
	llama3 := &gpu.Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	ropes := map[string]gpu.Rope{"theta1e4": {Theta: 10000}, "llama3": {Theta: 500000, Llama3: llama3}}
	for name, r := range ropes {
		e.run("InvFreq/"+name, func(e *env) {
			for _, d := range []int{8, 64, 128} {
				got, want := r.InvFreq(d), refInvFreq(r.Theta, d, r.Llama3)
				if !slices.Equal(got, want) {
					e.t.Errorf("d=%d: InvFreq = %v, want %v", d, got, want)
				}
			}
		})
		for _, c := range []struct {
			dt    gpu.DType
			d, kh int // kh 0: no k
		}{{f32, 8, 2}, {bf16, 64, 2}, {f16, 16, 0}, {f32, 128, 1}} {
			e.run(fmt.Sprintf("%s/%v/d%d/k%d", name, c.dt, c.d, c.kh), func(e *env) {
				const t, qh = 7, 6 // 6 heads: cuda rotates groups of 4, the last one short
				pos := []int32{0, 1, 17, 4095, 8191, 20000, 131071}
				q := e.values(c.dt, t*qh*c.d, 2)
				qt := e.tensor(c.dt, q, t, qh, c.d)
				var k []float32
				var kt *gpu.Tensor
				if c.kh > 0 {
					k = e.values(c.dt, t*c.kh*c.d, 2)
					kt = e.tensor(c.dt, k, t, c.kh, c.d)
				}
				e.must(e.ops.RoPE(qt, kt, e.ints(pos, t), r))
				inv := refInvFreq(r.Theta, c.d, r.Llama3)
				check := func(what string, x []float32, xt *gpu.Tensor, heads int) {
					want, mag := refRoPE(x, pos, heads, c.d, inv)
					tol := make([]float64, len(want))
					for i := range want {
						tol[i] = unit(c.dt)*math.Abs(want[i]) + 4*0x1p-24*mag[i] + tiny
					}
					e.near(what, e.get(xt), want, tol)
				}
				check("q", q, qt, qh)
				if kt != nil {
					check("k", k, kt, c.kh)
				}
			})
		}
	}
}

func testSiLUMul(e *env) {
	for _, c := range []struct {
		dt, out gpu.DType
		merged  bool
		rows, n int
	}{{f32, f32, false, 5, 37}, {bf16, bf16, false, 5, 37}, {f16, f32, false, 5, 37}, {f32, f32, true, 5, 37}, {bf16, bf16, true, 5, 37},
		// Rows of several column blocks (cuda: 1,024 columns a block).
		{bf16, bf16, true, 3, 2500}, {f32, bf16, false, 2, 1025}} {
		e.run(fmt.Sprintf("%v→%v/merged=%v/%dx%d", c.dt, c.out, c.merged, c.rows, c.n), func(e *env) {
			rows, n := c.rows, c.n
			g, u := e.values(c.dt, rows*n, 6), e.values(c.dt, rows*n, 2)
			dst := e.poison(c.out, rows, n)
			if c.merged {
				gu := make([]float32, 0, 2*rows*n)
				for r := range rows {
					gu = append(append(gu, g[r*n:(r+1)*n]...), u[r*n:(r+1)*n]...)
				}
				e.must(e.ops.SiLUMul(dst, e.tensor(c.dt, gu, rows, 2*n), nil))
			} else {
				e.must(e.ops.SiLUMul(dst, e.tensor(c.dt, g, rows, n), e.tensor(c.dt, u, rows, n)))
			}
			want := refSiLUMul(g, u)
			tol := make([]float64, len(want))
			for i := range want {
				tol[i] = (unit(c.out)+8*0x1p-24)*math.Abs(want[i]) + tiny
			}
			e.near("dst", e.get(dst), want, tol)
		})
	}
}

func testAdd(e *env) {
	for _, c := range [][3]gpu.DType{{f32, f32, f32}, {bf16, bf16, bf16}, {f32, bf16, f32}, {f16, f32, bf16}} {
		for _, inPlace := range []bool{false, true} {
			if inPlace && c[0] != c[2] {
				continue
			}
			e.run(fmt.Sprintf("%v+%v→%v/in-place=%v", c[0], c[1], c[2], inPlace), func(e *env) {
				shape := []int{3, 5, 7}
				const n = 105
				a, b := e.values(c[0], n, 4), e.values(c[1], n, 4)
				at := e.tensor(c[0], a, shape...)
				dst := at
				if !inPlace {
					dst = e.poison(c[2], shape...)
				}
				e.must(e.ops.Add(dst, at, e.tensor(c[1], b, shape...)))
				want, tol := make([]float64, n), make([]float64, n)
				for i := range want {
					want[i] = float64(a[i]) + float64(b[i])
					tol[i] = (unit(c[2])+0x1p-24)*math.Abs(want[i]) + tiny
				}
				e.near("dst", e.get(dst), want, tol)
			})
		}
	}
	e.run("big", func(e *env) { // spans several chunks
		const n = 100_003
		a, b := e.values(f32, n, 1), e.values(f32, n, 1)
		dst := e.poison(f32, n)
		e.must(e.ops.Add(dst, e.tensor(f32, a, n), e.tensor(f32, b, n)))
		want, tol := make([]float64, n), make([]float64, n)
		for i := range want {
			want[i] = float64(a[i]) + float64(b[i])
			tol[i] = 0x1p-24*math.Abs(want[i]) + tiny
		}
		e.near("dst", e.get(dst), want, tol)
	})
}

func testSoftmax(e *env) {
	for _, c := range []struct {
		dt, out gpu.DType
		n       int
		inPlace bool
	}{{f32, f32, 1, false}, {f32, f32, 7, true}, {bf16, f32, 1000, false}, {bf16, bf16, 33, true}, {f16, f32, 129, false}} {
		e.run(fmt.Sprintf("%v→%v/n%d/in-place=%v", c.dt, c.out, c.n, c.inPlace), func(e *env) {
			const rows = 4
			x := e.values(c.dt, rows*c.n, 10)
			xt := e.tensor(c.dt, x, rows, c.n)
			dst := xt
			if !c.inPlace {
				dst = e.poison(c.out, rows, c.n)
			}
			e.must(e.ops.Softmax(dst, xt))
			want, spread := refSoftmax(x, c.n)
			tol := make([]float64, len(want))
			for i := range want {
				tol[i] = (unit(dst.DType())+(float64(c.n+8)+2*spread[i])*0x1p-24)*want[i] + tiny
			}
			e.near("dst", e.get(dst), want, tol)
		})
	}
}

func testArgmax(e *env) {
	for _, dt := range []gpu.DType{f32, bf16, f16} {
		e.run(dt.String(), func(e *env) {
			const rows, n = 9, 50
			x := e.values(dt, rows*n, 5)
			// Row 6: all equal. Row 7: two maxima. Row 8: a NaN after the max.
			for i := range n {
				x[6*n+i] = 1
			}
			x[7*n+10], x[7*n+30] = 100, 100
			x[8*n+2], x[8*n+5] = 1000, float32(math.NaN())
			dst := e.poison(gpu.I32, rows)
			e.must(e.ops.Argmax(dst, e.tensor(dt, x, rows, n)))
			got, err := gpu.ToHost[int32](dst)
			e.must(err)
			if want := refArgmax(x, n); !slices.Equal(got, want) {
				e.t.Errorf("Argmax = %v, want %v", got, want)
			}
			if got[6] != 0 || got[7] != 10 || got[8] != 5 {
				e.t.Errorf("ties and NaN: rows 6..8 = %v, want [0 10 5]", got[6:])
			}
		})
	}
}

func testWriteKV(e *env) {
	for _, c := range [][2]gpu.DType{{f32, f32}, {f32, bf16}, {bf16, bf16}, {bf16, f16}, {bf16, f8}, {f32, f8}} {
		e.run(fmt.Sprintf("%v→%v", c[0], c[1]), func(e *env) {
			const blocks, bs, kvh, d, t = 6, 4, 2, 8, 9
			row := kvh * d
			perm := e.rng.Perm(blocks * bs)
			slots := make([]int32, t)
			for i := range slots {
				slots[i] = int32(perm[i])
			}
			slots[2], slots[7] = -1, -1
			k, v := e.values(c[0], t*row, 2), e.values(c[0], t*row, 2)
			kc, vc := e.poison(c[1], blocks, bs, kvh, d), e.poison(c[1], blocks, bs, kvh, d)
			e.must(e.ops.WriteKV(kc, vc, e.tensor(c[0], k, t, kvh, d), e.tensor(c[0], v, t, kvh, d), e.ints(slots, t)))
			for _, x := range []struct {
				name  string
				src   []float32
				cache *gpu.Tensor
			}{{"kCache", k, kc}, {"vCache", v, vc}} {
				got := e.get(x.cache)
				written := map[int]bool{}
				for i, s := range slots {
					if s < 0 {
						continue
					}
					written[int(s)] = true
					for j := range row {
						w := round(c[1], x.src[i*row+j])
						if g := got[int(s)*row+j]; g != w {
							e.t.Fatalf("%s slot %d [%d] = %v, want %v (token %d)", x.name, s, j, g, w, i)
						}
					}
				}
				for s := range blocks * bs {
					if !written[s] {
						e.stillPoisoned(fmt.Sprintf("%s slot %d", x.name, s), got[s*row:(s+1)*row], seq(row))
					}
				}
			}
		})
	}
}

// testWriteKVF8 checks the bits an FP8 cache gets, with and without scales
// (gpu.ScaledKV): k / kScale in float32, rounded to E4M3 as
// gpu.ToFloat8E4M3 (ties to even, ±448 for larger magnitudes, subnormals,
// signed zeros, NaN), so that every backend stores the same cache.
func testWriteKVF8(e *env) {
	sk, scaled := e.ops.(gpu.ScaledKV)
	for _, c := range []struct {
		name   string
		src    gpu.DType
		ks, vs float32
	}{{"f32", f32, 0, 0}, {"bf16", bf16, 0, 0}, {"f32-scaled", f32, 0.37, 2.5}, {"bf16-scaled", bf16, 3, 0.0625}} {
		e.run(c.name, func(e *env) {
			if c.ks != 0 && !scaled {
				e.t.Skipf("%s has no gpu.ScaledKV", e.dev.Name())
			}
			const blocks, bs, kvh, d = 4, 4, 2, 8
			if c.ks != 0 {
				kv, one := e.alloc(f32, 1, kvh, d), e.ints([]int32{0}, 1)
				cache := e.alloc(f8, blocks, bs, kvh, d)
				e.wantErr("WriteKVScaled negative k scale", sk.WriteKVScaled(cache, cache, kv, kv, one, -1, 1), gpu.ErrArg)
				e.wantErr("WriteKVScaled infinite v scale", sk.WriteKVScaled(cache, cache, kv, kv, one, 1, float32(math.Inf(1))), gpu.ErrArg)
				batch := gpu.AttnBatch{BlockTables: e.ints([]int32{0}, 1, 1), ContextLens: e.ints([]int32{1}, 1), QueryStarts: e.ints([]int32{0, 1}, 2), KScale: float32(math.NaN())}
				e.wantErr("Attention NaN KScale", e.ops.Attention(e.alloc(f32, 1, kvh, d), kv, cache, cache, batch), gpu.ErrArg)
			}
			row := kvh * d
			t := blocks * bs
			// Edge values first (saturation, the tie at 464 between 448 and
			// the NaN pattern, a tie between subnormals, the smallest
			// subnormal's half, a tie between normals, -0, NaN), then random
			// ones over the whole range.
			edge := []float32{1000, -1000, 448, 464, -460, 0x1.8p-9, 0x1p-10, 0x1.3p-10, 1.0625, 1.1875, float32(math.Copysign(0, -1)), float32(math.NaN()), 0x1p-6, 0x1.fp-7, 240, 250}
			k, v := make([]float32, t*row), make([]float32, t*row)
			for i := range k {
				k[i] = round(c.src, float32(math.Ldexp(2*e.rng.Float64()-1, e.rng.IntN(24)-14)))
				v[i] = round(c.src, float32(math.Ldexp(2*e.rng.Float64()-1, e.rng.IntN(24)-14)))
			}
			for i, x := range edge {
				k[i], v[len(v)-1-i] = round(c.src, x), round(c.src, x*float32(c.vs+1))
			}
			slots := make([]int32, t)
			for i, p := range e.rng.Perm(t) {
				slots[i] = int32(p)
			}
			kc, vc := e.poison(f8, blocks, bs, kvh, d), e.poison(f8, blocks, bs, kvh, d)
			kt, vt, st := e.tensor(c.src, k, t, kvh, d), e.tensor(c.src, v, t, kvh, d), e.ints(slots, t)
			if c.ks != 0 {
				e.must(sk.WriteKVScaled(kc, vc, kt, vt, st, c.ks, c.vs))
			} else {
				e.must(e.ops.WriteKV(kc, vc, kt, vt, st))
			}
			for _, x := range []struct {
				name  string
				src   []float32
				scale float32
				cache *gpu.Tensor
			}{{"kCache", k, c.ks, kc}, {"vCache", v, c.vs, vc}} {
				got, s := e.raw(x.cache), x.scale
				if s == 0 {
					s = 1
				}
				for i, slot := range slots {
					for j := range row {
						f := x.src[i*row+j]
						if w, g := byte(gpu.ToFloat8E4M3(f/s)), got[int(slot)*row+j]; g != w {
							e.t.Fatalf("%s slot %d [%d] = %#02x, want %#02x: %v / %v (token %d)", x.name, slot, j, g, w, f, s, i)
						}
					}
				}
			}
		})
	}
}

// attnCase is one Attention batch: per sequence its context length and
// number of new tokens.
type attnCase struct {
	name                  string
	heads, kvHeads, d, bs int
	q, cache, out         gpu.DType
	seqs                  [][2]int // ctx, new
	pad                   int      // query rows after the last sequence
	scale                 float32
	negTail               bool // table entries past a sequence's blocks are -1, not a NaN block
}

func testAttention(e *env) {
	cases := []attnCase{
		{"mixed-f32", 4, 4, 16, 4, f32, f32, f32, [][2]int{{13, 13}, {37, 1}, {20, 7}, {1, 1}, {9, 0}}, 2, 0, false},
		{"gqa-bf16", 8, 2, 32, 16, bf16, bf16, bf16, [][2]int{{50, 50}, {70, 1}, {33, 1}, {100, 17}}, 0, 0, false},
		{"mqa-f16-cache", 6, 1, 8, 5, f32, f16, f32, [][2]int{{23, 4}, {5, 1}, {16, 16}}, 1, 0.3, true},
		{"decode", 4, 2, 64, 16, bf16, bf16, f32, [][2]int{{1, 1}, {15, 1}, {16, 1}, {17, 1}, {200, 1}, {64, 1}}, 0, 0, false},
		{"prefill", 2, 1, 24, 8, f32, bf16, bf16, [][2]int{{61, 61}}, 0, 0, false},
		// Query lengths ≥ 16 take cuda's tiled prefill kernel: several
		// sequences of different lengths, chunked prefill (context longer
		// than the new tokens), decode rows in the same batch, G = 4 with
		// d = 64 and 128, odd groups and head sizes, bf16, f16 and f32 caches.
		{"prefill-g4-d64-bf16", 16, 4, 64, 16, bf16, bf16, bf16, [][2]int{{40, 40}, {100, 37}, {16, 16}, {300, 64}, {5, 1}, {17, 17}}, 3, 0, true},
		{"prefill-g4-d128-f32", 8, 2, 128, 8, f32, f32, f32, [][2]int{{70, 70}, {129, 33}, {16, 16}, {48, 1}}, 0, 0, false},
		{"prefill-g4-d128-bf16", 8, 2, 128, 16, bf16, bf16, f32, [][2]int{{200, 150}, {31, 18}, {64, 64}}, 1, 0, true},
		{"prefill-g8-d96-f16", 8, 1, 96, 5, f32, f16, bf16, [][2]int{{45, 20}, {90, 90}}, 0, 0.2, false},
		{"prefill-g3-d20-f32", 6, 2, 20, 4, f32, f32, f32, [][2]int{{50, 50}, {30, 22}, {7, 3}}, 0, 0, true},
		{"prefill-g1-d64-bf16", 4, 4, 64, 16, f32, bf16, f32, [][2]int{{33, 33}, {80, 40}}, 2, 0, false},
		{"prefill-g2-d36-f32", 4, 2, 36, 8, bf16, f32, bf16, [][2]int{{129, 129}, {66, 65}}, 0, 0, true},
		// Decode batches (at most one new token per sequence) take cuda's
		// split-context kernel: contexts from 1 key to thousands (one tile,
		// tile edges, many splits), sequences of different lengths and one
		// with no query row in one batch, G = 1 to 8, d up to 128, 2-byte
		// caches (16-byte loads) and f32 or odd head sizes (element loads).
		{"split-g4-d64-bf16", 32, 8, 64, 16, bf16, bf16, bf16, [][2]int{{1, 1}, {31, 1}, {32, 1}, {33, 1}, {700, 1}, {1500, 1}, {64, 1}, {9, 0}, {129, 1}}, 1, 0, false},
		{"split-g8-d128-f16", 16, 2, 128, 16, f32, f16, f32, [][2]int{{2000, 1}, {257, 1}, {3, 1}}, 0, 0, true},
		{"split-g1-d128-bf16", 4, 4, 128, 8, bf16, bf16, f32, [][2]int{{1000, 1}, {40, 1}}, 0, 0, false},
		{"split-g2-d32-f32", 4, 2, 32, 4, f32, f32, f32, [][2]int{{300, 1}, {65, 1}, {1, 1}}, 2, 0, true},
		{"split-g3-d20-f32", 6, 2, 20, 5, f32, f32, bf16, [][2]int{{97, 1}, {250, 1}}, 0, 0.3, false},
		{"split-g5-d40-bf16", 10, 2, 40, 16, bf16, bf16, bf16, [][2]int{{600, 1}, {33, 1}}, 0, 0, true},
		{"split-g8-d64-bf16", 8, 1, 64, 32, f32, bf16, f32, [][2]int{{1200, 1}, {5, 1}, {64, 1}}, 0, 0, false},
		{"split-g6-d96-f16", 12, 2, 96, 16, f16, f16, f16, [][2]int{{513, 1}, {100, 1}}, 1, 0.2, true},
		// Mixed batches: cuda's prefill kernel serves the sequences of
		// several query rows, the split kernel the decode rows.
		{"mixed-split-g4-d64-bf16", 32, 8, 64, 16, bf16, bf16, bf16, [][2]int{{1000, 1}, {300, 40}, {64, 64}, {2000, 1}, {17, 1}, {9, 0}, {2, 2}}, 1, 0, true},
		{"mixed-split-g8-d128-f16", 16, 2, 128, 16, f32, f16, f32, [][2]int{{700, 20}, {1500, 1}, {50, 1}}, 0, 0, false},
		// bf16 q, cache and output with d = 64 or 128: cuda's tensor-core
		// prefill kernel (chunked prefill, decode rows, G = 1 to 8).
		{"prefill-mma-g4-d64-bf16", 32, 8, 64, 16, bf16, bf16, bf16, [][2]int{{300, 120}, {64, 64}, {20, 17}, {500, 1}, {33, 0}}, 1, 0, true},
		{"prefill-mma-g8-d128-bf16", 16, 2, 128, 16, bf16, bf16, bf16, [][2]int{{200, 150}, {40, 40}, {700, 1}}, 0, 0, false},
		{"prefill-mma-g1-d64-bf16", 4, 4, 64, 8, bf16, bf16, bf16, [][2]int{{100, 100}, {90, 20}}, 0, 0.3, false},
		{"prefill-mma-g3-d128-bf16", 6, 2, 128, 16, bf16, bf16, bf16, [][2]int{{70, 70}, {130, 33}}, 2, 0, true},
	}
	for _, c := range cases {
		e.run(c.name, func(e *env) { e.attention(c) })
	}
	// FP8 E4M3 caches (vLLM's --kv-cache-dtype fp8) on every kernel path:
	// the row kernels (G = 1, G > 8, and the grouped one for 2 to 15 query
	// rows), the tiled prefill (cuda routes bf16 ones off the tensor-core
	// kernel), the split decode kernel's 8-element loads (d % 8 == 0) and
	// element loads (d = 20), mixed batches; with the k and v scales of a
	// checkpoint (gpu.ScaledKV) or none. The reference reads the same
	// FP8-rounded cache in float64.
	f8cases := []attnCase{
		{"rows-g1-f8", 4, 4, 16, 4, f32, f8, f32, [][2]int{{13, 13}, {37, 1}, {20, 7}, {1, 1}, {9, 0}}, 2, 0, false},
		{"rows-g12-f8", 12, 1, 16, 8, bf16, f8, bf16, [][2]int{{30, 5}, {9, 9}, {70, 1}}, 0, 0, true},
		{"gqa-rows-g4-d32-f8", 8, 2, 32, 16, bf16, f8, bf16, [][2]int{{30, 7}, {12, 3}, {5, 1}, {100, 1}}, 1, 0, false},
	}
	for _, name := range []string{"decode", "prefill-g4-d64-bf16", "prefill-g4-d128-bf16", "prefill-g8-d96-f16",
		"split-g4-d64-bf16", "split-g8-d128-f16", "split-g1-d128-bf16", "split-g3-d20-f32", "split-g5-d40-bf16",
		"mixed-split-g4-d64-bf16", "prefill-mma-g4-d64-bf16", "prefill-mma-g8-d128-bf16"} {
		for _, c := range cases {
			if c.name == name {
				c.name, c.cache = c.name+"-f8", f8
				f8cases = append(f8cases, c)
			}
		}
	}
	sk, scaled := e.ops.(gpu.ScaledKV)
	for i, c := range f8cases {
		e.run(c.name, func(e *env) { e.attention(c) })
		if i%2 == 0 && scaled {
			c.name += "-scaled"
			e.run(c.name, func(e *env) { e.attentionWith(sk, c, 0.07, 1.9) })
		}
	}
}

// attention is attentionWith without scales: k and v are stored as they
// are (rounded to the cache's dtype).
func (e *env) attention(c attnCase) { e.attentionWith(nil, c, 0, 0) }

// attentionWith builds a paged cache with a random permutation of blocks
// (unused blocks and slots NaN), writes each sequence's history on the host
// and its new tokens with WriteKV (sk.WriteKVScaled with scales ks and vs,
// for an FP8 cache), and checks Attention against dense attention per
// sequence.
func (e *env) attentionWith(sk gpu.ScaledKV, c attnCase, ks, vs float32) {
	kOne, vOne := max(ks, 0), max(vs, 0) // what the reference multiplies the cache by
	if ks == 0 {
		kOne, vOne = 1, 1
	}
	row := c.kvHeads * c.d
	needed, maxBlocks, tokens, maxQ, maxCtx := 0, 0, c.pad, 0, 0
	for _, s := range c.seqs {
		nb := (s[0] + c.bs - 1) / c.bs
		needed += nb
		maxBlocks = max(maxBlocks, nb+1)
		tokens += s[1]
		maxQ, maxCtx = max(maxQ, s[1]), max(maxCtx, s[0])
	}
	blocks := needed + 3
	perm := e.rng.Perm(blocks)
	unused := int32(perm[blocks-1]) // what table entries past a sequence's blocks point to: NaN
	kc, vc := nans(blocks*c.bs*row), nans(blocks*c.bs*row)
	tables := make([]int32, len(c.seqs)*maxBlocks)
	ctxLens := make([]int32, len(c.seqs))
	starts := make([]int32, len(c.seqs)+1)
	slots := make([]int32, tokens)
	for i := range slots {
		slots[i] = -1
	}
	q := e.values(c.q, tokens*c.heads*c.d, 1)
	knew, vnew := e.values(c.q, tokens*row, 1), e.values(c.q, tokens*row, 1)
	refs := make([]attnSeq, len(c.seqs))
	next := 0
	for si, s := range c.seqs {
		ctx, n := s[0], s[1]
		table := tables[si*maxBlocks : (si+1)*maxBlocks]
		for b := range table {
			table[b] = unused
			if c.negTail {
				table[b] = -1
			}
			if b*c.bs < ctx {
				table[b] = int32(perm[next])
				next++
			}
		}
		ctxLens[si] = int32(ctx)
		starts[si+1] = starts[si] + int32(n)
		r := &refs[si]
		for p := range ctx {
			slot := int(table[p/c.bs])*c.bs + p%c.bs
			if i := p - (ctx - n); i >= 0 {
				// A new token: WriteKV stores it, rounded to the cache's dtype.
				tok := int(starts[si]) + i
				slots[tok] = int32(slot)
				r.k = append(r.k, roundScaled(c.cache, knew[tok*row:(tok+1)*row], kOne))
				r.v = append(r.v, roundScaled(c.cache, vnew[tok*row:(tok+1)*row], vOne))
				r.q = append(r.q, q[tok*c.heads*c.d:(tok+1)*c.heads*c.d])
				continue
			}
			k, v := e.values(c.cache, row, 1), e.values(c.cache, row, 1)
			copy(kc[slot*row:], k)
			copy(vc[slot*row:], v)
			r.k, r.v = append(r.k, mulAll(k, kOne)), append(r.v, mulAll(v, vOne))
		}
	}
	kt := e.tensor(c.cache, kc, blocks, c.bs, c.kvHeads, c.d)
	vt := e.tensor(c.cache, vc, blocks, c.bs, c.kvHeads, c.d)
	kn, vn, sl := e.tensor(c.q, knew, tokens, c.kvHeads, c.d), e.tensor(c.q, vnew, tokens, c.kvHeads, c.d), e.ints(slots, tokens)
	if sk != nil {
		e.must(sk.WriteKVScaled(kt, vt, kn, vn, sl, ks, vs))
	} else {
		e.must(e.ops.WriteKV(kt, vt, kn, vn, sl))
	}
	out := e.poison(c.out, tokens, c.heads, c.d)
	batch := gpu.AttnBatch{
		BlockTables: e.ints(tables, len(c.seqs), maxBlocks),
		ContextLens: e.ints(ctxLens, len(c.seqs)),
		QueryStarts: e.ints(starts, len(c.seqs)+1),
		MaxQueryLen: maxQ, MaxContextLen: maxCtx,
		Scale: c.scale, KScale: ks, VScale: vs,
	}
	e.must(e.ops.Attention(out, e.tensor(c.q, q, tokens, c.heads, c.d), kt, vt, batch))
	scale := float64(c.scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(c.d))
	}
	got := e.get(out)
	stride := c.heads * c.d
	for si, s := range c.seqs {
		want, mag, scoreMag := refAttention(refs[si], c.heads, c.kvHeads, c.d, scale)
		// Score errors of (d+4) roundings relative to Σ|q·k|, exp and the
		// normalizing sum over the context, all scaled by Σp·|v|.
		rel := 2*float64(c.d+4)*0x1p-24*scoreMag + float64(s[0]+c.d+8)*0x1p-24
		var flatWant, tol []float64
		for i := range want {
			for j, w := range want[i] {
				flatWant = append(flatWant, w)
				tol = append(tol, unit(c.out)*math.Abs(w)+2*rel*mag[i][j]+tiny)
			}
		}
		q0 := int(starts[si]) * stride
		e.near(fmt.Sprintf("out of sequence %d (ctx %d, %d new)", si, s[0], s[1]), got[q0:q0+len(flatWant)], flatWant, tol)
	}
	e.stillPoisoned("padding rows", got, seqFrom(int(starts[len(c.seqs)])*stride, tokens*stride))
}

// roundScaled is what a cache of dt holds for x with scale s (x / s
// rounded, s 1 but for FP8), multiplied back by s.
func roundScaled(dt gpu.DType, x []float32, s float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = round(dt, v/s) * s
	}
	return out
}

func mulAll(x []float32, s float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v * s
	}
	return out
}

func seqFrom(lo, hi int) []int {
	s := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

func (e *env) wantErr(what string, err, target error) {
	e.t.Helper()
	if !errors.Is(err, target) {
		e.t.Errorf("%s: error %v, want %v", what, err, target)
		return
	}
	e.t.Logf("%s: %v", what, err)
}

func testErrors(e *env) {
	a := e.tensor(f32, e.values(f32, 12, 1), 3, 4)
	b := e.tensor(f32, e.values(f32, 10, 1), 2, 5)
	c := e.alloc(f32, 3, 2)
	ids := e.ints([]int32{0, 1, 2}, 3)
	e.wantErr("MatMul inner dimensions", e.ops.MatMul(c, a, b, nil), gpu.ErrShape)
	b4 := e.tensor(f32, e.values(f32, 8, 1), 2, 4)
	e.wantErr("MatMul c shape", e.ops.MatMul(e.alloc(f32, 2, 3), a, b4, nil), gpu.ErrShape)
	e.wantErr("MatMul bias length", e.ops.MatMul(c, a, b4, e.alloc(f32, 3)), gpu.ErrShape)
	e.wantErr("MatMul i32 input", e.ops.MatMul(c, ids, b4, nil), gpu.ErrDType)
	e.wantErr("MatMul nil", e.ops.MatMul(c, nil, b4, nil), gpu.ErrShape)
	e.wantErr("RMSNorm negative eps", e.ops.RMSNorm(a, a, nil, e.alloc(f32, 4), -1), gpu.ErrArg)
	e.wantErr("RMSNorm residual aliasing x", e.ops.RMSNorm(e.alloc(f32, 3, 4), a, a, e.alloc(f32, 4), 1e-5), gpu.ErrArg)
	q := e.alloc(f32, 3, 2, 4)
	e.wantErr("RoPE without theta", e.ops.RoPE(q, nil, ids, gpu.Rope{}), gpu.ErrArg)
	e.wantErr("RoPE odd head size", e.ops.RoPE(e.alloc(f32, 3, 2, 5), nil, ids, gpu.Rope{Theta: 1e4}), gpu.ErrShape)
	e.wantErr("Argmax float dst", e.ops.Argmax(e.alloc(f32, 3), a), gpu.ErrDType)
	cache := e.alloc(f32, 2, 4, 3, 4)
	batch := gpu.AttnBatch{BlockTables: e.ints([]int32{0}, 1, 1), ContextLens: e.ints([]int32{1}, 1), QueryStarts: e.ints([]int32{0, 1}, 2)}
	e.wantErr("Attention heads not a multiple of kv heads", e.ops.Attention(e.alloc(f32, 1, 4, 4), e.alloc(f32, 1, 4, 4), cache, cache, batch), gpu.ErrShape)
	e.wantErr("WriteKV into an empty cache", e.ops.WriteKV(e.alloc(f32, 2, 0, 3, 4), e.alloc(f32, 2, 0, 3, 4), e.alloc(f32, 1, 3, 4), e.alloc(f32, 1, 3, 4), e.ints([]int32{0}, 1)), gpu.ErrShape)
	e.wantErr("Upload length", e.dev.Upload(a, make([]byte, 5)), gpu.ErrShape)
	e.wantErr("Download length", e.dev.Download(make([]byte, 5), a), gpu.ErrShape)
	e.wantErr("Copy dtype", e.dev.Copy(e.alloc(bf16, 3, 4), a), gpu.ErrDType)
	e.wantErr("Copy length", e.dev.Copy(e.alloc(f32, 2, 4), a), gpu.ErrShape)
	_, err := e.dev.Alloc(gpu.DType(0), 3)
	e.wantErr("Alloc invalid dtype", err, gpu.ErrDType)
	_, err = e.dev.Alloc(f32, 3, -1)
	e.wantErr("Alloc negative dimension", err, gpu.ErrShape)
	_, err = a.Slice(2, 4)
	e.wantErr("Slice past the end", err, gpu.ErrShape)
	_, err = a.View(5, 2)
	e.wantErr("View changing the length", err, gpu.ErrShape)

	other := e.open(e.t)
	CheckLeaks(e.t, other)
	foreign, err := gpu.FromHost(other, []float32{1, 2, 3, 4, 5, 6, 7, 8}, 2, 4)
	e.must(err)
	defer foreign.Free()
	e.wantErr("MatMul with another device's tensor", e.ops.MatMul(c, a, foreign, nil), gpu.ErrDevice)

	gone, err := e.dev.Alloc(f32, 2, 4)
	e.must(err)
	gone.Free()
	e.wantErr("MatMul with a freed tensor", e.ops.MatMul(c, a, gone, nil), gpu.ErrFreed)
}

func testIndexErrors(e *env) {
	table := e.alloc(f32, 5, 3)
	e.wantErr("Embed id ≥ vocab", e.ops.Embed(e.alloc(f32, 2, 3), table, e.ints([]int32{1, 5}, 2)), gpu.ErrIndex)
	e.wantErr("Embed negative id", e.ops.Embed(e.alloc(f32, 2, 3), table, e.ints([]int32{-2, 0}, 2)), gpu.ErrIndex)
	cache := e.alloc(f32, 2, 4, 1, 4)
	kv := e.alloc(f32, 2, 1, 4)
	e.wantErr("WriteKV slot ≥ slots", e.ops.WriteKV(cache, cache, kv, kv, e.ints([]int32{0, 8}, 2)), gpu.ErrIndex)
	q := e.alloc(f32, 2, 2, 4)
	attn := func(tables, ctx, starts []int32, maxQ int) error {
		return e.ops.Attention(e.alloc(f32, 2, 2, 4), q, cache, cache, gpu.AttnBatch{
			BlockTables: e.ints(tables, 1, len(tables)), ContextLens: e.ints(ctx, 1), QueryStarts: e.ints(starts, 2), MaxQueryLen: maxQ,
		})
	}
	e.wantErr("Attention block number ≥ blocks", attn([]int32{0, 2}, []int32{6}, []int32{0, 2}, 0), gpu.ErrIndex)
	e.wantErr("Attention context shorter than new tokens", attn([]int32{0, 1}, []int32{1}, []int32{0, 2}, 0), gpu.ErrIndex)
	e.wantErr("Attention context beyond the block table", attn([]int32{0, 1}, []int32{9}, []int32{0, 2}, 0), gpu.ErrIndex)
	e.wantErr("Attention query rows beyond q", attn([]int32{0, 1}, []int32{6}, []int32{0, 3}, 0), gpu.ErrIndex)
	e.wantErr("Attention over MaxQueryLen", attn([]int32{0, 1}, []int32{6}, []int32{0, 2}, 1), gpu.ErrIndex)
	e.must(attn([]int32{1, 0}, []int32{6}, []int32{0, 2}, 2))
}
