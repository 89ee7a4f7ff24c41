//go:build !unix

package coordinator

import (
	"errors"
	"os"
)

// ErrDataDirInUse is what Start returns when another process holds the
// data directory (detected on unix only).
var ErrDataDirInUse = errors.New("coordinator: data dir in use")

func lockDataDir(dir string) (*os.File, error) { return nil, nil }
