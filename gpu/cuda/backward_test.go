package cuda_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cuda"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestBackwardConformance runs gputest's BackwardOps suite (every backward
// op against its float64 reference, reruns bit for bit) on the GPU.
func TestBackwardConformance(t *testing.T) {
	d := open(t) // skip the whole suite at once when there is no GPU
	t.Logf("device: %v", d)
	gputest.Suite{Open: open, CheckIndices: false}.RunBackward(t)
}

// TestBackwardVsCPU runs the backward ops at training-like sizes (longer
// sequences, rows and vocabularies than the conformance suite's, so the
// kernels' strided loops, chunked sums and grids are exercised) on cuda
// and on the cpu backend, and compares: 1e-4 of |cpu| plus the RMS of the
// tensor. The float64 references are the suite's; here the cpu backend,
// itself checked against them, stands in at sizes they would be slow for.
func TestBackwardVsCPU(t *testing.T) {
	dev := open(t)
	host, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	gputest.CheckLeaks(t, dev)
	r := rand.New(rand.NewPCG(3, 4))
	values := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*r.Float64() - 1) * s)
		}
		return v
	}
	type pair struct{ c, h *gpu.Tensor }
	var all []*gpu.Tensor
	defer func() {
		for _, x := range all {
			x.Free()
		}
	}()
	up := func(data any, shape ...int) pair {
		t.Helper()
		var p pair
		for i, d := range []gpu.Device{dev, host} {
			var x *gpu.Tensor
			var err error
			switch v := data.(type) {
			case []float32:
				x, err = gpu.FromHost(d, v, shape...)
			case []int32:
				x, err = gpu.FromHost(d, v, shape...)
			}
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, x)
			if i == 0 {
				p.c = x
			} else {
				p.h = x
			}
		}
		return p
	}
	cmp := func(what string, p pair) {
		t.Helper()
		c, err := gpu.ToHost[float32](p.c)
		if err != nil {
			t.Fatal(err)
		}
		h, err := gpu.ToHost[float32](p.h)
		if err != nil {
			t.Fatal(err)
		}
		var ss float64
		for _, v := range h {
			ss += float64(v) * float64(v)
		}
		rms := math.Sqrt(ss / float64(max(1, len(h))))
		bad, worst := 0, 0.0
		for i := range h {
			tol := 1e-4 * (math.Abs(float64(h[i])) + rms)
			d := math.Abs(float64(c[i]) - float64(h[i]))
			if !(d <= tol) {
				if bad < 5 {
					t.Errorf("%s[%d]: cuda %v, cpu %v", what, i, c[i], h[i])
				}
				bad++
			}
			worst = max(worst, d/tol)
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ", what, bad, len(h))
		}
		t.Logf("%s: cuda − cpu at most %.3f of the tolerance", what, worst)
	}
	both := func(what string, f func(ops gpu.BackwardOps, side func(pair) *gpu.Tensor) error) {
		t.Helper()
		if err := f(dev.Ops().(gpu.BackwardOps), func(p pair) *gpu.Tensor { return p.c }); err != nil {
			t.Fatalf("%s on cuda: %v", what, err)
		}
		if err := f(host.Ops().(gpu.BackwardOps), func(p pair) *gpu.Tensor { return p.h }); err != nil {
			t.Fatalf("%s on cpu: %v", what, err)
		}
	}

	const m, n, k = 512, 1024, 768 // tokens, out features, in features
	a, b, dc := up(values(m*k, 1), m, k), up(values(n*k, 1), n, k), up(values(m*n, 1), m, n)
	da, db, dbias := up(make([]float32, m*k), m, k), up(values(n*k, 1), n, k), up(values(n, 1), n)
	both("MatMulBackward", func(ops gpu.BackwardOps, s func(pair) *gpu.Tensor) error {
		return ops.MatMulBackward(s(da), s(db), s(dbias), s(dc), s(a), s(b))
	})
	cmp("da", da)
	cmp("db", db)
	cmp("dbias", dbias)

	const vocab, h = 1000, 2048
	ids := make([]int32, m)
	for i := range ids {
		ids[i] = int32(r.IntN(vocab))
	}
	idt, dy, tab := up(ids, m), up(values(m*h, 1), m, h), up(values(vocab*h, 1), vocab, h)
	both("EmbedBackward", func(ops gpu.BackwardOps, s func(pair) *gpu.Tensor) error {
		return ops.EmbedBackward(s(tab), s(dy), s(idt))
	})
	cmp("dtable", tab)

	x, w, dx, dw := up(values(m*h, 2), m, h), up(values(h, 1), h), up(make([]float32, m*h), m, h), up(values(h, 1), h)
	both("RMSNormBackward", func(ops gpu.BackwardOps, s func(pair) *gpu.Tensor) error {
		return ops.RMSNormBackward(s(dx), s(dw), s(dy), s(x), s(w), 1e-5)
	})
	cmp("dx", dx)
	cmp("dweight", dw)

	const seqs, seqLen, heads, kvh, hd = 2, 256, 8, 2, 64
	tq, tk := seqs*seqLen*heads*hd, seqs*seqLen*kvh*hd
	q, kk, v, dout := up(values(tq, 1), seqs*seqLen, heads, hd), up(values(tk, 1), seqs*seqLen, kvh, hd),
		up(values(tk, 1), seqs*seqLen, kvh, hd), up(values(tq, 1), seqs*seqLen, heads, hd)
	dq, dk, dv := up(make([]float32, tq), seqs*seqLen, heads, hd), up(make([]float32, tk), seqs*seqLen, kvh, hd), up(make([]float32, tk), seqs*seqLen, kvh, hd)
	both("CausalAttentionBackward", func(ops gpu.BackwardOps, s func(pair) *gpu.Tensor) error {
		return ops.CausalAttentionBackward(s(dq), s(dk), s(dv), s(dout), s(q), s(kk), s(v), seqLen, 0)
	})
	cmp("dq", dq)
	cmp("dk", dk)
	cmp("dv", dv)

	pos := make([]int32, seqs*seqLen)
	for i := range pos {
		pos[i] = int32(i % seqLen)
	}
	pt := up(pos, len(pos))
	both("RoPEBackward", func(ops gpu.BackwardOps, s func(pair) *gpu.Tensor) error {
		return ops.RoPEBackward(s(dq), s(dk), s(pt), gpu.Rope{Theta: 500000})
	})
	cmp("rope dq", dq)
	cmp("rope dk", dk)

	const rows, lmVocab = 16, 128256
	tg := make([]int32, rows)
	for i := range tg {
		tg[i] = int32(r.IntN(lmVocab))
	}
	tg[3] = -100
	logits, loss, tgt := up(values(rows*lmVocab, 8), rows, lmVocab), up(make([]float32, rows), rows), up(tg, rows)
	both("CrossEntropy", func(ops gpu.BackwardOps, s func(pair) *gpu.Tensor) error {
		return ops.CrossEntropy(s(loss), s(logits), s(logits), s(tgt), 1.0/15)
	})
	cmp("loss", loss)
	cmp("dlogits", logits)
}

