package cuda

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"unsafe"
	"weak"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// Quantized products (gpu.QuantOps), three paths chosen per call:
//
//   - gemv, for at most qgRows rows of a (decode): qGemv dequantizes each
//     weight chunk in registers once and uses it for every row, so the
//     weight is read once, at its quantized size;
//   - lt, FP8 on GPUs with FP8 tensor cores (sm_89 and later), a quantized
//     to E4M3 on the device (absmax/448, computed on the device) and
//     cuBLASLt's E4M3 × E4M3 product (TN, f32 accumulation): when w's scales
//     come in at most 8 runs of equal ones (per-tensor checkpoints and
//     --quantization fp8, with merged projections) and there is no bias,
//     a gets one scale per band of rows (vLLM's dynamic per-tensor scheme)
//     and each run is one product that applies both scales (cuBLASLt's A
//     and B scale pointers) and writes c; otherwise (per-channel weights,
//     a bias) qActFP8 gives each row of a its scale (vLLM's per-token
//     scheme), the product goes to an f32 scratch and qEpilogue applies the
//     scales and the bias. a is taken in bands of rows so that the scratch
//     stays under qScratchBytes;
//   - mma, int4 with uniform groups (each a multiple of 64 columns; AWQ,
//     GPTQ without act_order), integer zeros and a bf16 a: qMMA dequantizes
//     the nibbles of its tensor-core fragments in registers and applies the
//     group scales to the f32 partial sums, so the weight is read once at
//     its packed size and never written back dequantized; k is split over
//     more blocks (qSplitSum adds the parts) where the tiles alone would
//     leave SMs idle;
//   - tile, for the rest (int4 with many rows, FP8 on sm_80 or odd
//     shapes): qDequant writes a band of weight rows (at most qTileBytes,
//     so it stays in L2) in a's dtype into scratch and cublasGemmEx
//     multiplies a by it; no float copy of the whole weight exists.
//
// Every path takes its temporaries from scratch (graph.go) and enqueues
// only kernels and library calls, so QMatMul can be captured (the host
// checks of Groups, of int4 Zeros and of the FP8 scale runs happen once per
// tensor, on its first use outside a capture). QMatMul picks mma for the
// int4 weights it takes up to qmmaRows rows of a (SLUICE_CUDA_INT4_MMA=0:
// never), gemv for a of at most
// qgRows rows, lt beyond that for FP8 weights on GPUs with FP8 tensor cores
// (vLLM's W8A8 with dynamic activation scales, what its fp8 does on
// Hopper), and tile otherwise; SLUICE_CUDA_FP8_ACT=0 keeps FP8 weight-only
// (tile beyond qgRows rows). On an H200 (2026-12-07, BenchmarkQMatMul,
// bench-8b's gate_up, a bf16) lt took 51/69/439 µs at 64/256/2048 rows
// against bf16 cuBLAS's 65/92/609 µs, and tile 409/311/768 µs; on bench-8b
// offline-512 (H100) W8A8 ran at 1.06x bf16 and weight-only at 0.75x. On
// the GPU lt's logits were 6-9% off the
// dequantized reference on the fixture models, greedy tokens apart: that
// is E4M3's rounding of a, not a bug (infer/model TestW8A8Rounding rounds a
// on the cpu backend exactly as qActFP8 and qActFP8T do: 4.4-10% on the
// same fixtures, whose greedy margins are 0.1-6% of the largest logit). The lt path is not
// exact against the dequantized weight: a is rounded to E4M3 (3 mantissa
// bits, about 2.5% RMS an element), which QuantRounding reports so that
// gputest holds lt to a reference of the same rounded a; gemv computes
// with the dequantized weight exactly, and tile does too except that the
// band is rounded to bf16 (f16) when a is bf16 (f16).

var _ gpu.QuantOps = (*Device)(nil)

const (
	qgRows        = 8        // QG_M in quant.cuh
	qgWarps       = 8        // QG_WARPS
	qTileBytes    = 16 << 20 // the tile path's band of dequantized rows
	qScratchBytes = 64 << 20 // the lt path's E4M3 a, scales and f32 product per band of rows

	qFmtFP8, qFmtInt4 = 1, 2 // Q_FP8, Q_INT4

	// qmmaBN and qmmaBK are QM_BN and QM_BK of quant.cuh: weight rows and
	// columns of a qMMA block's tile.
	qmmaBN, qmmaBK = 128, 64
	// qmmaRows is the most rows of a that QMatMul gives the mma path when
	// it chooses (SLUICE_CUDA_INT4_MMA_ROWS overrides it); beyond, the tile
	// path's cuBLAS product (warpgroup MMA on Hopper) outruns mma.sync. The
	// default is an estimate, not yet measured: see BenchmarkQMatMul.
	qmmaRows = 1024
)

