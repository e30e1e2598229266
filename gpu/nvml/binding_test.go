package nvml

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// TestCLayout holds dl.h's declarations to NVML's documented C layout
// (nvml.h: nvmlMemory_t, nvmlUtilization_t, the buffer size macros).
func TestCLayout(t *testing.T) {
	got := cLayout()
	if got == nil {
		t.Skip("built without cgo: no C declarations")
	}
	want := map[string]uintptr{
		"nvmlReturn_t":                           4, // a C enum
		"nvmlDevice_t":                           unsafe.Sizeof(uintptr(0)),
		"nvmlMemory_t":                           24, // three unsigned long long
		"nvmlMemory_t.total":                     0,
		"nvmlMemory_t.free":                      8,
		"nvmlMemory_t.used":                      16,
		"nvmlUtilization_t":                      8, // two unsigned int
		"nvmlUtilization_t.gpu":                  0,
		"nvmlUtilization_t.memory":               4,
		"NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE": 80,
		"NVML_DEVICE_NAME_V2_BUFFER_SIZE":        96,
		"NVML_DEVICE_UUID_V2_BUFFER_SIZE":        96,
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s = %d (declared: %v), want %d", name, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("cLayout has %d entries, the test checks %d", len(got), len(want))
	}
}

// TestOpenNoLibrary: a library that is not there, or not a library, is
// ErrNoLibrary, and the error names the path (with cgo, dlerror's text; in
// builds without cgo, that it was built so).
func TestOpenNoLibrary(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.so")
	if err := os.WriteFile(text, []byte("not ELF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "libnvidia-ml.so.1"), text} {
		n, err := open(path, load)
		if err == nil {
			n.Close()
			t.Fatalf("open(%s) succeeded", path)
		}
		if !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), path) {
			t.Errorf("open(%s): %v; want ErrNoLibrary naming the path", path, err)
		}
	}
}

// buildFake compiles testdata/fakenvml.c with the given macros into a
// shared library and returns its path. It skips where the binding cannot
// load one (no cgo) or there is no C compiler.
func buildFake(t *testing.T, defines ...string) string {
	t.Helper()
	if cLayout() == nil {
		t.Skip("built without cgo: nothing is loaded")
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler to build the fake NVML: %v", err)
	}
	out := filepath.Join(t.TempDir(), "libnvidia-ml-fake.so")
	args := []string{"-shared", "-fPIC", "-Wall", "-Werror", "-o", out}
	for _, d := range defines {
		args = append(args, "-D"+d)
	}
	args = append(args, filepath.Join("testdata", "fakenvml.c"))
	if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, msg)
	}
	return out
}

