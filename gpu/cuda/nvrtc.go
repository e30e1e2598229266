package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// nvrtcAPI is NVRTC as the package sees it; binding_cgo.go implements it.
type nvrtcAPI interface {
	version() (major, minor, status int)
	// hasCUBIN says whether the library can return cubins (NVRTC ≥ 11.1).
	hasCUBIN() bool
	// compile runs one program through create, compile, log and code
	// retrieval; on failure op names the call that failed.
	compile(src, name string, opts []string, cubin bool) (code []byte, log, op string, status int)
	errorText(status int) string
	close()
}

// NVRTC is the loaded run-time compiler library.
type NVRTC struct {
	api          nvrtcAPI
	Path         string // the library loaded
	Major, Minor int    // its version
	unload       []func()
}

// OpenNVRTC finds and loads libnvrtc (see the package documentation for
// where it looks). Errors wrap ErrNoNVRTC.
func OpenNVRTC() (*NVRTC, error) {
	api, path, err := openFirst("libnvrtc", ErrNoNVRTC, candidates(nvrtcNames, searchDirs(os.Getenv)), loadNVRTC)
	if err != nil {
		return nil, err
	}
	major, minor, st := api.version()
	if st != 0 {
		api.close()
		return nil, fmt.Errorf("%w: %s: nvrtcVersion: %s", ErrNoNVRTC, path, api.errorText(st))
	}
	n := &NVRTC{api: api, Path: path, Major: major, Minor: minor}
	n.preloadBuiltins()
	return n, nil
}

// preloadBuiltins loads the libnvrtc-builtins beside the NVRTC library
// found in a directory: NVRTC opens it by soname when compiling, which
// fails where that directory is not on the dynamic linker's path (a
// toolkit found through CUDA_HOME, say), unless a copy is already loaded.
// Failures are left for compilation to report.
func (n *NVRTC) preloadBuiltins() {
	dir := filepath.Dir(n.Path)
	if dir == "." {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "libnvrtc-builtins.so.*"))
	for _, m := range matches {
		if unload, err := preload(m); err == nil {
			n.unload = append(n.unload, unload)
		}
	}
}

// Version is "major.minor".
func (n *NVRTC) Version() string { return fmt.Sprintf("%d.%d", n.Major, n.Minor) }

// Close unloads the library.
func (n *NVRTC) Close() {
	if n.api != nil {
		n.api.close()
		n.api = nil
	}
	for _, u := range n.unload {
		u()
	}
	n.unload = nil
}

// Image is compiled device code.
type Image struct {
	Code      []byte // a cubin, or NUL-terminated PTX when PTX is set
	PTX       bool
	Key       string // the cache key
	FromCache bool   // read from the disk cache rather than compiled
	// Log is what the compiler said about a successful compilation (its
	// warnings, e.g. ptxas serialising warpgroup MMAs); empty when read
	// from the cache.
	Log string
}

// Compiler compiles CUDA C for one architecture through NVRTC, with a disk
// cache.
type Compiler struct {
	nvrtc        *NVRTC
	major, minor int
	// KernelDir holds compiled code between runs; "" keeps none.
	KernelDir string
}

// NewCompiler compiles for compute capability major.minor, keeping the
// compiled code in kernelDir ("" for nowhere; DefaultKernelDir gives the
// usual place).
func NewCompiler(n *NVRTC, major, minor int, kernelDir string) *Compiler {
	return &Compiler{nvrtc: n, major: major, minor: minor, KernelDir: kernelDir}
}

// Compile returns the code of src (name is the program's name in
// messages) compiled with opts and the device's architecture: a cubin for
// sm_XY, or PTX for compute_XY when this NVRTC cannot emit cubins. Compile
// errors carry NVRTC's log. A cache that cannot be read or written is
// ignored.
func (c *Compiler) Compile(name, src string, opts ...string) (*Image, error) {
	return c.compile(name, src, "", opts)
}

// CompileSpecific is Compile for the architecture-specific target of the
// device (sm_90a for sm_90): code that uses features only that
// architecture has, such as Hopper's warpgroup MMA, and that runs on no
// other.
func (c *Compiler) CompileSpecific(name, src string, opts ...string) (*Image, error) {
	return c.compile(name, src, "a", opts)
}

// compile is Compile for the architecture with suffix ("" or "a").
func (c *Compiler) compile(name, src, suffix string, opts []string) (*Image, error) {
	cubin := c.nvrtc.api.hasCUBIN()
	arch := fmt.Sprintf("sm_%d%d%s", c.major, c.minor, suffix)
	if !cubin {
		arch = fmt.Sprintf("compute_%d%d%s", c.major, c.minor, suffix)
	}
	all := append([]string{"--gpu-architecture=" + arch}, opts...)
	key := CacheKey(src, all, arch, c.nvrtc.Version())
	if code, ptx, ok := loadCached(c.KernelDir, key); ok && ptx == !cubin {
		return &Image{Code: code, PTX: ptx, Key: key, FromCache: true}, nil
	}
	code, log, op, st := c.nvrtc.api.compile(src, name, all, cubin)
	if st != 0 {
		msg := fmt.Sprintf("nvrtc: compile %s for %s: %s: %s", name, arch, op, c.nvrtc.api.errorText(st))
		if log = strings.TrimSpace(log); log != "" {
			msg += "\n" + log
		}
		return nil, fmt.Errorf("%s", msg)
	}
	_ = storeCached(c.KernelDir, key, code, !cubin)
	return &Image{Code: code, PTX: !cubin, Key: key, Log: strings.TrimSpace(log)}, nil
}