// quantPath is a QMatMul path; quantAuto lets QMatMul choose (tests force
// the others).
type quantPath uint8

const (
	quantAuto quantPath = iota
	quantGemv
	quantLt    // with one scale for a where w has one (quantLtRow otherwise)
	quantLtRow // a scale per row of a, through the f32 product and qEpilogue
	quantTile
	quantMMA // int4 weights it takes (mmaGroups); others as quantAuto
)

func (p quantPath) String() string {
	return [...]string{"auto", "gemv", "lt", "ltrow", "tile", "mma"}[p]
}

// quantState is a Device's quantized-product state, set up by the first
// QMatMul: the kernels (looked up then, so that a PTX without them fails
// only QMatMul), the cuBLASLt handle and its plans, and the Groups tensors
// already checked.
type quantState struct {
	ready               bool
	err                 error // the kernels are missing
	act, epi, gemv, deq uintptr
	zero, absmax, actT  uintptr
	lt                  *cublasLt
	ltErr               error // why the lt path is off
	ltHndl              uintptr
	plans               map[ltKey]*ltPlan
	checked             map[weak.Pointer[gpu.Tensor]]bool // Groups tensors whose indices are in range
	uniform             map[weak.Pointer[gpu.Tensor]]int  // checked Groups tensors: their group size where every band's column c is in group c / size, else 0
	intZeros            map[weak.Pointer[gpu.Tensor]]bool // int4 Zeros tensors checked: every zero an integer in [0, 127]
	mma                 [3]uintptr                        // qMMA16, qMMA32, qMMA64
	splitSum            uintptr
	mmaErr              error                              // why the mma path is off (its kernels are missing, or SLUICE_CUDA_INT4_MMA=0)
	mmaRows             int                                // the most rows of a the mma path takes when QMatMul chooses
	mmaCalls            int                                // mma products enqueued (tests)
	runs                map[weak.Pointer[gpu.Tensor]][]int // FP8 Scales tensors checked: where runs of equal scales start
	scaleA, scaleB      uint64                             // the scale pointers of the scaled lt plan
	scaledCalls         int                                // scaled lt products enqueued (tests)
	force               quantPath
	w8a8                bool // QMatMul may pick the lt path (not under SLUICE_CUDA_FP8_ACT=0)
	block               [17]uintptr
	alpha, beta         float32
	heur                [ltHeuristicResultLen]byte
	trans, noTrans      int32
	workspace           uint64
	pref                uintptr
	count               int32
	align               uint32
}

// quantStates holds each Device's quantState beside it (the Device struct
// has no field for it): keyed weakly, and released by a cleanup when the
// Device is collected (cuBLASLt's handle and plans are host memory, so
// they outlive Close harmlessly until then).
var quantStates struct {
	sync.Mutex
	m map[weak.Pointer[Device]]*quantState
}

// quantOf returns d's quantState, made the first time.
func quantOf(d *Device) *quantState {
	quantStates.Lock()
	defer quantStates.Unlock()
	k := weak.Make(d)
	if q, ok := quantStates.m[k]; ok {
		return q
	}
	if quantStates.m == nil {
		quantStates.m = map[weak.Pointer[Device]]*quantState{}
	}
	q := &quantState{}
	quantStates.m[k] = q
	runtime.AddCleanup(d, func(k weak.Pointer[Device]) {
		quantStates.Lock()
		q := quantStates.m[k]
		delete(quantStates.m, k)
		quantStates.Unlock()
		q.release()
	}, k)
	return q
}

// ltKey is one shape of the lt path's product: [m, k] E4M3 by [n, k]
// into dt with row stride ld; scaled: with cuBLASLt's per-tensor A and B
// scales.
type ltKey struct {
	m, n, k, ld int
	dt          gpu.DType
	scaled      bool
}

// ltPlan is the cuBLASLt descriptors and algorithm of one ltKey; ok is
// false where cuBLASLt offered no algorithm (the tile path runs instead).
type ltPlan struct {
	desc, la, lb, ld uintptr
	algo             [64]byte
	ok               bool
}

