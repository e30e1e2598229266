package cuda

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// TestOpenDriver runs everywhere: on a machine without the NVIDIA driver
// the error must say so and wrap ErrNoDriver; with one, the device must
// describe itself.
func TestOpenDriver(t *testing.T) {
	d, err := OpenDriver()
	if err != nil {
		if !errors.Is(err, ErrNoDriver) && !errors.Is(err, ErrNoDevice) {
			t.Fatalf("OpenDriver: %v, want an error wrapping ErrNoDriver or ErrNoDevice", err)
		}
		if errors.Is(err, ErrNoDriver) && !strings.Contains(err.Error(), "libcuda.so.1") {
			t.Errorf("error %q does not name libcuda.so.1", err)
		}
		t.Skipf("no CUDA driver: %v", err)
	}
	defer d.Close()
	n, err := d.DeviceCount()
	if err != nil || n == 0 {
		t.Skipf("driver %s loaded, %d devices: %v", d.Path, n, err)
	}
	g, err := d.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Major < 3 || g.Name == "" || g.TotalMem <= 0 || g.Multiprocessors <= 0 {
		t.Errorf("device %+v", g)
	}
	if _, err := d.Open(n); !errors.Is(err, ErrNoDevice) {
		t.Errorf("Open(%d) of %d devices: %v, want ErrNoDevice", n, n, err)
	}
	t.Logf("%s: %s, %s, driver %d", d.Path, g.Name, g.Arch(), d.Version)
}

func TestCacheKey(t *testing.T) {
	base := CacheKey("src", []string{"-DA=1"}, "sm_90", "13.0")
	if len(base) != 64 {
		t.Fatalf("key %q is not hex SHA-256", base)
	}
	if again := CacheKey("src", []string{"-DA=1"}, "sm_90", "13.0"); again != base {
		t.Errorf("key not stable: %s, %s", base, again)
	}
	for _, c := range []struct {
		name             string
		src              string
		opts             []string
		arch, nvrtcVersn string
	}{
		{"source", "src2", []string{"-DA=1"}, "sm_90", "13.0"},
		{"options", "src", []string{"-DA=2"}, "sm_90", "13.0"},
		{"no options", "src", nil, "sm_90", "13.0"},
		{"split options", "src", []string{"-DA", "=1"}, "sm_90", "13.0"},
		{"arch", "src", []string{"-DA=1"}, "sm_80", "13.0"},
		{"version", "src", []string{"-DA=1"}, "sm_90", "12.8"},
		{"boundary", "sr", []string{"c-DA=1"}, "sm_90", "13.0"},
	} {
		if k := CacheKey(c.src, c.opts, c.arch, c.nvrtcVersn); k == base {
			t.Errorf("%s: same key as the base", c.name)
		}
	}
}

func TestCacheRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	if _, _, ok := loadCached(dir, "k"); ok {
		t.Fatal("hit in an empty cache")
	}
	if err := storeCached(dir, "k", []byte("ptx\x00"), true); err != nil {
		t.Fatal(err)
	}
	code, ptx, ok := loadCached(dir, "k")
	if !ok || !ptx || string(code) != "ptx\x00" {
		t.Fatalf("loadCached = %q, %v, %v", code, ptx, ok)
	}
	if err := storeCached(dir, "k", []byte("cubin"), false); err != nil {
		t.Fatal(err)
	}
	if code, ptx, _ := loadCached(dir, "k"); ptx || string(code) != "cubin" {
		t.Errorf("cubin not preferred: %q, ptx %v", code, ptx)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if _, _, ok := loadCached("", "k"); ok {
		t.Error("disabled cache hit")
	}
}

// fakeNVRTC counts compilations and returns canned code.
type fakeNVRTC struct {
	cubin bool
	calls int
	opts  []string
	fail  string // log of a failing compile
}

