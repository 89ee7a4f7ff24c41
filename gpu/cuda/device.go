package cuda

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/kernels"
)

func init() {
	gpu.Register("cuda", func() (gpu.Device, error) { return New(DefaultConfig()) })
}

// Config configures a Device.
type Config struct {
	// Ordinal is the CUDA device number, 0 for the first GPU.
	Ordinal int
	// PTXFile, when not empty, is a PTX file loaded instead of the embedded
	// kernels: for trying kernels built on the GPU machine before they are
	// committed. The environment variable SLUICE_CUDA_PTX sets it too.
	PTXFile string
	// Attn is the attention kernel choice; AttnAuto, the zero value, is
	// the one for real work (the others are for tests).
	Attn AttnKernels
	// Splits, when positive, is the number of splits attentionSplit takes
	// for every decode batch, capped at one tile of keys per split (tests
	// and A/B runs); 0 lets Attention choose.
	Splits int
	// Precision is how f32 GEMMs compute (trainattn.go); PrecisionF32,
	// the zero value, is exact f32. Training sets its own (SetPrecision).
	Precision Precision
}

// DefaultConfig opens the first GPU with the embedded kernels (or those of
// $SLUICE_CUDA_PTX).
func DefaultConfig() Config { return Config{PTXFile: os.Getenv("SLUICE_CUDA_PTX")} }

// Validate reports a Config New would refuse.
func (c Config) Validate() error {
	if c.Ordinal < 0 {
		return fmt.Errorf("cuda: Config.Ordinal (%d) must not be negative: %w", c.Ordinal, gpu.ErrArg)
	}
	if c.Attn > AttnSplitMost {
		return fmt.Errorf("cuda: Config.Attn (%s) is not a choice: want AttnAuto, AttnPrefill or AttnSplitMost: %w", c.Attn, gpu.ErrArg)
	}
	if c.Splits < 0 {
		return fmt.Errorf("cuda: Config.Splits (%d) must not be negative: %w", c.Splits, gpu.ErrArg)
	}
	if c.Precision < PrecisionF32 || c.Precision > PrecisionBF16 {
		return fmt.Errorf("cuda: Config.Precision (%s) is not a choice: want PrecisionF32, PrecisionTF32 or PrecisionBF16: %w", c.Precision, gpu.ErrArg)
	}
	return nil
}

// Device is one CUDA GPU: its primary context, one stream on which every
// Upload, Copy, Free and op is enqueued in call order, a cuBLAS handle
// bound to that stream, and the kernels of gpu/kernels. Memory comes from
// the device's stream-ordered pool (cuMemAllocAsync/cuMemFreeAsync), so a
// Free is ordered after the work enqueued before it without a host wait.
//
// The threading rule of gpu.Device holds; each call locks its goroutine to
// its OS thread while it makes the context current there.
type Device struct {
	drv  *driver
	blas *cublas

	dev                          int32
	ctx, stream, mod, hndl, pool uintptr
	major, minor, sms            int
	name                         string

	attn   AttnKernels             // Config.Attn
	splits int                     // Config.Splits
	prec   Precision               // Config.Precision, or SetPrecision's
	bf16   map[bf16Key]*gpu.Tensor // CacheBF16's copies (bf16.go)

	fn     kernelFuncs
	live   atomic.Int64
	closed bool
	fault  error // first failure of an asynchronous call (a Free), for Sync

	// Memory accounting for gpu.MemInfo: the size of each block malloc
	// returned and free has not yet released (tensors, MatMul scratch, rope
	// tables), their sum and its peak since ResetPeak.
	sizes      map[uintptr]int
	held, peak atomic.Int64

	ropes map[ropeKey]uintptr // device inv_freq tables, uploaded once
	lora  loraState           // LoRA kernels and launch arguments (lora.go)

	workspace uintptr  // cuBLAS's workspace (graph.go)
	capturing *capture // the Capture in progress, nil outside one (graph.go)

	// Launch arguments: argp[i] points at argv[i]; the Device lives on the
	// heap, so the addresses are stable for the driver.
	argv        [24]uint64
	argp        [24]uintptr
	alpha, beta float32
	scalar      uint64
}

var (
	_ gpu.Device  = (*Device)(nil)
	_ gpu.Ops     = (*Device)(nil)
	_ gpu.MemInfo = (*Device)(nil)
)