// TestFakeLibrary drives the real binding over the fake library: entry
// points resolved (versioned names or not), strings, structs and clock
// types passed as NVML documents them, and its failures turned into errors.
func TestFakeLibrary(t *testing.T) {
	for _, tt := range []struct {
		name    string
		defines []string
		power   float64 // PowerW of device 1 (NaN: not supported)
		openErr string  // Open's error contains this
		noLib   bool    // Open's error wraps ErrNoLibrary
		noDev   bool    // Open's error wraps ErrNoDevice
		sample  string  // Sample's error contains this
	}{
		{name: "two devices", power: 123.457},
		{name: "unversioned names", defines: []string{"FAKE_V1"}, power: 123.457},
		{name: "power not supported", defines: []string{"FAKE_POWER_RET=3"}, power: math.NaN()},
		{name: "power fails", defines: []string{"FAKE_POWER_RET=15"}, sample: "nvml: device 1: power: fake error 15 (NVML error 15)"},
		{name: "init fails", defines: []string{"FAKE_INIT_RET=9"}, openErr: "nvml: init: fake error 9 (NVML error 9)"},
		{name: "no devices", defines: []string{"FAKE_COUNT=0"}, openErr: "no NVIDIA GPU", noDev: true},
		{name: "missing entry point", defines: []string{"FAKE_NO_UUID"}, openErr: "lacks nvmlDeviceGetUUID", noLib: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := buildFake(t, tt.defines...)
			n, err := open(path, load)
			if tt.openErr != "" {
				if err == nil {
					n.Close()
					t.Fatalf("Open succeeded, want %q", tt.openErr)
				}
				if !strings.Contains(err.Error(), tt.openErr) || errors.Is(err, ErrNoLibrary) != tt.noLib || errors.Is(err, ErrNoDevice) != tt.noDev {
					t.Fatalf("Open: %v; want %q (ErrNoLibrary %v, ErrNoDevice %v)", err, tt.openErr, tt.noLib, tt.noDev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantDevs := []Device{
				{Index: 0, Name: "Fake GPU 0", UUID: "GPU-fake-0000", Driver: "580.0.1-fake", MemoryTotalBytes: 80 << 30},
				{Index: 1, Name: "Fake GPU 1", UUID: "GPU-fake-0001", Driver: "580.0.1-fake", MemoryTotalBytes: 80 << 30},
			}
			if got := n.Devices(); fmt.Sprint(got) != fmt.Sprint(wantDevs) {
				t.Errorf("Devices() = %+v, want %+v", got, wantDevs)
			}
			s, err := n.Sample(1)
			if tt.sample != "" {
				if err == nil || err.Error() != tt.sample {
					t.Errorf("Sample(1): %v, want %q", err, tt.sample)
				}
			} else {
				want := Sample{MemoryUsedBytes: 2 << 30, PowerW: tt.power, SMClockMHz: 1979, GPUUtilPct: 43}
				if err != nil || !sameSample(s, want) {
					t.Errorf("Sample(1) = %+v, %v; want %+v", s, err, want)
				}
			}
			if _, err := n.Sample(2); err == nil {
				t.Error("Sample(2) of 2 devices: no error")
			}
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := n.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// sameSample compares samples, NaN equal to NaN and power to the mW.
func sameSample(a, b Sample) bool {
	eq := func(x, y, tol float64) bool { return x == y || math.Abs(x-y) <= tol || math.IsNaN(x) && math.IsNaN(y) }
	return eq(a.MemoryUsedBytes, b.MemoryUsedBytes, 0) && eq(a.PowerW, b.PowerW, 5e-4) &&
		eq(a.SMClockMHz, b.SMClockMHz, 0) && eq(a.GPUUtilPct, b.GPUUtilPct, 0)
}

// fakeLib is a Go-level NVML of one device whose call named fail returns
// ret; it counts initialisations and unloads.
type fakeLib struct {
	fail   string
	ret    int
	inits  int // nvmlInit minus nvmlShutdown
	closes int
}

func (f *fakeLib) status(call string) int {
	if call == f.fail {
		return f.ret
	}
	return retSuccess
}

var fakeDev byte

func (f *fakeLib) init() int {
	if r := f.status("init"); r != retSuccess {
		return r
	}
	f.inits++
	return retSuccess
}
func (f *fakeLib) shutdown() int {
	if r := f.status("shutdown"); r != retSuccess {
		return r
	}
	f.inits--
	return retSuccess
}
func (f *fakeLib) errorString(ret int) string   { return fmt.Sprintf("fake %d", ret) }
func (f *fakeLib) driverVersion() (string, int) { return "1.2", f.status("driver") }
func (f *fakeLib) deviceCount() (int, int)      { return 1, f.status("count") }
func (f *fakeLib) deviceHandle(int) (device, int) {
	return device(unsafe.Pointer(&fakeDev)), f.status("handle")
}
func (f *fakeLib) deviceName(device) (string, int) { return "G", f.status("name") }
func (f *fakeLib) deviceUUID(device) (string, int) { return "GPU-1", f.status("uuid") }
func (f *fakeLib) deviceMemory(device) (memory, int) {
	return memory{totalBytes: 10, freeBytes: 7, usedBytes: 3}, f.status("memory")
}
func (f *fakeLib) devicePower(device) (uint32, int) { return 250000, f.status("power") }
func (f *fakeLib) deviceClock(_ device, clock int) (uint32, int) {
	if clock != clockSM {
		return 0, 2
	}
	return 1500, f.status("clock")
}
func (f *fakeLib) deviceUtilization(device) (utilization, int) {
	return utilization{gpuPct: 99, memoryPct: 1}, f.status("util")
}
func (f *fakeLib) close() { f.closes++ }

// TestOpenFailures: whichever call fails, Open's error names it with
// NVML's text, and NVML is shut down and unloaded; a failed sample names
// its quantity, an unsupported one is NaN.
func TestOpenFailures(t *testing.T) {
	for _, tt := range []struct{ fail, want string }{
		{"init", "nvml: init: fake 9 (NVML error 9)"},
		{"driver", "nvml: driver version: fake 9 (NVML error 9)"},
		{"count", "nvml: device count: fake 9 (NVML error 9)"},
		{"handle", "nvml: device 0: handle: fake 9 (NVML error 9)"},
		{"name", "nvml: device 0: name: fake 9 (NVML error 9)"},
		{"uuid", "nvml: device 0: UUID: fake 9 (NVML error 9)"},
		{"memory", "nvml: device 0: memory: fake 9 (NVML error 9)"},
	} {
		t.Run(tt.fail, func(t *testing.T) {
			f := &fakeLib{fail: tt.fail, ret: 9}
			n, err := open("fake", func(string) (library, error) { return f, nil })
			if err == nil || err.Error() != tt.want {
				t.Fatalf("open: %v, %v; want %q", n, err, tt.want)
			}
			var re *returnError
			if !errors.As(err, &re) || re.code != 9 {
				t.Errorf("error %v does not carry NVML's code 9", err)
			}
			if f.inits != 0 || f.closes != 1 {
				t.Errorf("after a failed open: %d initialisations left, %d unloads; want 0, 1", f.inits, f.closes)
			}
		})
	}
	for _, tt := range []struct {
		fail string
		ret  int
		want string
		nan  func(Sample) float64
	}{
		{fail: "memory", ret: retNotSupported, nan: func(s Sample) float64 { return s.MemoryUsedBytes }},
		{fail: "power", ret: retNotSupported, nan: func(s Sample) float64 { return s.PowerW }},
		{fail: "clock", ret: retNotSupported, nan: func(s Sample) float64 { return s.SMClockMHz }},
		{fail: "util", ret: retNotSupported, nan: func(s Sample) float64 { return s.GPUUtilPct }},
		{fail: "memory", ret: 15, want: "nvml: device 0: memory: fake 15 (NVML error 15)"},
		{fail: "power", ret: 15, want: "nvml: device 0: power: fake 15 (NVML error 15)"},
		{fail: "clock", ret: 15, want: "nvml: device 0: SM clock: fake 15 (NVML error 15)"},
		{fail: "util", ret: 999, want: "nvml: device 0: utilisation: fake 999 (NVML error 999)"},
	} {
		t.Run(fmt.Sprintf("sample %s %d", tt.fail, tt.ret), func(t *testing.T) {
			f := &fakeLib{}
			n, err := open("fake", func(string) (library, error) { return f, nil })
			if err != nil {
				t.Fatal(err)
			}
			f.fail, f.ret = tt.fail, tt.ret
			s, err := n.Sample(0)
			if tt.want != "" {
				if err == nil || err.Error() != tt.want {
					t.Errorf("Sample: %+v, %v; want %q", s, err, tt.want)
				}
			} else {
				if err != nil || !math.IsNaN(tt.nan(s)) {
					t.Errorf("Sample: %+v, %v; want %s NaN", s, err, tt.fail)
				}
				// Everything else is read.
				f.fail = ""
				all, err := n.Sample(0)
				if err != nil || all != (Sample{MemoryUsedBytes: 3, PowerW: 250, SMClockMHz: 1500, GPUUtilPct: 99}) {
					t.Errorf("Sample with nothing failing: %+v, %v", all, err)
				}
			}
			f.fail, f.ret = "shutdown", 1
			if err := n.Close(); err == nil || err.Error() != "nvml: shutdown: fake 1 (NVML error 1)" {
				t.Errorf("Close: %v", err)
			}
			if f.closes != 1 {
				t.Errorf("Close unloaded the library %d times", f.closes)
			}
		})
	}
}