func (f *fakeNVRTC) version() (int, int, int) { return 13, 0, 0 }
func (f *fakeNVRTC) hasCUBIN() bool           { return f.cubin }
func (f *fakeNVRTC) errorText(int) string     { return "NVRTC_ERROR_COMPILATION" }
func (f *fakeNVRTC) close()                   {}
func (f *fakeNVRTC) compile(src, name string, opts []string, cubin bool) ([]byte, string, string, int) {
	f.calls++
	f.opts = opts
	if f.fail != "" {
		return nil, f.fail, "nvrtcCompileProgram", 6
	}
	if cubin {
		return []byte("CUBIN:" + src), "", "", 0
	}
	return []byte("PTX:" + src + "\x00"), "", "", 0
}

func TestCompilerCache(t *testing.T) {
	fake := &fakeNVRTC{cubin: true}
	c := NewCompiler(&NVRTC{api: fake, Major: 13}, 9, 0, t.TempDir())
	img, err := c.Compile("k.cu", "kernel", "-DX=1")
	if err != nil {
		t.Fatal(err)
	}
	if img.FromCache || img.PTX || string(img.Code) != "CUBIN:kernel" {
		t.Errorf("first compile: %+v", img)
	}
	if want := []string{"--gpu-architecture=sm_90", "-DX=1"}; !reflect.DeepEqual(fake.opts, want) {
		t.Errorf("options %q, want %q", fake.opts, want)
	}
	img, err = c.Compile("k.cu", "kernel", "-DX=1")
	if err != nil || !img.FromCache || string(img.Code) != "CUBIN:kernel" || fake.calls != 1 {
		t.Errorf("second compile: %+v, %v, %d NVRTC calls", img, err, fake.calls)
	}
	if _, err := c.Compile("k.cu", "kernel", "-DX=2"); err != nil || fake.calls != 2 {
		t.Errorf("other options: %v, %d NVRTC calls, want 2", err, fake.calls)
	}
}

func TestCompilerPTXFallback(t *testing.T) {
	fake := &fakeNVRTC{cubin: false}
	c := NewCompiler(&NVRTC{api: fake, Major: 11}, 8, 6, "")
	img, err := c.Compile("k.cu", "kernel")
	if err != nil {
		t.Fatal(err)
	}
	if !img.PTX || fake.opts[0] != "--gpu-architecture=compute_86" || img.Code[len(img.Code)-1] != 0 {
		t.Errorf("PTX fallback: %+v with options %q", img, fake.opts)
	}
}

func TestCompilerErrorCarriesLog(t *testing.T) {
	fake := &fakeNVRTC{cubin: true, fail: "k.cu(3): error: identifier \"x\" is undefined"}
	c := NewCompiler(&NVRTC{api: fake}, 9, 0, t.TempDir())
	_, err := c.Compile("k.cu", "kernel")
	if err == nil || !strings.Contains(err.Error(), `identifier "x" is undefined`) || !strings.Contains(err.Error(), "sm_90") {
		t.Fatalf("error %v does not carry the log and the architecture", err)
	}
	if _, err := c.Compile("k.cu", "kernel"); err == nil || fake.calls != 2 {
		t.Errorf("a failed compile was cached: %v, %d calls", err, fake.calls)
	}
}

func TestSearchDirs(t *testing.T) {
	env := map[string]string{
		"KVCASCADE_CUDA_LIBS": "/a:/b",
		"CUDA_HOME":           "/cuda",
		"LD_LIBRARY_PATH":     "/b:/c",
	}
	got := searchDirs(func(k string) string { return env[k] })
	want := []string{"/a", "/b", "/cuda/lib64", "/cuda/lib", "/c", "/usr/local/cuda/lib64"}
	if len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("searchDirs = %q, want %q first", got, want)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "libnvrtc.so.12"), nil, 0o644)
	paths := candidates(nvrtcNames, []string{dir, "/nonexistent"})
	if paths[0] != filepath.Join(dir, "libnvrtc.so.12") || paths[1] != "libnvrtc.so" {
		t.Errorf("candidates = %q: want the file found, then bare names", paths)
	}
}

