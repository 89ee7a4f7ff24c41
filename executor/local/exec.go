package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
	"github.com/sluicehq/sluice/storage"
)

// block is a batch in flight between operators, with the bytes it holds of
// the memory budget.
type block struct {
	rec  arrow.RecordBatch
	acct int64
}

// op is one physical operator. run sends its output to out and returns when
// it has sent everything or failed; the caller closes out. An operator that
// stops reading its input early must let the input's goroutines end (see
// limitOp) and leave no record unreleased.
type op interface {
	run(ctx context.Context, x *exec, out chan<- block) error
}

// exec is the state of one run.
type exec struct {
	cfg    Config
	mem    memory.Allocator
	budget *budget
	jobID  string
	ops    []*OpStats

	mu      sync.Mutex
	chans   []chan block
	written []string // files published by sinks
}

func newExec(cfg Config) (*exec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id := cfg.JobID
	if id == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return &exec{cfg: cfg, mem: cfg.Allocator, budget: newBudget(cfg.MemoryBudget), jobID: id}, nil
}

// fs returns the file system that serves path (see Config.FS).
func (x *exec) fs(path string) (storage.FS, error) {
	if x.cfg.FS != nil {
		return x.cfg.FS(path)
	}
	return storage.For(path)
}

// start runs child in g and returns its output channel.
func (x *exec) start(ctx context.Context, g *errgroup.Group, child op) <-chan block {
	ch := make(chan block, 2)
	x.mu.Lock()
	x.chans = append(x.chans, ch)
	x.mu.Unlock()
	g.Go(func() error {
		defer close(ch)
		return child.run(ctx, x, ch)
	})
	return ch
}

// drain releases whatever was left in channels after every goroutine ended.
func (x *exec) drain() {
	for _, ch := range x.chans {
		for b := range ch {
			x.drop(b)
		}
	}
}

// drop releases a block and its share of the budget.
func (x *exec) drop(b block) {
	if b.rec != nil {
		b.rec.Release()
	}
	x.budget.release(b.acct)
}

// send hands b to out, or drops it when ctx ends first.
func (x *exec) send(ctx context.Context, out chan<- block, b block) error {
	select {
	case out <- b:
		return nil
	case <-ctx.Done():
		x.drop(b)
		return ctx.Err()
	}
}

// replace turns b into a block holding rec (which may be nil for an empty
// result), moving b's budget share to the new batch's size. It releases b's
// batch: rec must carry its own reference.
func (x *exec) replace(b block, rec arrow.RecordBatch) block {
	if b.rec != nil {
		b.rec.Release()
	}
	var n int64
	if rec != nil {
		n = kernel.BatchBytes(rec)
	}
	x.budget.adjust(n - b.acct)
	return block{rec: rec, acct: n}
}

// produce is how sources emit: it waits for room in the budget first.
func (x *exec) produce(ctx context.Context, out chan<- block, rec arrow.RecordBatch) error {
	n := kernel.BatchBytes(rec)
	if err := x.budget.acquire(ctx, n); err != nil {
		rec.Release()
		return err
	}
	return x.send(ctx, out, block{rec: rec, acct: n})
}

// budget counts the bytes of blocks in flight. Only sources wait on it;
// every other operator adjusts it without blocking, so a full budget can
// always drain.
type budget struct {
	limit int64
	mu    sync.Mutex
	cond  chan struct{} // closed and replaced whenever bytes are released
	used  int64
	peak  atomic.Int64
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, cond: make(chan struct{})}
}

func (b *budget) acquire(ctx context.Context, n int64) error {
	for {
		ok, wait := b.tryAcquire(n)
		if ok {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryAcquire takes n bytes if they fit, or returns a channel closed at the
// next release. A block larger than the whole budget may go alone.
func (b *budget) tryAcquire(n int64) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used == 0 || b.used+n <= b.limit {
		b.used += n
		b.notePeak()
		return true, nil
	}
	return false, b.cond
}

func (b *budget) adjust(delta int64) {
	if delta < 0 {
		b.release(-delta)
		return
	}
	b.mu.Lock()
	b.used += delta
	b.notePeak()
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.broadcast()
	b.mu.Unlock()
}

// wake makes every waiter look again, for a reason other than released bytes.
func (b *budget) wake() {
	b.mu.Lock()
	b.broadcast()
	b.mu.Unlock()
}

func (b *budget) broadcast() {
	close(b.cond)
	b.cond = make(chan struct{})
}

func (b *budget) notePeak() {
	for {
		p := b.peak.Load()
		if b.used <= p || b.peak.CompareAndSwap(p, b.used) {
			return
		}
	}
}

// OpStats are one operator's counters.
type OpStats struct {
	Name     string
	RowsIn   atomic.Int64
	RowsOut  atomic.Int64
	BytesIn  atomic.Int64 // bytes read from storage (scans) or received
	BytesOut atomic.Int64 // bytes written to storage (sinks) or sent
	Batches  atomic.Int64
	// RowsTotal (Parquet) or BytesTotal (CSV, JSONL) is what a scan will
	// read, known once it has listed its splits (0: unknown); RowsIn or
	// BytesIn against it is the scan's progress.
	RowsTotal  atomic.Int64
	BytesTotal atomic.Int64
	busy       atomic.Int64 // CPU nanoseconds of the threads that ran work, over all goroutines
	began      atomic.Int64
	ended      atomic.Int64
}

func (s *OpStats) begin() { s.began.CompareAndSwap(0, time.Now().UnixNano()) }
func (s *OpStats) end()   { s.ended.Store(time.Now().UnixNano()) }

// work runs f and adds the CPU time its thread used to the operator's.
// Wall time would count a goroutine waiting for a core, a GPU or a channel,
// so with more goroutines than cores the column summed past the process's
// own CPU time. The goroutine stays on one thread between the two readings;
// goroutines f starts itself are not counted.
func (s *OpStats) work(f func() error) error {
	runtime.LockOSThread()
	t := threadCPU()
	err := f()
	s.busy.Add(threadCPU() - t)
	runtime.UnlockOSThread()
	return err
}

// out counts a batch sent.
func (s *OpStats) out(rec arrow.RecordBatch) {
	if rec != nil {
		s.RowsOut.Add(rec.NumRows())
		s.Batches.Add(1)
	}
}

// Wall is the time from the operator's first work to its end.
func (s *OpStats) Wall() time.Duration {
	b, e := s.began.Load(), s.ended.Load()
	if b == 0 || e < b {
		return 0
	}
	return time.Duration(e - b)
}

// CPU is the CPU time the operator's work used on its threads (0 where
// the platform gives no per-thread clock: see CPUKnown).
func (s *OpStats) CPU() time.Duration { return time.Duration(s.busy.Load()) }

// CPUKnown says CPU is measured on this platform.
func CPUKnown() bool { return threadCPUKnown }

// Stats summarize a run.
type Stats struct {
	Ops        []*OpStats
	Wall       time.Duration
	PeakBudget int64 // most bytes in flight at once
	Files      []string
	Rows       int64 // rows written or delivered
}

// opError marks an error with the operator it came from, once.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func wrapOp(name string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	return &opError{op: name, err: err}
}

// newStats registers an operator's counters for the summary.
func (x *exec) newStats(n plan.Node) *OpStats { return x.namedStats(n.Describe()) }

// namedStats registers counters for an operator that has no plan node.
func (x *exec) namedStats(name string) *OpStats {
	s := &OpStats{Name: name}
	x.mu.Lock()
	x.ops = append(x.ops, s)
	x.mu.Unlock()
	return s
}

func errf(format string, args ...any) error { return fmt.Errorf("local: "+format, args...) }