// TestTrainPrecision runs training's products on cuda at each Precision
// against the cpu backend (f32): MatMul, MatMulBackward, the training
// attention's forward (CausalAttention, against cpu's Attention over the
// same sequences) and its backward. The error's RMS over the result's
// RMS must be within f32's 1e-5, TF32's 2e-3 or bf16's 1.5e-2 (8 bits of
// mantissa: about 0.3% a product); at tf32 and bf16 it must also be over
// 1e-6, so the tensor cores did round.
func TestTrainPrecision(t *testing.T) {
	d := openConfig(t, cuda.DefaultConfig())
	host, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	gputest.CheckLeaks(t, d)
	if got := d.Precision(); got != "f32" {
		t.Fatalf("a new device's precision is %s, want f32 (inference's)", got)
	}
	if err := d.SetPrecision("fp8"); !errors.Is(err, gpu.ErrArg) {
		t.Errorf("SetPrecision(fp8): %v, want gpu.ErrArg", err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	values := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(2*r.Float64() - 1)
		}
		return v
	}
	var all []*gpu.Tensor
	defer func() {
		for _, x := range all {
			x.Free()
		}
	}()
	put := func(dev gpu.Device, v []float32, shape ...int) *gpu.Tensor {
		t.Helper()
		x, err := gpu.FromHost(dev, v, shape...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x)
		return x
	}
	ints := func(dev gpu.Device, v []int32, shape ...int) *gpu.Tensor {
		t.Helper()
		x, err := gpu.FromHost(dev, v, shape...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x)
		return x
	}
	// relErr is the RMS of cuda − cpu over the RMS of cpu's result.
	relErr := func(c, h *gpu.Tensor) float64 {
		t.Helper()
		cv, err := gpu.ToHost[float32](c)
		if err != nil {
			t.Fatal(err)
		}
		hv, err := gpu.ToHost[float32](h)
		if err != nil {
			t.Fatal(err)
		}
		var ss, se float64
		for i := range hv {
			e := float64(cv[i]) - float64(hv[i])
			ss += float64(hv[i]) * float64(hv[i])
			se += e * e
		}
		if math.IsNaN(se) {
			return math.Inf(1)
		}
		return math.Sqrt(se / max(ss, 1e-300))
	}

	const m, n, k = 256, 384, 512
	av, bv, dcv := values(m*k), values(n*k), values(m*n)
	const seqs, T, H, KV, D = 2, 96, 8, 2, 64
	N := seqs * T
	qv, kv, vv, dov := values(N*H*D), values(N*KV*D), values(N*KV*D), values(N*H*D)
	// side runs the products on one device and returns its results.
	side := func(dev gpu.Device, cudaAttn bool) []*gpu.Tensor {
		t.Helper()
		ops, bw := dev.Ops(), dev.Ops().(gpu.BackwardOps)
		a, b, dc := put(dev, av, m, k), put(dev, bv, n, k), put(dev, dcv, m, n)
		c, da, db := put(dev, make([]float32, m*n), m, n), put(dev, make([]float32, m*k), m, k), put(dev, make([]float32, n*k), n, k)
		if err := ops.MatMul(c, a, b, nil); err != nil {
			t.Fatal(err)
		}
		if err := bw.MatMulBackward(da, db, nil, dc, a, b); err != nil {
			t.Fatal(err)
		}
		q, kk, v, dout := put(dev, qv, N, H, D), put(dev, kv, N, KV, D), put(dev, vv, N, KV, D), put(dev, dov, N, H, D)
		out := put(dev, make([]float32, N*H*D), N, H, D)
		if cudaAttn {
			if err := d.CausalAttention(out, q, kk, v, T, 0); err != nil {
				t.Fatal(err)
			}
		} else {
			bt, ctxs, starts := make([]int32, seqs), make([]int32, seqs), make([]int32, seqs+1)
			for s := range seqs {
				bt[s], ctxs[s], starts[s+1] = int32(s), T, int32((s+1)*T)
			}
			kc, _ := kk.View(seqs, T, KV, D)
			vc, _ := v.View(seqs, T, KV, D)
			ab := gpu.AttnBatch{BlockTables: ints(dev, bt, seqs, 1), ContextLens: ints(dev, ctxs, seqs),
				QueryStarts: ints(dev, starts, seqs+1), MaxQueryLen: T, MaxContextLen: T}
			if err := ops.Attention(out, q, kc, vc, ab); err != nil {
				t.Fatal(err)
			}
		}
		dq, dk, dv := put(dev, make([]float32, N*H*D), N, H, D), put(dev, make([]float32, N*KV*D), N, KV, D), put(dev, make([]float32, N*KV*D), N, KV, D)
		if err := bw.CausalAttentionBackward(dq, dk, dv, dout, q, kk, v, T, 0); err != nil {
			t.Fatal(err)
		}
		return []*gpu.Tensor{c, da, db, out, dq, dk, dv}
	}
	names := []string{"MatMul", "MatMulBackward da", "MatMulBackward db", "CausalAttention", "attention dq", "attention dk", "attention dv"}
	want := side(host, false)
	for _, pc := range []struct {
		name    string
		tol, lo float64
	}{{"f32", 1e-5, 0}, {"tf32", 2e-3, 1e-6}, {"bf16", 1.5e-2, 1e-6}} {
		if err := d.SetPrecision(pc.name); err != nil {
			t.Fatal(err)
		}
		got := side(d, true)
		for i := range got {
			e := relErr(got[i], want[i])
			t.Logf("%s %s: RMS error %.2g of the RMS", pc.name, names[i], e)
			if !(e <= pc.tol) || e < pc.lo {
				t.Errorf("%s %s: RMS error %.3g of the RMS, want in [%g, %g]", pc.name, names[i], e, pc.lo, pc.tol)
			}
		}
	}
}