// init looks up the kernels and opens cuBLASLt; the caller holds enter.
func (q *quantState) init(d *Device) error {
	if q.ready {
		return q.err
	}
	q.ready = true
	q.alpha, q.trans = 1, cublasOpT
	q.w8a8 = os.Getenv("SLUICE_CUDA_FP8_ACT") != "0"
	if name, err := d.lookup([]kernelFunc{{&q.act, "qActFP8"}, {&q.epi, "qEpilogue"}, {&q.gemv, "qGemv"}, {&q.deq, "qDequant"},
		{&q.zero, "qZero"}, {&q.absmax, "qAbsmax"}, {&q.actT, "qActFP8T"}}); err != nil {
		q.err = fmt.Errorf("gpu: QMatMul: the loaded kernels have no %s (gpu/kernels/quant.cuh): rebuild the PTX with gpu/kernels/build.sh or set SLUICE_CUDA_PTX: %w", name, err)
		return q.err
	}
	q.mmaRows = qmmaRows
	if v, err := strconv.Atoi(os.Getenv("SLUICE_CUDA_INT4_MMA_ROWS")); err == nil && v >= 0 {
		q.mmaRows = v
	}
	if os.Getenv("SLUICE_CUDA_INT4_MMA") == "0" {
		q.mmaErr = fmt.Errorf("cuda: SLUICE_CUDA_INT4_MMA=0")
	} else if name, err := d.lookup([]kernelFunc{{&q.mma[0], "qMMA16"}, {&q.mma[1], "qMMA32"}, {&q.mma[2], "qMMA64"},
		{&q.splitSum, "qSplitSum"}}); err != nil {
		q.mmaErr = fmt.Errorf("cuda: the loaded kernels have no %s (an older PTX): %w", name, err)
	}
	if d.major*10+d.minor < 89 {
		q.ltErr = fmt.Errorf("cuda: %s has no FP8 tensor cores (sm_%d%d)", d.name, d.major, d.minor)
		return nil
	}
	lt, err := loadCublasLt()
	if err == nil {
		err = lt.call("cublasLtCreate", lt.create, uintptr(unsafe.Pointer(&q.ltHndl)))
	}
	if err != nil {
		q.ltErr = err
		return nil
	}
	q.lt = lt
	q.plans = map[ltKey]*ltPlan{}
	return nil
}

// release destroys the plans and the cuBLASLt handle; for Device.release.
func (q *quantState) release() error {
	if q.lt == nil {
		return nil
	}
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	lt := q.lt
	for _, p := range q.plans {
		keep(lt.call("cublasLtMatmulDescDestroy", lt.descDestroy, p.desc))
		for _, l := range []uintptr{p.la, p.lb, p.ld} {
			keep(lt.call("cublasLtMatrixLayoutDestroy", lt.layoutDestroy, l))
		}
	}
	clear(q.plans)
	keep(lt.call("cublasLtDestroy", lt.destroy, q.ltHndl))
	q.lt, q.ltHndl = nil, 0
	return first
}

// plan returns the lt plan of key, made the first time: TN (the weight
// [n, k] row-major is column-major k×n, transposed), E4M3 inputs, f32
// compute, scale and output, the cuBLAS workspace.
func (q *quantState) plan(key ltKey) (*ltPlan, error) {
	if p, ok := q.plans[key]; ok {
		return p, nil
	}
	lt := q.lt
	p := &ltPlan{}
	err := lt.call("cublasLtMatmulDescCreate", lt.descCreate, uintptr(unsafe.Pointer(&p.desc)), cublasCompute32F, cudaR32F)
	if err == nil {
		err = lt.call("cublasLtMatmulDescSetAttribute", lt.descSet, p.desc, ltDescTransA, uintptr(unsafe.Pointer(&q.trans)), 4)
	}
	if err == nil {
		err = lt.call("cublasLtMatmulDescSetAttribute", lt.descSet, p.desc, ltDescTransB, uintptr(unsafe.Pointer(&q.noTrans)), 4)
	}
	if err == nil && key.scaled {
		err = q.setScales(p)
	}
	for _, l := range []struct {
		p          *uintptr
		typ        uintptr
		rows, cols int
	}{{&p.la, cudaR8FE4M3, key.k, key.n}, {&p.lb, cudaR8FE4M3, key.k, key.m}, {&p.ld, gemmType(key.dt), key.n, key.m}} {
		ld := l.rows
		if l.p == &p.ld {
			ld = key.ld
		}
		if err == nil {
			err = lt.call("cublasLtMatrixLayoutCreate", lt.layoutCreate, uintptr(unsafe.Pointer(l.p)), l.typ, uintptr(l.rows), uintptr(l.cols), uintptr(ld))
		}
	}
	// pref and count live in q, on the heap: the library writes them.
	q.pref = 0
	if err == nil {
		err = lt.call("cublasLtMatmulPreferenceCreate", lt.prefCreate, uintptr(unsafe.Pointer(&q.pref)))
	}
	pref := q.pref
	if err == nil {
		q.workspace = blasWorkspace
		err = lt.call("cublasLtMatmulPreferenceSetAttribute", lt.prefSet, pref, ltPrefMaxWorkspace, uintptr(unsafe.Pointer(&q.workspace)), 8)
	}
	// Only algorithms that take 16-byte aligned matrices (cuBLASLt assumes
	// 256 unless told): a run's rows of w and columns of c start at
	// multiples of 16 elements, not of 256 bytes.
	q.align = 16
	for attr := uintptr(ltPrefMinAlignA); attr <= ltPrefMinAlignD && err == nil; attr++ {
		err = lt.call("cublasLtMatmulPreferenceSetAttribute", lt.prefSet, pref, attr, uintptr(unsafe.Pointer(&q.align)), 4)
	}
	if err == nil {
		q.count = 0
		err = lt.call("cublasLtMatmulAlgoGetHeuristic", lt.heuristic, q.ltHndl, p.desc, p.la, p.lb, p.ld, p.ld, pref, 1,
			uintptr(unsafe.Pointer(&q.heur[0])), uintptr(unsafe.Pointer(&q.count)))
		// CUBLAS_STATUS_NOT_SUPPORTED is also how it says "no algorithm".
		if q.count > 0 && err == nil {
			copy(p.algo[:], q.heur[:64])
			p.ok = true
		}
		err = nil
	}
	if pref != 0 {
		if perr := lt.call("cublasLtMatmulPreferenceDestroy", lt.prefDestroy, pref); err == nil {
			err = perr
		}
	}
	if err != nil {
		return nil, err
	}
	q.plans[key] = p
	return p, nil
}

