package local

import "syscall"

// rusageThread is Linux's RUSAGE_THREAD, which the syscall package lacks.
const rusageThread = 1

// threadCPUKnown says threadCPU measures the calling thread.
const threadCPUKnown = true

// threadCPU is the CPU time (user + system) the calling OS thread has used.
// Callers lock the goroutine to its thread around the two readings.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
