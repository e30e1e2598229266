//go:build unix

package crashtest

import "syscall"

const supported = true

// setFileSizeLimit caps the size of every file this process writes.
func setFileSizeLimit(limit uint64) error {
	return syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit})
}
