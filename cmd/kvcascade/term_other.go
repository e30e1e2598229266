//go:build !linux

package main

// fdColumns is 0 where the terminal's width is not asked: terminalWidth
// falls back to $COLUMNS and 80.
func fdColumns(fd uintptr) int { return 0 }
