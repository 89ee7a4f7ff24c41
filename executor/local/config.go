package local

import (
	"fmt"
	"io"
	"runtime"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/storage"
)

// Config tunes one run of the local executor.
type Config struct {
	// MemoryBudget bounds the bytes of blocks in flight between operators.
	// Sources wait while the budget is spent, which is how a larger-than-memory
	// input streams in bounded memory. Blocking operators (sort, group-by,
	// join's build side, shuffle) hold their state outside the budget.
	MemoryBudget int64
	// Concurrency is the default number of goroutines per operator.
	Concurrency int
	// PreserveOrder keeps the order of rows as read (and as each operator
	// defines it) at some cost in parallelism.
	PreserveOrder bool
	// BatchRows is the target number of rows per block from sources.
	BatchRows int
	// Progress receives a live display per operator when it is a terminal;
	// nil or a non-terminal writer shows nothing.
	Progress io.Writer
	// Allocator allocates every Arrow buffer of the run.
	Allocator memory.Allocator
	// JobID names staged files; empty picks a random one.
	JobID string
	// FS returns the file system that serves a path, for scans and sinks;
	// nil means storage.For. Tests wrap the real FS to inject failures.
	FS func(path string) (storage.FS, error)
}

// DefaultConfig returns a budget of a quarter of the machine's memory, one
// goroutine per core, and order preserved.
func DefaultConfig() Config {
	return Config{
		MemoryBudget:  int64(totalMemory() / 4),
		Concurrency:   runtime.GOMAXPROCS(0),
		PreserveOrder: true,
		BatchRows:     64 * 1024,
		Allocator:     memory.DefaultAllocator,
	}
}

// Validate reports the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MemoryBudget < 1<<20:
		return fmt.Errorf("local: MemoryBudget (%d bytes) must be at least 1 MiB", c.MemoryBudget)
	case c.Concurrency < 1:
		return fmt.Errorf("local: Concurrency (%d) must be at least 1", c.Concurrency)
	case c.BatchRows < 1:
		return fmt.Errorf("local: BatchRows (%d) must be at least 1", c.BatchRows)
	case c.Allocator == nil:
		return fmt.Errorf("local: Allocator is nil")
	}
	return nil
}
