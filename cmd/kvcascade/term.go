package main

import (
	"io"
	"os"
	"strconv"
)

// terminalWidth returns the width in columns of the terminal w writes to:
// $COLUMNS when set, else what the terminal says, else 80.
func terminalWidth(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := w.(*os.File); ok {
		if n := fdColumns(f.Fd()); n > 0 {
			return n
		}
	}
	return 80
}
