//go:build !(cgo && linux)

package nvml

import (
	"fmt"
	"runtime"
)

// load fails: without cgo nothing can be loaded.
func load(path string) (library, error) {
	return nil, fmt.Errorf("%w: built without cgo on %s: %s is loaded only by linux builds with cgo (CGO_ENABLED=1)",
		ErrNoLibrary, runtime.GOOS, path)
}

// cLayout returns nil: there are no C declarations in this build.
func cLayout() map[string]uintptr { return nil }
