//go:build !unix

package safetensors

import (
	"io"
	"os"
)

// mmap reads the file where memory mapping is not implemented.
func mmap(f *os.File, size int64) ([]byte, func() error, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
