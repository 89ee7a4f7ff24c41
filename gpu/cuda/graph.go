package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
)

// CUDA graphs (gpu.Grapher): the stream is put in capture mode, the ops
// enqueue their kernels and cuBLAS calls as usual, and what was recorded is
// instantiated once and replayed with cuGraphLaunch.
//
// Ops that need temporaries (MatMul's f32 scratch, attentionSplit's
// partial states) take them from scratch: a stream-ordered allocation
// freed after the op outside a capture, and a piece of the graph's own
// arena during one, since an allocation recorded in the graph would need
// the graph's memory pool and a free recorded after it. The arena's size
// is known only once the ops have asked: Capture records once with the
// arena it has, and when the ops asked for more, discards that recording,
// allocates what they asked for and records again.

var _ gpu.Grapher = (*Device)(nil)

// blasWorkspace is the cuBLAS workspace set on the handle at New (the
// size cuBLAS's documentation recommends for Hopper): with a workspace of
// its own, cuBLAS allocates nothing during a capture, and eager and
// captured GEMMs choose their algorithms with the same workspace.
const blasWorkspace = 32 << 20

// capture is the state of a Capture in progress: the graph's scratch
// arena, the bytes of it the ops hold now (used, in live pieces) and the
// most they held at once (peak). Every op gives its scratch back before it
// returns, and a graph captured from one stream runs its nodes one after
// another, so each op's scratch starts again at the arena's base: the
// arena is the largest op's scratch, not their sum.
type capture struct {
	base             uintptr
	size, used, peak int
	live             int
}

// setWorkspace gives the cuBLAS handle its workspace; for open.
func (d *Device) setWorkspace() error {
	p, err := d.malloc(blasWorkspace)
	if err != nil {
		return err
	}
	d.workspace = p
	return d.blas.call("cublasSetWorkspace_v2", d.blas.setWorkspace, d.hndl, p, blasWorkspace)
}

// scratch returns n bytes of device memory for an op's temporaries, to be
// given back with freeScratch once the op's kernels are enqueued. During a
// capture it is a 256-byte aligned piece of the graph's arena; past the
// arena's end the address is not to be used, and Capture discards that
// recording and records again with a larger arena. The caller holds enter.
func (d *Device) scratch(n int) (uintptr, error) {
	c := d.capturing
	if c == nil {
		return d.malloc(n)
	}
	off := (c.used + 255) &^ 255
	c.used = off + n
	c.peak = max(c.peak, c.used)
	c.live++
	return c.base + uintptr(off), nil
}

// freeScratch gives back what scratch returned: a stream-ordered free
// outside a capture; during one, the piece becomes free for the next op
// (the graph's arena is freed with the graph).
func (d *Device) freeScratch(p uintptr) error {
	if c := d.capturing; c != nil {
		if c.live--; c.live == 0 {
			c.used = 0
		}
		return nil
	}
	return d.free(p)
}

// Capture records the work record enqueues as a CUDA graph
// (cuStreamBeginCapture_v2 … cuStreamEndCapture, cuGraphInstantiateWithFlags).
// record runs twice when its ops ask for scratch the graph does not have
// yet.
func (d *Device) Capture(record func() error) (gpu.Graph, error) {
	if record == nil {
		return nil, fmt.Errorf("cuda: Capture: record is nil: %w", gpu.ErrArg)
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	if d.capturing != nil {
		return nil, fmt.Errorf("cuda: Capture inside a Capture: %w", gpu.ErrArg)
	}
	g := &graph{dev: d}
	for try := 0; ; try++ {
		c := &capture{base: g.arena, size: g.size}
		if c.base == 0 {
			// No arena yet: the ops get addresses from the cuBLAS
			// workspace on, not null and aligned (cuBLAS rejects a null
			// matrix); the recording that used them is never launched.
			c.base = d.workspace
		}
		cg, err := d.record(c, record)
		if err != nil {
			return nil, errors.Join(err, g.free())
		}
		if c.peak <= c.size {
			err := d.drv.call("cuGraphInstantiateWithFlags", d.drv.cuGraphInstantiateWithFlags, uintptr(unsafe.Pointer(&g.exec)), cg, 0)
			err = errors.Join(err, d.drv.call("cuGraphDestroy", d.drv.cuGraphDestroy, cg))
			if err != nil {
				return nil, errors.Join(err, g.free())
			}
			return g, nil
		}
		err = d.drv.call("cuGraphDestroy", d.drv.cuGraphDestroy, cg)
		if err == nil && try > 0 {
			err = fmt.Errorf("cuda: Capture: the ops asked for %d bytes of scratch after %d: record must enqueue the same work each time: %w", c.peak, c.size, gpu.ErrArg)
		}
		if err == nil && g.arena != 0 {
			err = d.free(g.arena)
			g.arena, g.size = 0, 0
		}
		if err == nil {
			g.arena, err = d.malloc(c.peak)
		}
		if err != nil {
			return nil, errors.Join(err, g.free())
		}
		g.size = c.peak
	}
}

// record runs one stream capture of rec with c as the scratch arena and
// returns the captured CUgraph. The caller holds enter, which keeps the
// goroutine on the capturing thread.
func (d *Device) record(c *capture, rec func() error) (uintptr, error) {
	if err := d.drv.call("cuStreamBeginCapture_v2", d.drv.cuStreamBeginCapture, d.stream, captureThreadLocal); err != nil {
		return 0, err
	}
	d.capturing = c
	rerr := rec()
	d.capturing = nil
	var cg uintptr
	err := d.drv.call("cuStreamEndCapture", d.drv.cuStreamEndCapture, d.stream, uintptr(unsafe.Pointer(&cg)))
	if rerr != nil || err != nil {
		if cg != 0 {
			err = errors.Join(err, d.drv.call("cuGraphDestroy", d.drv.cuGraphDestroy, cg))
		}
		if rerr != nil {
			return 0, fmt.Errorf("cuda: Capture: %w", errors.Join(rerr, err))
		}
		return 0, err
	}
	runtime.KeepAlive(c)
	return cg, nil
}

// graph is an instantiated CUDA graph and its scratch arena.
type graph struct {
	dev         *Device
	exec, arena uintptr
	size        int
	freed       bool
}

// Launch enqueues the graph on the device's stream (cuGraphLaunch).
func (g *graph) Launch() error {
	if g.freed {
		return fmt.Errorf("cuda: Graph.Launch: %w", gpu.ErrFreed)
	}
	d := g.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuGraphLaunch", d.drv.cuGraphLaunch, g.exec, d.stream)
}

// Free destroys the executable graph (launches in flight finish first) and
// frees its arena on the stream, after them.
func (g *graph) Free() error {
	if g.freed {
		return nil
	}
	d := g.dev
	if d.closed {
		g.freed = true
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return g.free()
}

// free is Free with enter held.
func (g *graph) free() error {
	g.freed = true
	d := g.dev
	var err error
	if g.exec != 0 {
		err = d.drv.call("cuGraphExecDestroy", d.drv.cuGraphExecDestroy, g.exec)
		g.exec = 0
	}
	if g.arena != 0 {
		err = errors.Join(err, d.free(g.arena))
		g.arena, g.size = 0, 0
	}
	return err
}