// TestRealBF16 checks that PrecisionBF16's GEMMs multiply bf16 operands:
// MatMul and MatMulBackward on cuda equal the cpu backend's f32 products
// of the inputs rounded to bf16 within f32 accumulation's 1e-5 (TF32 or
// f32 operands are 1e-3 and more away from that reference), and that a
// CacheBF16 copy stands in for its tensor until it is remade.
func TestRealBF16(t *testing.T) {
	d := openConfig(t, cuda.DefaultConfig())
	host, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	gputest.CheckLeaks(t, d)
	if err := d.SetPrecision("bf16"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	const m, n, k = 192, 320, 448
	values := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(2*r.Float64() - 1)
		}
		return v
	}
	rounded := func(v []float32) []float32 {
		o := make([]float32, len(v))
		for i, x := range v {
			o[i] = gpu.ToBFloat16(x).Float32()
		}
		return o
	}
	var all []*gpu.Tensor
	defer func() {
		for _, x := range all {
			x.Free()
		}
	}()
	put := func(dev gpu.Device, v []float32, shape ...int) *gpu.Tensor {
		t.Helper()
		x, err := gpu.FromHost(dev, v, shape...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x)
		return x
	}
	// products returns MatMul's c and MatMulBackward's da and db on dev.
	products := func(dev gpu.Device, a, b, dc *gpu.Tensor) [3][]float32 {
		t.Helper()
		c, da, db := put(dev, make([]float32, m*n), m, n), put(dev, make([]float32, m*k), m, k), put(dev, make([]float32, n*k), n, k)
		if err := dev.Ops().MatMul(c, a, b, nil); err != nil {
			t.Fatal(err)
		}
		if err := dev.Ops().(gpu.BackwardOps).MatMulBackward(da, db, nil, dc, a, b); err != nil {
			t.Fatal(err)
		}
		var out [3][]float32
		for i, x := range []*gpu.Tensor{c, da, db} {
			if out[i], err = gpu.ToHost[float32](x); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	av, bv, bv2, dcv := values(m*k), values(n*k), values(n*k), values(m*n)
	ref := func(bv []float32) [3][]float32 {
		return products(host, put(host, rounded(av), m, k), put(host, rounded(bv), n, k), put(host, rounded(dcv), m, n))
	}
	old, cur := ref(bv), ref(bv2)
	names := [3]string{"MatMul c", "MatMulBackward da", "MatMulBackward db"}
	expect := func(what string, got, want [3][]float32) {
		t.Helper()
		for i := range got {
			var ss, se float64
			for j := range want[i] {
				e := float64(got[i][j]) - float64(want[i][j])
				ss += float64(want[i][j]) * float64(want[i][j])
				se += e * e
			}
			if e := math.Sqrt(se / ss); !(e <= 1e-5) {
				t.Errorf("%s: %s is %.3g (RMS relative) from the product of the bf16-rounded inputs, want <= 1e-5", what, names[i], e)
			}
		}
	}
	a, b, dc := put(d, av, m, k), put(d, bv, n, k), put(d, dcv, m, n)
	expect("uncached", products(d, a, b, dc), old)
	if err := d.CacheBF16(b); err != nil {
		t.Fatal(err)
	}
	expect("cached", products(d, a, b, dc), old)
	if err := gpu.Upload(b, bv2); err != nil {
		t.Fatal(err)
	}
	expect("cached, b changed since", products(d, a, b, dc), old)
	if err := d.CacheBF16(b); err != nil {
		t.Fatal(err)
	}
	expect("cache remade", products(d, a, b, dc), cur)
	d.DropBF16()
	expect("cache dropped", products(d, a, b, dc), cur)
}

// uploadT uploads host values (float32, bf16 or int32) to d as a tensor of
// shape, freed when t ends.
func uploadT[T gpu.Elem](t *testing.T, d gpu.Device, v []T, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := gpu.FromHost(d, v, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	return x
}

// TestEmbedBackwardGrouped checks that EmbedBackwardGrouped gives
// EmbedBackward's bits: ids with repeats (a batch of tokens) and distinct
// ascending rows (train's LM-head scatter), at a width of partial column
// tiles.
func TestEmbedBackwardGrouped(t *testing.T) {
	d := openConfig(t, cuda.DefaultConfig())
	gputest.CheckLeaks(t, d)
	r := rand.New(rand.NewPCG(5, 6))
	const rows, h = 300, 700
	for _, tc := range []struct {
		name string
		ids  func(n int) []int32
	}{
		{"repeats", func(n int) []int32 {
			v := make([]int32, n)
			for i := range v {
				v[i] = int32(r.IntN(40))
			}
			return v
		}},
		{"distinct", func(n int) []int32 {
			v := make([]int32, n)
			for i := range v {
				v[i] = int32(2 * i)
			}
			return v
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 129
			ids := tc.ids(n)
			dy, tab := make([]float32, n*h), make([]float32, rows*h)
			for i := range dy {
				dy[i] = 2*r.Float32() - 1
			}
			for i := range tab {
				tab[i] = r.Float32()
			}
			want, got, dyt := uploadT(t, d, tab, rows, h), uploadT(t, d, tab, rows, h), uploadT(t, d, dy, n, h)
			if err := d.EmbedBackward(want, dyt, uploadT(t, d, ids, n)); err != nil {
				t.Fatal(err)
			}
			order, starts, uniq := gpu.EmbedGroups(ids)
			if err := d.EmbedBackwardGrouped(got, dyt, uploadT(t, d, order, n), uploadT(t, d, starts, len(starts)), uploadT(t, d, uniq, len(uniq))); err != nil {
				t.Fatal(err)
			}
			w, err := gpu.ToHost[float32](want)
			if err != nil {
				t.Fatal(err)
			}
			g, err := gpu.ToHost[float32](got)
			if err != nil {
				t.Fatal(err)
			}
			for i := range w {
				if math.Float32bits(w[i]) != math.Float32bits(g[i]) {
					t.Fatalf("element %d (row %d, column %d): grouped %v, EmbedBackward %v", i, i/h, i%h, g[i], w[i])
				}
			}
		})
	}
}

// TestMatMulBackwardAcc checks MatMulBackwardAcc against MatMulBackward
// plus an Add: da = da0 + dc·b within 1e-5 of da's RMS at both precisions
// (cuBLAS may pick another kernel for beta 1), db and dbias the same
// accumulations.
func TestMatMulBackwardAcc(t *testing.T) {
	for _, prec := range []cuda.Precision{cuda.PrecisionF32, cuda.PrecisionBF16} {
		t.Run(prec.String(), func(t *testing.T) {
			cfg := cuda.DefaultConfig()
			cfg.Precision = prec
			d := openConfig(t, cfg)
			gputest.CheckLeaks(t, d)
			r := rand.New(rand.NewPCG(7, 8))
			const m, n, k = 67, 96, 130
			vals := func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = 2*r.Float32() - 1
				}
				return v
			}
			up := func(v []float32, shape ...int) *gpu.Tensor { return uploadT(t, d, v, shape...) }
			dc, a, b, da0 := up(vals(m*n), m, n), up(vals(m*k), m, k), up(vals(n*k), n, k), vals(m*k)
			db0, dbias0 := vals(n*k), vals(n)
			wantDA, wantDB, wantBias := up(make([]float32, m*k), m, k), up(db0, n, k), up(dbias0, n)
			if err := d.MatMulBackward(wantDA, wantDB, wantBias, dc, a, b); err != nil {
				t.Fatal(err)
			}
			acc := up(da0, m, k)
			if err := d.Add(wantDA, wantDA, acc); err != nil {
				t.Fatal(err)
			}
			gotDA, gotDB, gotBias := up(da0, m, k), up(db0, n, k), up(dbias0, n)
			if err := d.MatMulBackwardAcc(gotDA, gotDB, gotBias, dc, a, b); err != nil {
				t.Fatal(err)
			}
			host := func(x *gpu.Tensor) []float32 {
				v, err := gpu.ToHost[float32](x)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			w, g := host(wantDA), host(gotDA)
			var ss float64
			for _, v := range w {
				ss += float64(v) * float64(v)
			}
			rms := math.Sqrt(ss / float64(len(w)))
			for i := range w {
				if math.Abs(float64(g[i]-w[i])) > 1e-5*rms {
					t.Fatalf("da[%d]: %v, MatMulBackward + Add %v (RMS %v)", i, g[i], w[i], rms)
				}
			}
			for _, c := range []struct {
				name      string
				got, want *gpu.Tensor
			}{{"db", gotDB, wantDB}, {"dbias", gotBias, wantBias}} {
				gv, wv := host(c.got), host(c.want)
				for i := range wv {
					if math.Float32bits(gv[i]) != math.Float32bits(wv[i]) {
						t.Fatalf("%s[%d]: %v, MatMulBackward's %v", c.name, i, gv[i], wv[i])
					}
				}
			}
		})
	}
}

// TestBF16Activations checks training's bf16 activations at PrecisionBF16:
// MatMul, MatMulBackward and SiLUMulBackward given a bf16 tensor give the
// bits they give for an f32 tensor of the same (bf16-representable)
// values, which they round to those same bf16 operands.
func TestBF16Activations(t *testing.T) {
	cfg := cuda.DefaultConfig()
	cfg.Precision = cuda.PrecisionBF16
	d := openConfig(t, cfg)
	gputest.CheckLeaks(t, d)
	r := rand.New(rand.NewPCG(9, 10))
	const m, n, k = 37, 80, 96
	vals := func(n int, bf bool) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 2*r.Float32() - 1
			if bf {
				v[i] = gpu.ToBFloat16(v[i]).Float32()
			}
		}
		return v
	}
	up := func(v []float32, shape ...int) *gpu.Tensor { return uploadT(t, d, v, shape...) }
	upBF := func(v []float32, shape ...int) *gpu.Tensor {
		h := make([]gpu.BFloat16, len(v))
		for i, f := range v {
			h[i] = gpu.ToBFloat16(f)
		}
		return uploadT(t, d, h, shape...)
	}
	host := func(x *gpu.Tensor) []float32 {
		v, err := gpu.ToHost[float32](x)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	same := func(what string, got, want *gpu.Tensor) {
		t.Helper()
		g, w := host(got), host(want)
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("%s[%d]: bf16 activation %v, f32 of the same values %v", what, i, g[i], w[i])
			}
		}
	}
	zeros := func(shape ...int) *gpu.Tensor { return up(make([]float32, shape[0]*shape[1]), shape...) }
	av, wv := vals(m*k, true), vals(n*k, false)
	a32, a16, w := up(av, m, k), upBF(av, m, k), up(wv, n, k)
	c32, c16 := zeros(m, n), zeros(m, n)
	if err := d.MatMul(c32, a32, w, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.MatMul(c16, a16, w, nil); err != nil {
		t.Fatal(err)
	}
	same("MatMul", c16, c32)
	dc := up(vals(m*n, false), m, n)
	da32, da16 := zeros(m, k), zeros(m, k)
	db0 := vals(n*k, false)
	db32, db16 := up(db0, n, k), up(db0, n, k)
	if err := d.MatMulBackward(da32, db32, nil, dc, a32, w); err != nil {
		t.Fatal(err)
	}
	if err := d.MatMulBackward(da16, db16, nil, dc, a16, w); err != nil {
		t.Fatal(err)
	}
	same("MatMulBackward da", da16, da32)
	same("MatMulBackward db", db16, db32)
	gv, uv := vals(m*k, true), vals(m*k, true)
	dy := up(vals(m*k, false), m, k)
	dg32, du32, dg16, du16 := zeros(m, k), zeros(m, k), zeros(m, k), zeros(m, k)
	if err := d.SiLUMulBackward(dg32, du32, dy, up(gv, m, k), up(uv, m, k)); err != nil {
		t.Fatal(err)
	}
	if err := d.SiLUMulBackward(dg16, du16, dy, upBF(gv, m, k), upBF(uv, m, k)); err != nil {
		t.Fatal(err)
	}
	same("SiLUMulBackward dgate", dg16, dg32)
	same("SiLUMulBackward dup", du16, du32)
}
