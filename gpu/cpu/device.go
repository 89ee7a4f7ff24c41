package cpu

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
)

func init() {
	gpu.Register("cpu", func() (gpu.Device, error) { return New(DefaultConfig()) })
}

// Config configures a Device.
type Config struct {
	// Threads is how many goroutines one op may use, the caller's included;
	// 0 means runtime.GOMAXPROCS(0) when New is called.
	Threads int
}

// DefaultConfig uses every processor Go may run on.
func DefaultConfig() Config { return Config{} }

// Validate reports a Config New would refuse.
func (c Config) Validate() error {
	if c.Threads < 0 {
		return fmt.Errorf("cpu: Config.Threads (%d) must not be negative: %w", c.Threads, gpu.ErrArg)
	}
	return nil
}

// Device is the pure-Go backend: tensors live in Go memory and ops run on
// the calling goroutine, helped by Threads−1 worker goroutines that the
// Device owns until Close. Since every op finishes before it returns, Sync
// has nothing to wait for; the threading rule of gpu.Device still holds.
type Device struct {
	threads int
	live    atomic.Int64
	pool    pool
	scratch []*scratch // one per worker: the caller is 0
	closed  bool

	// Op state reused from call to call so that ops allocate nothing; a
	// Device runs one op at a time.
	gemm    gemmTask
	lora    loraTask // LoRA's segments (lora.go)
	loraIdx []gpu.LoRASegment
	qw      qweight // QMatMul's weight, read by gemm's workers
	packGen uint64  // identifies one MatMul call to the workers' panel caches
	embed   embedTask
	rms     rmsTask
	rope    ropeTask
	silu    siluTask
	add     addTask
	softmax softmaxTask
	argmax  argmaxTask
	kv      writeKVTask
	attn    attnTask
	sample  sampleTask
	host    scratch // caller-side conversions (bias, weights) shared by workers
}

var (
	_ gpu.Device = (*Device)(nil)
	_ gpu.Ops    = (*Device)(nil)
)

// New returns a Device; Close it to stop its workers.
func New(cfg Config) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.Threads
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	d := &Device{threads: n, scratch: make([]*scratch, n)}
	for i := range d.scratch {
		d.scratch[i] = new(scratch)
	}
	d.pool.start(n)
	return d, nil
}

// Name returns "cpu".
func (d *Device) Name() string { return "cpu" }

// Threads is the number of goroutines an op may use.
func (d *Device) Threads() int { return d.threads }

// Ops returns d itself.
func (d *Device) Ops() gpu.Ops { return d }

// LiveBytes is the size of the tensors allocated and not freed.
func (d *Device) LiveBytes() int64 { return d.live.Load() }

// Sync returns nil once the device is open: every op has already finished.
func (d *Device) Sync() error {
	if d.closed {
		return gpu.ErrClosed
	}
	return nil
}

// Close stops the worker goroutines. Tensors still allocated stay counted
// in LiveBytes.
func (d *Device) Close() error {
	if d.closed {
		return gpu.ErrClosed
	}
	d.closed = true
	d.pool.stop()
	return nil
}

// buffer is Go memory holding tensors; its backing is uint64s so that every
// element type is aligned.
type buffer struct {
	dev      *Device
	b        []byte
	released bool
}

func (b *buffer) Size() int { return len(b.b) }

func (b *buffer) Release() {
	if b.released {
		return
	}
	b.released = true
	b.dev.live.Add(-int64(len(b.b)))
	b.b = b.b[:0:0] // keep Size honest for errors; drop the memory
}

// Alloc returns a zeroed tensor (callers must not rely on the zeros: other
// backends leave memory uninitialized).
func (d *Device) Alloc(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	if d.closed {
		return nil, gpu.ErrClosed
	}
	n, err := gpu.CheckShape(dt, shape...)
	if err != nil {
		return nil, err
	}
	buf := &buffer{dev: d}
	if n > 0 {
		words := make([]uint64, (n+7)/8)
		buf.b = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
	}
	t, err := gpu.NewTensor(d, buf, dt, shape...)
	if err != nil {
		return nil, err
	}
	d.live.Add(int64(n))
	return t, nil
}

// bytes returns t's elements as bytes after checking t is d's and alive.
func (d *Device) bytes(op, name string, t *gpu.Tensor) ([]byte, error) {
	if d.closed {
		return nil, gpu.ErrClosed
	}
	if t == nil {
		return nil, fmt.Errorf("gpu: %s: %s is nil: %w", op, name, gpu.ErrShape)
	}
	b, ok := t.Buffer().(*buffer)
	if !ok || b.dev != d {
		return nil, fmt.Errorf("gpu: %s: %s %s: %w", op, name, t, gpu.ErrDevice)
	}
	if b.released {
		return nil, fmt.Errorf("gpu: %s: %s %s: %w", op, name, t, gpu.ErrFreed)
	}
	return b.b[t.Offset() : t.Offset()+t.Bytes()], nil
}

