//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package safetensors

import (
	"os"
	"syscall"
)

// mmap maps the first size bytes of fd read-only.
func mmap(fd *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(fd.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
}

// munmap releases a mapping made by mmap.
func munmap(data []byte) error {
	return syscall.Munmap(data)
}
