//go:build unix

package cpu_test

import (
	"syscall"
	"time"
)

// cpuTime is the user+system CPU time of the process: the benchmarks report
// throughput per CPU-second beside wall-clock GFLOP/s, because the shared
// development machines are loaded and wall time there is mostly waiting.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