// setScales points p's A and B scales at q.scaleA and q.scaleB (the
// weight's scale and a's, device f32 scalars).
func (q *quantState) setScales(p *ltPlan) error {
	lt := q.lt
	err := lt.call("cublasLtMatmulDescSetAttribute", lt.descSet, p.desc, ltDescAScale, uintptr(unsafe.Pointer(&q.scaleA)), 8)
	if err == nil {
		err = lt.call("cublasLtMatmulDescSetAttribute", lt.descSet, p.desc, ltDescBScale, uintptr(unsafe.Pointer(&q.scaleB)), 8)
	}
	return err
}

// QMatMul computes c = a·Wᵀ + bias with W quantized (see the paths above).
// Group indices are checked on the host the first time a Groups tensor is
// used outside a capture (one download and wait); during a capture an
// unchecked index out of range gives NaN outputs instead of ErrIndex.
func (d *Device) QMatMul(c, a *gpu.Tensor, w *gpu.QuantWeight, bias *gpu.Tensor) (err error) {
	const op = "QMatMul"
	m, n, k, err := check.QMatMul(c, a, w, bias)
	if err != nil {
		return err
	}
	p, err := d.ptrs(op, []string{"c", "a", "bias", "data", "scales", "zeros", "groups"}, c, a, bias, w.Data, w.Scales, w.Zeros, w.Groups)
	if err != nil {
		return err
	}
	gs := 0 // the uniform group size of an int4 weight the mma path takes
	if w.Format == gpu.QuantInt4 {
		if err := d.checkGroups(op, p[6], w); err != nil {
			return err
		}
		if gs, err = d.mmaGroups(w, a.DType(), p[1]|p[3]); err != nil {
			return err
		}
	}
	runs, err := d.fp8Runs(m, w, bias != nil)
	if err != nil {
		return err
	}
	if m == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	q := quantOf(d)
	if err := q.init(d); err != nil {
		return err
	}
	x := qcall{d: d, q: q, c: c, a: a, w: w, bias: bias, cp: p[0], ap: p[1], bp: p[2], m: m, n: n, k: k,
		data: p[3], scales: p[4], zeros: p[5], groups: p[6], fmt: qFmtFP8, ngroups: 1, segRows: 1,
		runs: runs, scaled: runs != nil && q.force != quantLtRow}
	if w.Format == gpu.QuantInt4 {
		x.fmt, x.ngroups, x.segRows = qFmtInt4, w.Scales.Dim(1), n/w.Groups.Dim(0)
	}
	q.scaleA, q.scaleB = x.scales, x.scales // non-null, for the heuristic; lt sets a's before each product
	switch path := d.quantPath(q, m, w, gs, x.data|x.cp, x.ltKey(min(m, d.ltBand(n, k)), 0)); path {
	case quantMMA:
		err = x.mma(gs)
	case quantGemv:
		err = x.gemv()
	case quantLt, quantLtRow:
		err = x.lt()
	default:
		err = x.tile()
	}
	if err != nil {
		return fmt.Errorf("gpu: %s %s·(%s [%d, %d])ᵀ → %s: %w", op, a, w.Format, n, k, c, err)
	}
	return nil
}