// span is a tensor's elements as a Go slice of its dtype; the others are nil.
type span struct {
	dt  gpu.DType
	f32 []float32
	u16 []uint16 // BF16 or F16 bits
	i32 []int32
	u8  []byte // F8E4M3 bits
}

func (d *Device) span(op, name string, t *gpu.Tensor) (span, error) {
	b, err := d.bytes(op, name, t)
	if err != nil {
		return span{}, err
	}
	s := span{dt: t.DType()}
	if len(b) == 0 {
		return s, nil
	}
	p := unsafe.Pointer(&b[0])
	switch s.dt {
	case gpu.F32:
		s.f32 = unsafe.Slice((*float32)(p), len(b)/4)
	case gpu.I32:
		s.i32 = unsafe.Slice((*int32)(p), len(b)/4)
	case gpu.F8E4M3:
		s.u8 = b
	default:
		s.u16 = unsafe.Slice((*uint16)(p), len(b)/2)
	}
	return s, nil
}

// optSpan is span for an optional tensor: nil gives the zero span.
func (d *Device) optSpan(op, name string, t *gpu.Tensor) (span, error) {
	if t == nil {
		return span{}, nil
	}
	return d.span(op, name, t)
}

// load returns elements [off, off+n) as float32s: a subslice of s for F32,
// else converted into buf (len ≥ n).
func (s span) load(buf []float32, off, n int) []float32 {
	switch s.dt {
	case gpu.F32:
		return s.f32[off : off+n : off+n]
	case gpu.BF16:
		src := s.u16[off : off+n]
		dst := buf[:len(src)]
		for i, h := range src {
			dst[i] = gpu.BFloat16(h).Float32()
		}
		return dst
	case gpu.F8E4M3:
		lut := gpu.Float8E4M3Table()
		src := s.u8[off : off+n]
		dst := buf[:len(src)]
		for i, b := range src {
			dst[i] = lut[b]
		}
		return dst
	default:
		src := s.u16[off : off+n]
		dst := buf[:len(src)]
		for i, h := range src {
			dst[i] = gpu.Float16(h).Float32()
		}
		return dst
	}
}

// store writes src into elements [off, off+len(src)), rounding to s's dtype.
func (s span) store(off int, src []float32) {
	switch s.dt {
	case gpu.F32:
		copy(s.f32[off:off+len(src)], src)
	case gpu.BF16:
		dst := s.u16[off : off+len(src)]
		src = src[:len(dst)]
		for i, f := range src {
			dst[i] = uint16(gpu.ToBFloat16(f))
		}
	case gpu.F8E4M3: // an FP8 KV cache: k_scale = v_scale = 1, as vLLM without checkpoint scales
		dst := s.u8[off : off+len(src)]
		src = src[:len(dst)]
		for i, f := range src {
			dst[i] = byte(gpu.ToFloat8E4M3(f))
		}
	default:
		dst := s.u16[off : off+len(src)]
		src = src[:len(dst)]
		for i, f := range src {
			dst[i] = uint16(gpu.ToFloat16(f))
		}
	}
}

// set stores one element.
func (s span) set(i int, f float32) {
	switch s.dt {
	case gpu.F32:
		s.f32[i] = f
	case gpu.BF16:
		s.u16[i] = uint16(gpu.ToBFloat16(f))
	default:
		s.u16[i] = uint16(gpu.ToFloat16(f))
	}
}

// Upload copies src into dst.
func (d *Device) Upload(dst *gpu.Tensor, src []byte) error {
	b, err := d.bytes("Upload", "dst", dst)
	if err != nil {
		return err
	}
	if len(src) != len(b) {
		return fmt.Errorf("gpu: Upload: %d bytes into %s of %d: %w", len(src), dst, len(b), gpu.ErrShape)
	}
	copy(b, src)
	return nil
}

// Download copies src into dst.
func (d *Device) Download(dst []byte, src *gpu.Tensor) error {
	b, err := d.bytes("Download", "src", src)
	if err != nil {
		return err
	}
	if len(dst) != len(b) {
		return fmt.Errorf("gpu: Download: %s of %d bytes into %d: %w", src, len(b), len(dst), gpu.ErrShape)
	}
	copy(dst, b)
	return nil
}

// Copy copies src into dst.
func (d *Device) Copy(dst, src *gpu.Tensor) error {
	db, err := d.bytes("Copy", "dst", dst)
	if err != nil {
		return err
	}
	sb, err := d.bytes("Copy", "src", src)
	if err != nil {
		return err
	}
	if dst.DType() != src.DType() {
		return fmt.Errorf("gpu: Copy: %s into %s: %w", src, dst, gpu.ErrDType)
	}
	if len(db) != len(sb) {
		return fmt.Errorf("gpu: Copy: %s into %s: lengths differ: %w", src, dst, gpu.ErrShape)
	}
	copy(db, sb)
	return nil
}