type kernelFuncs struct {
	convert, epilogue, embed, rmsnorm, rope, siluMul, add, softmax, argmax, writeKV, attention, attentionGQA, attentionPrefill,
	attentionSplit, attentionSplit128, attentionMerge, attentionPrefillMMA, sample uintptr
	bwd backwardFuncs // backward.go
	opt optimFuncs    // optim.go
}

// kernelFunc is one kernel of gpu/kernels and where its handle goes.
type kernelFunc struct {
	p    *uintptr
	name string
}

// lookup finds each of fs in the loaded module, stopping at the first the
// PTX lacks, whose name it returns with the error.
func (d *Device) lookup(fs []kernelFunc) (missing string, err error) {
	for _, f := range fs {
		cname := cString(f.name)
		err := d.drv.call("cuModuleGetFunction("+f.name+")", d.drv.cuModuleGetFunction, uintptr(unsafe.Pointer(f.p)), d.mod, uintptr(unsafe.Pointer(&cname[0])))
		runtime.KeepAlive(cname)
		if err != nil {
			return f.name, err
		}
	}
	return "", nil
}

// table lists the kernels New looks up in the module.
func (f *kernelFuncs) table() []kernelFunc {
	t := []kernelFunc{
		{&f.convert, "convert"}, {&f.epilogue, "epilogue"}, {&f.embed, "embed"}, {&f.rmsnorm, "rmsnorm"},
		{&f.rope, "rope"}, {&f.siluMul, "siluMul"}, {&f.add, "add"}, {&f.softmax, "softmax"},
		{&f.argmax, "argmax"}, {&f.writeKV, "writeKV"}, {&f.attention, "attention"},
		{&f.attentionGQA, "attentionGQA"}, {&f.attentionPrefill, "attentionPrefill"},
		{&f.attentionSplit, "attentionSplit"}, {&f.attentionSplit128, "attentionSplit128"}, {&f.attentionMerge, "attentionMerge"},
		{&f.attentionPrefillMMA, "attentionPrefillMMA"}, {&f.sample, "sample"},
	}
	return append(append(t, f.bwd.table()...), f.opt.table()...)
}

// New opens the GPU cfg names. Without a driver, a device or cuBLAS the
// error wraps ErrUnavailable.
func New(cfg Config) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	d := &Device{drv: drv, ropes: map[ropeKey]uintptr{}, sizes: map[uintptr]int{}, alpha: 1, attn: cfg.Attn, splits: cfg.Splits, prec: cfg.Precision}
	for i := range d.argp {
		d.argp[i] = uintptr(unsafe.Pointer(&d.argv[i]))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.open(cfg); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

func (d *Device) open(cfg Config) error {
	drv := d.drv
	if err := drv.call("cuInit", drv.cuInit, 0); err != nil {
		return err
	}
	if err := drv.call("cuDeviceGet", drv.cuDeviceGet, uintptr(unsafe.Pointer(&d.dev)), uintptr(cfg.Ordinal)); err != nil {
		return err
	}
	for _, a := range []struct {
		p    *int
		attr uintptr
	}{{&d.major, attrMajor}, {&d.minor, attrMinor}, {&d.sms, attrMultiprocessors}} {
		var v int32
		if err := drv.call("cuDeviceGetAttribute", drv.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&v)), a.attr, uintptr(d.dev)); err != nil {
			return err
		}
		*a.p = int(v)
	}
	var name [256]byte
	if err := drv.call("cuDeviceGetName", drv.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(d.dev)); err != nil {
		return err
	}
	d.name = goString(&name[0])
	ptx := kernels.PTX(d.major, d.minor)
	if cfg.PTXFile != "" {
		b, err := os.ReadFile(cfg.PTXFile)
		if err != nil {
			return fmt.Errorf("cuda: Config.PTXFile: %w", err)
		}
		ptx = append(b, 0)
	}
	if ptx == nil {
		return fmt.Errorf("cuda: %s (sm_%d%d): gpu/kernels holds no PTX for it; run make kernels on the GPU machine and commit the PTX: %w",
			d.name, d.major, d.minor, gpu.ErrArg)
	}
	if err := drv.call("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&d.ctx)), uintptr(d.dev)); err != nil {
		return err
	}
	if err := drv.call("cuCtxSetCurrent", drv.cuCtxSetCurrent, d.ctx); err != nil {
		return err
	}
	const nonBlocking = 1
	if err := drv.call("cuStreamCreate", drv.cuStreamCreate, uintptr(unsafe.Pointer(&d.stream)), nonBlocking); err != nil {
		return err
	}
	// Keep freed memory in the pool rather than returning it to the driver
	// at each synchronization: allocation then costs no system call.
	if err := drv.call("cuDeviceGetDefaultMemPool", drv.cuDeviceGetDefaultMemPool, uintptr(unsafe.Pointer(&d.pool)), uintptr(d.dev)); err != nil {
		return err
	}
	d.scalar = math.MaxUint64
	if err := drv.call("cuMemPoolSetAttribute", drv.cuMemPoolSetAttribute, d.pool, memPoolReleaseThr, uintptr(unsafe.Pointer(&d.scalar))); err != nil {
		return err
	}
	if err := drv.call("cuModuleLoadData", drv.cuModuleLoadData, uintptr(unsafe.Pointer(&d.mod)), uintptr(unsafe.Pointer(&ptx[0]))); err != nil {
		return err
	}
	runtime.KeepAlive(ptx)
	if _, err := d.lookup(d.fn.table()); err != nil {
		return err
	}
	blas, err := loadCublas()
	if err != nil {
		return err
	}
	d.blas = blas
	if err := blas.call("cublasCreate_v2", blas.create, uintptr(unsafe.Pointer(&d.hndl))); err != nil {
		return err
	}
	if err := blas.call("cublasSetStream_v2", blas.setStream, d.hndl, d.stream); err != nil {
		return err
	}
	return d.setWorkspace()
}