// quantPath picks the path of a QMatMul of m rows (see the top of the
// file); gs is mmaGroups' group size (0: not for the mma path), ptrs is the
// weight's and c's addresses or'ed, for their alignment. The caller holds
// enter and has run init.
func (d *Device) quantPath(q *quantState, m int, w *gpu.QuantWeight, gs int, ptrs uint64, key ltKey) quantPath {
	if gs > 0 && q.mmaErr == nil && (q.force == quantMMA || q.force == quantAuto && m <= q.mmaRows) {
		return quantMMA
	}
	ltOK := w.Format == gpu.QuantFP8 && q.lt != nil && w.K%16 == 0 && w.N%16 == 0 && ptrs%16 == 0
	if ltOK {
		p, err := q.plan(key)
		ltOK = err == nil && p.ok
	}
	switch {
	case (q.force == quantLt || q.force == quantLtRow) && ltOK, q.force == quantGemv, q.force == quantTile:
		return q.force
	case (q.force == quantAuto || q.force == quantMMA) && m <= qgRows:
		return quantGemv
	case ltOK && q.w8a8:
		return quantLt
	}
	return quantTile
}

// ltBand is the rows of a the lt path takes at once: the scratch (E4M3 a,
// its scales, the f32 product) within qScratchBytes, a multiple of 16.
func (d *Device) ltBand(n, k int) int {
	return max(16, qScratchBytes/(k+4+4*n)/16*16)
}

// fp8Runs is scaleRuns(w) where QMatMul of m rows may take the scaled lt
// product (FP8, no bias, more than qgRows rows), else nil; the caller does
// not hold enter.
func (d *Device) fp8Runs(m int, w *gpu.QuantWeight, hasBias bool) ([]int, error) {
	if w.Format != gpu.QuantFP8 || hasBias || m <= qgRows {
		return nil, nil
	}
	return d.scaleRuns(w)
}

// checkGroups downloads w's Groups and checks every index once per tensor
// (outside a capture); the caller does not hold enter.
func (d *Device) checkGroups(op string, ptr uint64, w *gpu.QuantWeight) error {
	q := quantOf(d)
	key := weak.Make(w.Groups)
	if q.checked[key] || d.capturing != nil {
		return nil
	}
	ngroups := w.Scales.Dim(1)
	gs := make([]int32, w.Groups.Len())
	if err := gpu.Download(gs, w.Groups); err != nil {
		return err
	}
	for i, g := range gs {
		if err := check.Index(op, "groups", i, int(g), ngroups); err != nil {
			return err
		}
	}
	if q.checked == nil {
		q.checked = map[weak.Pointer[gpu.Tensor]]bool{}
		q.uniform = map[weak.Pointer[gpu.Tensor]]int{}
	}
	q.checked[key] = true
	size := w.K / ngroups
	if w.K%ngroups != 0 {
		size = 0
	}
	for i, g := range gs {
		if size == 0 || int(g) != i%w.K/size {
			size = 0
			break
		}
	}
	q.uniform[key] = size
	return nil
}

// mmaGroups returns the group size of the int4 weight w when the mma path
// takes it with a of dtype adt, a's and the weight's data's addresses
// or'ed in ptrs: a bf16 a, both 16-byte aligned;
// k a multiple of 64; groups uniform (checkGroups), each a multiple of 64
// columns; every zero an integer in [0, 127] (found once per Zeros tensor
// on the host, a download and wait, outside captures). Otherwise, or
// during a capture before the tensors were checked, 0. The caller does not
// hold enter.
func (d *Device) mmaGroups(w *gpu.QuantWeight, adt gpu.DType, ptrs uint64) (int, error) {
	q := quantOf(d)
	size := q.uniform[weak.Make(w.Groups)]
	if adt != gpu.BF16 || ptrs%16 != 0 || w.K%qmmaBK != 0 || size%qmmaBK != 0 || size == 0 {
		return 0, nil
	}
	key := weak.Make(w.Zeros)
	ok, seen := q.intZeros[key]
	if !seen && d.capturing == nil {
		z := make([]float32, w.Zeros.Len())
		if err := gpu.Download(z, w.Zeros); err != nil {
			return 0, err
		}
		ok = true
		for _, v := range z {
			if !(v >= 0 && v <= 127 && v == float32(int(v))) {
				ok = false
				break
			}
		}
		if q.intZeros == nil {
			q.intZeros = map[weak.Pointer[gpu.Tensor]]bool{}
		}
		q.intZeros[key] = ok
	}
	if !ok {
		return 0, nil
	}
	return size, nil
}

