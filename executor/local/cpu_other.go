//go:build !linux

package local

// threadCPUKnown is false where no per-thread CPU clock is read: the
// summary's cpu column then shows "-" rather than a wall-clock guess.
const threadCPUKnown = false

func threadCPU() int64 { return 0 }