// release frees what open acquired, in reverse; for New's failures and
// Close. It returns the first error.
func (d *Device) release() error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	drv := d.drv
	for _, p := range d.ropes {
		keep(drv.call("cuMemFreeAsync", drv.cuMemFreeAsync, p, d.stream))
	}
	clear(d.ropes)
	if d.workspace != 0 {
		keep(drv.call("cuMemFreeAsync", drv.cuMemFreeAsync, d.workspace, d.stream))
		d.workspace = 0
	}
	if d.stream != 0 {
		keep(drv.call("cuStreamSynchronize", drv.cuStreamSynchronize, d.stream))
	}
	if d.hndl != 0 {
		keep(d.blas.call("cublasDestroy_v2", d.blas.destroy, d.hndl))
		d.hndl = 0
	}
	if d.mod != 0 {
		keep(drv.call("cuModuleUnload", drv.cuModuleUnload, d.mod))
		d.mod = 0
	}
	if d.stream != 0 {
		keep(drv.call("cuStreamDestroy_v2", drv.cuStreamDestroy, d.stream))
		d.stream = 0
	}
	if d.ctx != 0 {
		keep(drv.call("cuDevicePrimaryCtxRelease_v2", drv.cuDevicePrimaryCtxRelease, uintptr(d.dev)))
		d.ctx = 0
	}
	return first
}

// enter locks the goroutine to its thread and makes d's context current
// there; every call that reaches the driver runs between enter and leave.
func (d *Device) enter() error {
	if d.closed {
		return gpu.ErrClosed
	}
	runtime.LockOSThread()
	if err := d.drv.call("cuCtxSetCurrent", d.drv.cuCtxSetCurrent, d.ctx); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	return nil
}

func (d *Device) leave() { runtime.UnlockOSThread() }

// Name returns "cuda".
func (d *Device) Name() string { return "cuda" }

// String describes the GPU: its name, compute capability and multiprocessors.
func (d *Device) String() string {
	return fmt.Sprintf("%s (sm_%d%d, %d SMs)", d.name, d.major, d.minor, d.sms)
}

// Ops returns d itself.
func (d *Device) Ops() gpu.Ops { return d }

// LiveBytes is the size of the tensors allocated and not freed (the
// backend's own tables and scratch are not counted).
func (d *Device) LiveBytes() int64 { return d.live.Load() }