// scaleRuns returns where the runs of equal scales of the FP8 weight w
// start, and n, when there are at most maxRuns of them, each a multiple
// of 16 rows (a per-tensor checkpoint, or --quantization fp8, with q, k, v
// or gate and up merged), so that the lt path can hand cuBLASLt one scale
// per run; nil otherwise. It is found once per Scales tensor on the host (a
// download and wait), outside captures; during a capture an unchecked
// tensor gives nil. The key is a weak pointer, so a new tensor at a freed
// one's address is checked afresh.
func (d *Device) scaleRuns(w *gpu.QuantWeight) ([]int, error) {
	const maxRuns = 8
	q := quantOf(d)
	key := weak.Make(w.Scales)
	if r, ok := q.runs[key]; ok || d.capturing != nil {
		return r, nil
	}
	s := make([]float32, w.Scales.Len())
	if err := gpu.Download(s, w.Scales); err != nil {
		return nil, err
	}
	runs := []int{0}
	for i := 1; i < len(s) && runs != nil; i++ {
		if s[i] == s[i-1] {
			continue
		}
		if i%16 != 0 || len(runs) == maxRuns {
			runs = nil
			break
		}
		runs = append(runs, i)
	}
	if runs != nil {
		runs = append(runs, len(s))
	}
	if q.runs == nil {
		q.runs = map[weak.Pointer[gpu.Tensor]][]int{}
	}
	q.runs[key] = runs
	return runs, nil
}

// qcall is one QMatMul's operands, resolved.
type qcall struct {
	q                              *quantState
	d                              *Device
	c, a, bias                     *gpu.Tensor
	w                              *gpu.QuantWeight
	cp, ap, bp                     uint64
	data, scales, zeros, groups    uint64
	m, n, k, fmt, ngroups, segRows int
	scaled                         bool  // lt: one scale for a, one per run of w's rows; cuBLASLt writes c
	runs                           []int // where w's runs of equal scales start, then n
}

// ltKey is the lt plan of a band of rows of a (scaled: by run r of w).
func (x *qcall) ltKey(rows, r int) ltKey { return x.ltKeyOf(rows, r, x.c.DType()) }

// ltKeyOf is ltKey with c of dtype cdt.
func (x *qcall) ltKeyOf(rows, r int, cdt gpu.DType) ltKey {
	if x.scaled {
		return ltKey{rows, x.runs[r+1] - x.runs[r], x.k, x.n, cdt, true}
	}
	return ltKey{rows, x.n, x.k, x.n, gpu.F32, false}
}

// gemv runs qGemv over bands of qgRows rows of a.
func (x *qcall) gemv() error {
	d := x.d
	adt, cdt := x.a.DType(), x.c.DType()
	for i0 := 0; i0 < x.m; i0 += qgRows {
		rows := min(qgRows, x.m-i0)
		ap := x.ap + uint64(i0*x.k*adt.Size())
		avec := uint64(0)
		if adt == gpu.BF16 && x.k%8 == 0 && ap%16 == 0 {
			avec = 1
		}
		if err := d.launch("qGemv", x.q.gemv, [3]int{(x.n + qgWarps - 1) / qgWarps, 1, 1}, qgWarps*32,
			x.cp+uint64(i0*x.n*cdt.Size()), uint64(cdt), ap, uint64(adt), avec, x.bp, dt(x.bias),
			uint64(x.fmt), x.data, x.scales, x.zeros, x.groups, i64(x.ngroups), i64(x.segRows),
			i64(rows), i64(x.n), i64(x.k)); err != nil {
			return err
		}
	}
	return nil
}

// lt runs the FP8 tensor-core path over bands of rows of a: scaled, a
// band's absmax gives one scale and cuBLASLt applies it and the weight
// run's (A and B scale pointers) while it writes c; otherwise qActFP8 gives each
// row its scale and qEpilogue applies both and the bias to the f32 product.
func (x *qcall) lt() (err error) {
	d, q := x.d, x.q
	band := min(x.m, d.ltBand(x.n, x.k))
	qBytes := (band*x.k + 255) &^ 255
	saBytes := (4*band + 255) &^ 255 // scales; scaled: the absmax word, the scale at +16
	accBytes := 4 * band * x.n
	if x.scaled {
		accBytes = 0
	}
	s, err := d.scratch(qBytes + saBytes + accBytes)
	if err != nil {
		return err
	}
	defer func() {
		if ferr := d.freeScratch(s); ferr != nil && err == nil {
			err = ferr
		}
	}()
	qa, sa, acc := uint64(s), uint64(s)+uint64(qBytes), uint64(s)+uint64(qBytes+saBytes)
	adt, cdt := x.a.DType(), x.c.DType()
	for i0 := 0; i0 < x.m; i0 += band {
		rows := min(band, x.m-i0)
		ap, cp := x.ap+uint64(i0*x.k*adt.Size()), x.cp+uint64(i0*x.n*cdt.Size())
		if !x.scaled {
			if err := d.launch("qActFP8", q.act, [3]int{rows, 1, 1}, min(threads(x.k), 1024),
				qa, sa, ap, uint64(adt), i64(x.k)); err != nil {
				return err
			}
			if err := x.ltMatmul(x.ltKey(rows, 0), x.data, qa, acc); err != nil {
				return err
			}
			if err := d.launch("qEpilogue", q.epi, d.grid1(rows*x.n), 256,
				cp, uint64(cdt), i64(x.n), acc, sa, x.scales, x.bp, dt(x.bias),
				i64(rows), i64(x.n)); err != nil {
				return err
			}
			continue
		}
		if err := d.launch("qZero", q.zero, [3]int{1, 1, 1}, 32, sa, 1); err != nil {
			return err
		}
		if err := d.launch("qAbsmax", q.absmax, [3]int{rows, 1, 1}, min(threads(x.k), 1024), sa, ap, uint64(adt), i64(x.k)); err != nil {
			return err
		}
		if err := d.launch("qActFP8T", q.actT, d.grid1(rows*x.k), 256, qa, sa+16, sa, ap, uint64(adt), i64(rows*x.k)); err != nil {
			return err
		}
		// One product per run of equal weight scales: rows [r0, r1) of w
		// into columns [r0, r1) of c (row stride n).
		for r := 0; r+1 < len(x.runs); r++ {
			r0 := x.runs[r]
			q.scaleA, q.scaleB = x.scales+uint64(4*r0), sa+16
			q.scaledCalls++
			if err := x.ltMatmul(x.ltKey(rows, r), x.data+uint64(r0*x.k), qa, cp+uint64(r0*cdt.Size())); err != nil {
				return err
			}
		}
	}
	return nil
}

