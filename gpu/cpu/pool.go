package cpu

import (
	"sync"
	"sync/atomic"
)

// task is work split into items [0, n): run does items [lo, hi) as worker w,
// whose scratch it may use. Tasks are fields of the Device, passed as
// pointers, so dispatching one allocates nothing.
type task interface {
	run(w, lo, hi int)
}

// pool runs a task on the calling goroutine and threads−1 workers, which
// take chunks of items from a shared counter, so that a worker that wakes
// late or runs on a busy core simply takes fewer chunks. One task runs at a time, as the
// Device runs one op at a time.
type pool struct {
	threads int
	jobs    chan struct{}
	running sync.WaitGroup // helpers in the current dispatch
	workers sync.WaitGroup // worker goroutines, until stop

	t        task
	n, grain int
	next     atomic.Int64
}

func (p *pool) start(threads int) {
	p.threads = threads
	p.jobs = make(chan struct{}, threads)
	for w := 1; w < threads; w++ {
		p.workers.Add(1)
		go p.worker(w)
	}
}

func (p *pool) stop() {
	close(p.jobs)
	p.workers.Wait()
}

func (p *pool) worker(w int) {
	defer p.workers.Done()
	for range p.jobs {
		p.drain(w)
		p.running.Done()
	}
}

// parallel runs t over n items in chunks of grain and returns when all are
// done.
func (p *pool) parallel(t task, n, grain int) {
	grain = max(grain, 1)
	helpers := min(p.threads-1, (n+grain-1)/grain-1)
	if helpers <= 0 {
		if n > 0 {
			t.run(0, 0, n)
		}
		return
	}
	p.t, p.n, p.grain = t, n, grain
	p.next.Store(0)
	p.running.Add(helpers)
	for range helpers {
		p.jobs <- struct{}{}
	}
	p.drain(0)
	p.running.Wait()
	p.t = nil
}

func (p *pool) drain(w int) {
	for {
		lo := int(p.next.Add(int64(p.grain))) - p.grain
		if lo >= p.n {
			return
		}
		p.t.run(w, lo, min(lo+p.grain, p.n))
	}
}

// scratch is one worker's reusable memory.
type scratch struct {
	bufs [6][]float32

	// Packed GEMM panels and which block of which call they hold.
	ap, bp         []float32
	aGen, bGen     uint64
	aBlock, bBlock int
}

// buf returns scratch buffer i with length n, growing it only when needed.
func (s *scratch) buf(i, n int) []float32 {
	if cap(s.bufs[i]) < n {
		s.bufs[i] = make([]float32, n)
	}
	return s.bufs[i][:n]
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// split picks a grain for n items that each cost about cost scalar
// operations: serial below a threshold where waking workers costs more than
// it saves, else chunks of at least that threshold.
func split(n, cost int) int {
	const minWork = 1 << 15
	if cost <= 0 {
		cost = 1
	}
	if n*cost < 2*minWork {
		return n
	}
	return max(1, minWork/cost)
}