// MemInfo waits for the stream, trims the stream-ordered pool to the
// memory in use (cuMemPoolTrimTo: Open keeps freed memory in the pool, which
// cuMemGetInfo would count as used) and returns cuMemGetInfo_v2's free and
// total bytes.
func (d *Device) MemInfo() (free, total int64, err error) {
	if err := d.enter(); err != nil {
		return 0, 0, err
	}
	defer d.leave()
	if err := d.sync(); err != nil {
		return 0, 0, err
	}
	if err := d.drv.call("cuMemPoolTrimTo", d.drv.cuMemPoolTrimTo, d.pool, 0); err != nil {
		return 0, 0, err
	}
	var f, t uint64 // size_t
	if err := d.drv.call("cuMemGetInfo_v2", d.drv.cuMemGetInfo, uintptr(unsafe.Pointer(&f)), uintptr(unsafe.Pointer(&t))); err != nil {
		return 0, 0, err
	}
	return int64(f), int64(t), nil
}

// PeakBytes is the most device memory d's allocations held at once since
// ResetPeak or New: tensors, MatMul scratch and rope tables.
func (d *Device) PeakBytes() int64 { return d.peak.Load() }

// ResetPeak restarts PeakBytes from the memory held now.
func (d *Device) ResetPeak() { d.peak.Store(d.held.Load()) }

// Sync waits for the stream and returns the first fault of the work
// enqueued so far.
func (d *Device) Sync() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.sync()
}

func (d *Device) sync() error {
	if err := d.drv.call("cuStreamSynchronize", d.drv.cuStreamSynchronize, d.stream); err != nil {
		return err
	}
	if err := d.fault; err != nil {
		d.fault = nil
		return err
	}
	return nil
}

// Close waits for the stream and releases the context, stream, module and
// cuBLAS handle.
func (d *Device) Close() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	err := d.sync()
	if rerr := d.release(); err == nil {
		err = rerr
	}
	d.closed = true
	return err
}

// buffer is one stream-ordered device allocation.
type buffer struct {
	dev      *Device
	ptr      uintptr
	size     int
	released bool
}

func (b *buffer) Size() int { return b.size }

// Release enqueues the free on the stream; a failure surfaces at the next
// Sync or Download.
func (b *buffer) Release() {
	if b.released {
		return
	}
	b.released = true
	d := b.dev
	d.live.Add(-int64(b.size))
	if b.ptr == 0 || d.closed {
		return
	}
	if err := d.enter(); err != nil {
		return
	}
	defer d.leave()
	if err := d.free(b.ptr); err != nil && d.fault == nil {
		d.fault = err
	}
}

func (d *Device) malloc(n int) (uintptr, error) {
	var p uintptr
	if err := d.drv.call("cuMemAllocAsync", d.drv.cuMemAllocAsync, uintptr(unsafe.Pointer(&p)), uintptr(n), d.stream); err != nil {
		return 0, err
	}
	d.sizes[p] = n
	h := d.held.Add(int64(n))
	for {
		pk := d.peak.Load()
		if h <= pk || d.peak.CompareAndSwap(pk, h) {
			break
		}
	}
	return p, nil
}

func (d *Device) free(p uintptr) error {
	if n, ok := d.sizes[p]; ok {
		delete(d.sizes, p)
		d.held.Add(-int64(n))
	}
	return d.drv.call("cuMemFreeAsync", d.drv.cuMemFreeAsync, p, d.stream)
}