func TestOpenFirst(t *testing.T) {
	var tried []string
	open := func(p string) (int, error) {
		tried = append(tried, p)
		if p == "missing-symbol" {
			return 0, &missingSymbol{lib: p, symbol: "nvrtcFoo"}
		}
		return 0, &dlError{p + ": cannot open shared object file"}
	}
	_, _, err := openFirst("libx", ErrNoNVRTC, []string{"a", "b"}, open)
	if !errors.Is(err, ErrNoNVRTC) || !strings.Contains(err.Error(), "b: cannot open") {
		t.Errorf("error %v", err)
	}
	tried = nil
	_, _, err = openFirst("libx", ErrNoNVRTC, []string{"missing-symbol", "c"}, open)
	if !errors.Is(err, ErrNoNVRTC) || !strings.Contains(err.Error(), "nvrtcFoo") || len(tried) != 1 {
		t.Errorf("missing symbol: %v after %q", err, tried)
	}
}

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		arg  Arg
		want uint64
	}{
		{Int(-1), 0xffffffff},
		{Int(7), 7},
		{Int64(-1), math.MaxUint64},
		{Float(1.5), uint64(math.Float32bits(1.5))},
		{Ptr(0xdeadbeef00), 0xdeadbeef00},
	} {
		if uint64(c.arg) != c.want {
			t.Errorf("arg %#x, want %#x", uint64(c.arg), c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Int(1<<40) did not panic")
		}
	}()
	Int(1 << 40)
}

// fakeDriver records launches; methods not overridden panic.
type fakeDriver struct {
	driverAPI
	launches []Dim3
	attrs    []int
}

func (f *fakeDriver) launch(_, _ unsafe.Pointer, grid, block Dim3, shared int, args []Arg) int {
	f.launches = append(f.launches, grid)
	return 0
}

func (f *fakeDriver) funcAttribute(_, _ unsafe.Pointer, attr, v int) int {
	f.attrs = append(f.attrs, v)
	return 0
}

func (f *fakeDriver) errorText(int) (string, string) { return "CUDA_ERROR_X", "x" }

func TestLaunch(t *testing.T) {
	fake := &fakeDriver{}
	g := &Device{drv: &Driver{api: fake}, SharedOptin: 100 << 10}
	f := &Function{g: g, Name: "k"}
	if err := f.Launch(Dim3{}, Dim3{X: 32}, 0); err != nil || len(fake.launches) != 0 {
		t.Errorf("empty grid: %v, %d launches", err, len(fake.launches))
	}
	// The limit is set on the first launch with dynamic shared memory,
	// even under 48 KiB (static shared memory counts against those), and
	// raised when a launch wants more.
	for _, shared := range []int{0, 48 << 10, 40 << 10, 64 << 10, 60 << 10} {
		if err := f.Launch(Dim3{X: 2}, Dim3{X: 32}, shared); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(fake.attrs, []int{48 << 10, 64 << 10}) || fake.launches[0] != (Dim3{2, 1, 1}) {
		t.Errorf("shared limit set to %v, launches %v", fake.attrs, fake.launches)
	}
	if err := f.Launch(Dim3{X: 1}, Dim3{X: 32}, 200<<10); err == nil {
		t.Error("launch over the device's shared memory succeeded")
	}
	if err := f.Launch(Dim3{X: 1}, Dim3{}, 0); err == nil {
		t.Error("launch with an empty block succeeded")
	}
}

func TestErrorText(t *testing.T) {
	for _, c := range []struct {
		err  Error
		want string
	}{
		{Error{Op: "cuMemAlloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Text: "out of memory"}, "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY (out of memory)"},
		{Error{Op: "cublasSgemm", Code: 13, Name: "CUBLAS_STATUS_EXECUTION_FAILED"}, "cublasSgemm: CUBLAS_STATUS_EXECUTION_FAILED"},
		{Error{Op: "cuInit", Code: 999}, "cuInit: error 999"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}