// ltMatmul enqueues cublasLtMatmul of key's plan: out = w·qaᵀ (column-
// major), with q.scaleA and q.scaleB for a scaled plan.
func (x *qcall) ltMatmul(key ltKey, w, qa, out uint64) error {
	d, q := x.d, x.q
	p, err := q.plan(key)
	if err != nil {
		return err
	}
	if !p.ok {
		return fmt.Errorf("cuda: cublasLtMatmulAlgoGetHeuristic offers no FP8 algorithm for [%d, %d]·[%d, %d]ᵀ: %w", key.m, key.k, key.n, key.k, ErrCall)
	}
	if key.scaled {
		if err := q.setScales(p); err != nil {
			return err
		}
	}
	r := call16(q.lt.call16, q.lt.matmul, &q.block, [16]uintptr{
		q.ltHndl, p.desc, uintptr(unsafe.Pointer(&q.alpha)),
		uintptr(w), p.la, uintptr(qa), p.lb,
		uintptr(unsafe.Pointer(&q.beta)), uintptr(out), p.ld, uintptr(out), p.ld,
		uintptr(unsafe.Pointer(&p.algo[0])), d.workspace, blasWorkspace, d.stream})
	return blasStatus("cublasLtMatmul", r)
}

// mma runs qMMA with weight groups of gs columns: 16, 32 or 64 rows of a a
// block, and k split in whole groups over more blocks (partials in f32
// scratch, summed with the bias by qSplitSum) while the tiles alone fill
// fewer than two blocks per SM.
func (x *qcall) mma(gs int) (err error) {
	d, q := x.d, x.q
	mt, fn := 4, q.mma[2]
	switch {
	case x.m <= 16:
		mt, fn = 1, q.mma[0]
	case x.m <= 32:
		mt, fn = 2, q.mma[1]
	}
	tiles := [3]int{(x.m + 16*mt - 1) / (16 * mt), (x.n + qmmaBN - 1) / qmmaBN, 1}
	ngroups := x.k / gs
	splits := min(ngroups, max(1, (2*d.sms+tiles[0]*tiles[1]-1)/(tiles[0]*tiles[1])), 16, max(1, qScratchBytes/(4*x.m*x.n)))
	per := (ngroups + splits - 1) / splits
	tiles[2] = (ngroups + per - 1) / per
	cp, cdt := x.cp, x.c.DType()
	var s uint64
	if tiles[2] > 1 {
		p, err := d.scratch(4 * tiles[2] * x.m * x.n)
		if err != nil {
			return err
		}
		defer func() {
			if ferr := d.freeScratch(p); ferr != nil && err == nil {
				err = ferr
			}
		}()
		s, cp = uint64(p), uint64(p)
	}
	q.mmaCalls++
	if err := d.launch("qMMA", fn, tiles, 128, cp, uint64(cdt), x.ap, x.bp, dt(x.bias), x.data, x.scales, x.zeros,
		i64(ngroups), i64(gs), i64(x.m), i64(x.n), i64(x.k), i64(per)); err != nil {
		return err
	}
	if tiles[2] == 1 {
		return nil
	}
	return d.launch("qSplitSum", q.splitSum, d.grid1(x.m*x.n), 256, x.cp, uint64(cdt), s, i64(tiles[2]), x.bp, dt(x.bias),
		i64(x.m), i64(x.n))
}