// Alloc returns an uninitialized tensor in device memory.
func (d *Device) Alloc(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	n, err := gpu.CheckShape(dt, shape...)
	if err != nil {
		return nil, err
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	buf := &buffer{dev: d, size: n}
	if n > 0 {
		if buf.ptr, err = d.malloc(n); err != nil {
			return nil, fmt.Errorf("cuda: Alloc %v%v: %w", dt, shape, err)
		}
	}
	t, err := gpu.NewTensor(d, buf, dt, shape...)
	if err != nil {
		d.free(buf.ptr)
		return nil, err
	}
	d.live.Add(int64(n))
	return t, nil
}

// ptr returns t's device address after checking that t is d's and alive.
func (d *Device) ptr(op, name string, t *gpu.Tensor) (uint64, error) {
	if d.closed {
		return 0, gpu.ErrClosed
	}
	if t == nil {
		return 0, fmt.Errorf("gpu: %s: %s is nil: %w", op, name, gpu.ErrShape)
	}
	b, ok := t.Buffer().(*buffer)
	if !ok || b.dev != d {
		return 0, fmt.Errorf("gpu: %s: %s %s: %w", op, name, t, gpu.ErrDevice)
	}
	if b.released {
		return 0, fmt.Errorf("gpu: %s: %s %s: %w", op, name, t, gpu.ErrFreed)
	}
	return uint64(b.ptr) + uint64(t.Offset()), nil
}

// optPtr is ptr for an optional tensor: nil gives 0.
func (d *Device) optPtr(op, name string, t *gpu.Tensor) (uint64, error) {
	if t == nil {
		return 0, nil
	}
	return d.ptr(op, name, t)
}

// Upload copies src into dst; the driver stages pageable memory before the
// call returns, so src may be reused at once.
func (d *Device) Upload(dst *gpu.Tensor, src []byte) error {
	p, err := d.ptr("Upload", "dst", dst)
	if err != nil {
		return err
	}
	if len(src) != dst.Bytes() {
		return fmt.Errorf("gpu: Upload: %d bytes into %s of %d: %w", len(src), dst, dst.Bytes(), gpu.ErrShape)
	}
	if len(src) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	err = d.drv.call("cuMemcpyHtoDAsync_v2", d.drv.cuMemcpyHtoDAsync, uintptr(p), uintptr(unsafe.Pointer(&src[0])), uintptr(len(src)), d.stream)
	runtime.KeepAlive(src)
	return err
}

// Download waits for the work before it and copies src into dst.
func (d *Device) Download(dst []byte, src *gpu.Tensor) error {
	p, err := d.ptr("Download", "src", src)
	if err != nil {
		return err
	}
	if len(dst) != src.Bytes() {
		return fmt.Errorf("gpu: Download: %s of %d bytes into %d: %w", src, src.Bytes(), len(dst), gpu.ErrShape)
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if len(dst) > 0 {
		if err := d.drv.call("cuMemcpyDtoHAsync_v2", d.drv.cuMemcpyDtoHAsync, uintptr(unsafe.Pointer(&dst[0])), uintptr(p), uintptr(len(dst)), d.stream); err != nil {
			return err
		}
	}
	err = d.sync()
	runtime.KeepAlive(dst)
	return err
}

// Copy copies src into dst on the stream.
func (d *Device) Copy(dst, src *gpu.Tensor) error {
	dp, err := d.ptr("Copy", "dst", dst)
	if err != nil {
		return err
	}
	sp, err := d.ptr("Copy", "src", src)
	if err != nil {
		return err
	}
	if dst.DType() != src.DType() {
		return fmt.Errorf("gpu: Copy: %s into %s: %w", src, dst, gpu.ErrDType)
	}
	if dst.Bytes() != src.Bytes() {
		return fmt.Errorf("gpu: Copy: %s into %s: lengths differ: %w", src, dst, gpu.ErrShape)
	}
	if dst.Bytes() == 0 || dp == sp {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuMemcpyDtoDAsync_v2", d.drv.cuMemcpyDtoDAsync, uintptr(dp), uintptr(sp), uintptr(dst.Bytes()), d.stream)
}

// launch enqueues kernel fn (named for errors) on the stream with the
// given grid, block size and arguments, each widened to 8 bytes (the driver
// reads as many bytes as the kernel's parameter has: little-endian, the low
// ones). The caller holds enter.
func (d *Device) launch(name string, fn uintptr, grid [3]int, block int, args ...uint64) error {
	return d.launchShared(name, fn, grid, block, 0, args...)
}

// launchShared is launch with smem bytes of dynamic shared memory (at most
// 48 KiB: no kernel raises its limit).
func (d *Device) launchShared(name string, fn uintptr, grid [3]int, block, smem int, args ...uint64) error {
	if len(args) > len(d.argv) {
		return fmt.Errorf("cuda: launch %s: %d arguments: %w", name, len(args), gpu.ErrArg)
	}
	copy(d.argv[:], args)
	r, _, _ := purego.SyscallN(d.drv.cuLaunchKernel, fn,
		uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]), uintptr(block), 1, 1,
		uintptr(smem), d.stream, uintptr(unsafe.Pointer(&d.argp[0])), 0)
	if r != 0 {
		return d.drv.err("cuLaunchKernel("+name+")", cuResult(r))
	}
	return nil
}

// Argument encoders for launch.
func i64(n int) uint64     { return uint64(int64(n)) }
func f32(f float32) uint64 { return uint64(math.Float32bits(f)) }
func dt(t *gpu.Tensor) uint64 {
	if t == nil {
		return 0
	}
	return uint64(t.DType())
}
