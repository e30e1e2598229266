package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Library file names, most general first: the unversioned name exists
// where a toolkit is installed and points at its version.
var (
	nvrtcNames    = []string{"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"}
	cublasNames   = []string{"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11"}
	cublasLtNames = []string{"libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11"}
)

// searchDirs returns the directories searched for toolkit libraries, in
// order: $KVCASCADE_CUDA_LIBS (a list like PATH), $CUDA_HOME/lib64,
// $CUDA_PATH/lib64, the entries of $LD_LIBRARY_PATH, and the default
// toolkit install /usr/local/cuda. getenv is os.Getenv outside tests.
func searchDirs(getenv func(string) string) []string {
	var dirs []string
	add := func(d string) {
		if d == "" {
			return
		}
		for _, x := range dirs {
			if x == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	for _, d := range filepath.SplitList(getenv("KVCASCADE_CUDA_LIBS")) {
		add(d)
	}
	for _, v := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if root := getenv(v); root != "" {
			add(filepath.Join(root, "lib64"))
			add(filepath.Join(root, "lib"))
		}
	}
	for _, d := range filepath.SplitList(getenv("LD_LIBRARY_PATH")) {
		add(d)
	}
	add("/usr/local/cuda/lib64")
	if t := targetDir(); t != "" {
		add(filepath.Join("/usr/local/cuda/targets", t, "lib"))
	}
	return dirs
}

// targetDir is the toolkit's per-platform directory name.
func targetDir() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64-linux"
	case "arm64":
		return "sbsa-linux"
	}
	return ""
}

// candidates returns the paths to try for a library: names in each search
// directory where such a file exists, then the bare names for the dynamic
// linker's own search (ld.so.cache).
func candidates(names []string, dirs []string) []string {
	var paths []string
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				paths = append(paths, p)
			}
		}
	}
	return append(paths, names...)
}

// openFirst tries open on each candidate path and returns the first that
// loads. A library that loads but lacks a symbol stops the search: another
// copy is unlikely to do better and the message says what is missing.
func openFirst[T any](what string, sentinel error, paths []string, open func(path string) (T, error)) (T, string, error) {
	var zero T
	var tried []string
	for _, p := range paths {
		v, err := open(p)
		if err == nil {
			return v, p, nil
		}
		var missing *missingSymbol
		if errors.As(err, &missing) {
			return zero, "", fmt.Errorf("%w: %s: %v", sentinel, p, err)
		}
		tried = append(tried, err.Error())
	}
	return zero, "", fmt.Errorf("%w (%s tried: %s)", sentinel, what, strings.Join(tried, "; "))
}

// dlError is dlopen's message for a library that would not load.
type dlError struct{ msg string }

func (e *dlError) Error() string { return e.msg }

// missingSymbol is a library that loaded without an entry point we need.
type missingSymbol struct{ lib, symbol string }

func (m *missingSymbol) Error() string {
	return fmt.Sprintf("%s has no symbol %s (library too old?)", m.lib, m.symbol)
}
