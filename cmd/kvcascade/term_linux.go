package main

import (
	"syscall"
	"unsafe"
)

// fdColumns asks the terminal on fd for its width (TIOCGWINSZ); 0 when fd
// is not a terminal.
func fdColumns(fd uintptr) int {
	var ws struct{ rows, cols, xpixel, ypixel uint16 }
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws))); errno != 0 {
		return 0
	}
	return int(ws.cols)
}
