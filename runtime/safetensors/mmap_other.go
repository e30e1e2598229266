//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package safetensors

import (
	"errors"
	"os"
)

// mmap is not available here; Open reads the file instead.
func mmap(*os.File, int) ([]byte, error) {
	return nil, errors.New("mmap not supported")
}

// munmap is never called without mmap.
func munmap([]byte) error { return nil }
