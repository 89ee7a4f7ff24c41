//go:build unix

package coordinator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrDataDirInUse is what Start returns when another process (or another
// coordinator of this one) holds the data directory.
var ErrDataDirInUse = errors.New("coordinator: data dir in use")

// lockDataDir takes an exclusive flock on dir/LOCK and writes this
// process's pid into it, or fails at once naming the holder's pid (bbolt
// would otherwise wait on its own lock forever). The lock ends with the
// file's close, or with the process.
func lockDataDir(dir string) (*os.File, error) {
	file := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(file)
		f.Close()
		pid := strings.TrimSpace(string(b))
		if _, perr := strconv.Atoi(pid); perr != nil {
			pid = "unknown"
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w by pid %s (%s is locked): stop that coordinator, or give this one another --data-dir", ErrDataDirInUse, pid, file)
		}
		return nil, fmt.Errorf("coordinator: locking %s: %w", file, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