// tile runs the dequantize-a-band-then-cuBLAS path.
func (x *qcall) tile() (err error) {
	d, q := x.d, x.q
	adt, cdt := x.a.DType(), x.c.DType()
	td := adt // the tile's dtype: a's, so that cuBLAS takes both as they are
	direct := x.bias == nil && (cdt == td || cdt == gpu.F32)
	rows := max(16, qTileBytes/(x.k*td.Size())/16*16)
	if !direct {
		rows = min(rows, max(16, qScratchBytes/(4*x.m)/16*16))
	}
	rows = min(rows, x.n)
	tileBytes := (rows*x.k*td.Size() + 255) &^ 255
	need := tileBytes
	if !direct {
		need += 4 * x.m * rows
	}
	s, err := d.scratch(need)
	if err != nil {
		return err
	}
	defer func() {
		if ferr := d.freeScratch(s); ferr != nil && err == nil {
			err = ferr
		}
	}()
	tp, acc := uint64(s), uint64(s)+uint64(tileBytes)
	d.beta = 0
	for r0 := 0; r0 < x.n; r0 += rows {
		nr := min(rows, x.n-r0)
		if err := d.launch("qDequant", q.deq, d.grid1(nr*((x.k+7)/8)), 256, tp, uint64(td), uint64(x.fmt),
			x.data, x.scales, x.zeros, x.groups, i64(x.ngroups), i64(x.segRows), i64(r0), i64(nr), i64(x.k)); err != nil {
			return err
		}
		cp, ctype, ldc := x.cp+uint64(r0*cdt.Size()), cdt, x.n
		if !direct {
			cp, ctype, ldc = acc, gpu.F32, nr
		}
		// Row-major c[:, r0:r0+nr] is column-major [nr, m] with ldc n:
		// GemmEx(T, N, nr, m, k, tile, a).
		if err := d.blas.call("cublasGemmEx", d.blas.gemmEx, d.hndl, cublasOpT, cublasOpN,
			uintptr(nr), uintptr(x.m), uintptr(x.k),
			uintptr(unsafe.Pointer(&d.alpha)), uintptr(tp), gemmType(td), uintptr(x.k),
			uintptr(x.ap), gemmType(adt), uintptr(x.k),
			uintptr(unsafe.Pointer(&d.beta)), uintptr(cp), gemmType(ctype), uintptr(ldc),
			cublasCompute32F, ^uintptr(0)); err != nil {
			return err
		}
		if !direct {
			bp := x.bp
			if bp != 0 {
				bp += uint64(r0 * x.bias.DType().Size())
			}
			if err := d.launch("qEpilogue", q.epi, d.grid1(x.m*nr), 256,
				x.cp+uint64(r0*cdt.Size()), uint64(cdt), i64(x.n), acc, 0, 0, bp, dt(x.bias), i64(x.m), i64(nr)); err != nil {
				return err
			}
		}
	}
	return nil
}

// QuantRounding reports what QMatMul of m rows of a (dtype adt) by w, with
// a bias or not, rounds beyond the dequantized weight
// (gputest.QuantRounder): the lt path rounds a to E4M3 exactly as qActFP8
// (actRows 1: a scale per row) or qAbsmax and qActFP8T (actRows > 1: one
// scale per band of that many rows) do, the tile path the dequantized
// weight to a's dtype when that is bf16 or f16; gemv rounds neither. It
// downloads w's scales (once per tensor), so it is for tests.
func (d *Device) QuantRounding(m int, adt gpu.DType, w *gpu.QuantWeight, hasBias bool) (actRows int, weight bool) {
	if w == nil || m <= 0 {
		return 0, false
	}
	runs, err := d.fp8Runs(m, w, hasBias)
	if err != nil {
		return 0, false
	}
	data, err := d.optPtr("QuantRounding", "data", w.Data)
	if err != nil {
		return 0, false
	}
	gs := 0
	if w.Format == gpu.QuantInt4 {
		if gs, err = d.mmaGroups(w, adt, data); err != nil {
			return 0, false
		}
	}
	if err := d.enter(); err != nil {
		return 0, false
	}
	defer d.leave()
	q := quantOf(d)
	if q.init(d) != nil {
		return 0, false
	}
	x := qcall{m: m, n: w.N, k: w.K, runs: runs, scaled: runs != nil && q.force != quantLtRow}
	band := min(m, d.ltBand(w.N, w.K))
	switch d.quantPath(q, m, w, gs, data, x.ltKeyOf(band, 0, adt)) {
	case quantLt, quantLtRow:
		if x.scaled {
			return band, false
		}
		return 1, false
	case quantTile:
		return 0, adt != gpu.F32
	}
	return 0, false
}
