// Package nvml reads what NVIDIA's management library (NVML) knows about
// the GPUs of this machine: name, driver version and UUID of each device,
// and samples of its memory use, power draw, SM clock and utilisation.
//
// It loads libnvidia-ml.so.1 with dlopen when Open is called (cgo with
// -ldl, as package gpu/cuda loads the CUDA libraries), declaring only the
// dozen entry points it calls, so nothing of the driver is needed to build;
// on a machine without one, and in builds without cgo, Open returns an
// error wrapping ErrNoLibrary.
package nvml

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// libName is the library Open loads: the driver's NVML, by its soname.
const libName = "libnvidia-ml.so.1"

// ErrNoLibrary is wrapped by Open's error when libnvidia-ml.so.1 cannot be
// loaded or lacks an entry point this package calls, as on a machine
// without an NVIDIA driver or in a build without cgo.
var ErrNoLibrary = errors.New("libnvidia-ml.so.1 not found (no NVIDIA driver on this machine?)")

// ErrNoDevice is wrapped by Open's error when NVML reports no GPU.
var ErrNoDevice = errors.New("no NVIDIA GPU")

// NVML return codes (nvmlReturn_t) this package tells apart.
const (
	retSuccess      = 0 // NVML_SUCCESS
	retNotSupported = 3 // NVML_ERROR_NOT_SUPPORTED
)

// clockSM is NVML_CLOCK_SM, the SM clock domain of nvmlClockType_t.
const clockSM = 1

// device is an nvmlDevice_t: a pointer NVML owns, never dereferenced here.
type device unsafe.Pointer

// memory is nvmlMemory_t: bytes of device memory.
type memory struct{ totalBytes, freeBytes, usedBytes uint64 }

// utilization is nvmlUtilization_t: percent of the last sample period.
type utilization struct{ gpuPct, memoryPct uint32 }

// library is NVML as the rest of the package sees it: one method per entry
// point, each returning NVML's nvmlReturn_t as an int. The cgo binding
// (binding_cgo.go) implements it over entry points loaded with dlsym;
// tests may fake it.
type library interface {
	init() int                                             // nvmlInit_v2
	shutdown() int                                         // nvmlShutdown
	errorString(ret int) string                            // nvmlErrorString
	driverVersion() (string, int)                          // nvmlSystemGetDriverVersion
	deviceCount() (int, int)                               // nvmlDeviceGetCount_v2
	deviceHandle(index int) (device, int)                  // nvmlDeviceGetHandleByIndex_v2
	deviceName(d device) (string, int)                     // nvmlDeviceGetName
	deviceUUID(d device) (string, int)                     // nvmlDeviceGetUUID
	deviceMemory(d device) (memory, int)                   // nvmlDeviceGetMemoryInfo
	devicePower(d device) (milliwatts uint32, ret int)     // nvmlDeviceGetPowerUsage
	deviceClock(d device, clock int) (mhz uint32, ret int) // nvmlDeviceGetClockInfo
	deviceUtilization(d device) (utilization, int)         // nvmlDeviceGetUtilizationRates
	close()                                                // dlclose
}

// returnError is a failed NVML call's status.
type returnError struct {
	code int
	text string // nvmlErrorString's description, if any
}

func (e *returnError) Error() string {
	if e.text == "" {
		return fmt.Sprintf("NVML error %d", e.code)
	}
	return fmt.Sprintf("%s (NVML error %d)", e.text, e.code)
}

// NVML is an initialised NVML library and the devices it found when opened.
// Its methods may be called from several goroutines.
type NVML struct {
	lib     library
	devices []Device
	handles []device
}

// Device describes one GPU.
type Device struct {
	Index            int    // NVML's index (PCI bus order)
	Name             string // e.g. "NVIDIA H100 80GB HBM3"
	UUID             string // "GPU-…", as CUDA_VISIBLE_DEVICES may name it
	Driver           string // the system's driver version, e.g. "580.159.04"
	MemoryTotalBytes uint64
}

// Sample is the state of a device at one moment. A quantity the device
// does not report (NVML_ERROR_NOT_SUPPORTED) is NaN.
type Sample struct {
	MemoryUsedBytes float64 // memory in use on the device, by every process
	PowerW          float64 // board power draw
	SMClockMHz      float64 // current SM clock
	GPUUtilPct      float64 // percent of the last sample period a kernel ran
}

// Open loads NVML, initialises it and lists the devices. It returns an
// error wrapping ErrNoLibrary where the library is absent and ErrNoDevice
// where there is no GPU. Close releases it.
func Open() (*NVML, error) { return open(libName, load) }

// open is Open of the library at path, loaded by load.
func open(path string, load func(path string) (library, error)) (*NVML, error) {
	lib, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("nvml: %w", err)
	}
	n := &NVML{lib: lib}
	if ret := lib.init(); ret != retSuccess {
		err := n.fail("init", ret)
		lib.close()
		return nil, fmt.Errorf("nvml: %w", err)
	}
	if err := n.list(); err != nil {
		lib.shutdown()
		lib.close()
		return nil, err
	}
	return n, nil
}

// fail returns the error of a call that returned ret.
func (n *NVML) fail(op string, ret int) error {
	return fmt.Errorf("%s: %w", op, &returnError{code: ret, text: n.lib.errorString(ret)})
}

// list fills n.devices and n.handles.
func (n *NVML) list() error {
	driver, ret := n.lib.driverVersion()
	if ret != retSuccess {
		return fmt.Errorf("nvml: %w", n.fail("driver version", ret))
	}
	count, ret := n.lib.deviceCount()
	if ret != retSuccess {
		return fmt.Errorf("nvml: %w", n.fail("device count", ret))
	}
	if count == 0 {
		return fmt.Errorf("nvml: %w", ErrNoDevice)
	}
	for i := range count {
		h, ret := n.lib.deviceHandle(i)
		if ret != retSuccess {
			return fmt.Errorf("nvml: device %d: %w", i, n.fail("handle", ret))
		}
		name, ret := n.lib.deviceName(h)
		if ret != retSuccess {
			return fmt.Errorf("nvml: device %d: %w", i, n.fail("name", ret))
		}
		uuid, ret := n.lib.deviceUUID(h)
		if ret != retSuccess {
			return fmt.Errorf("nvml: device %d: %w", i, n.fail("UUID", ret))
		}
		mem, ret := n.lib.deviceMemory(h)
		if ret != retSuccess {
			return fmt.Errorf("nvml: device %d: %w", i, n.fail("memory", ret))
		}
		n.devices = append(n.devices, Device{Index: i, Name: name, UUID: uuid, Driver: driver, MemoryTotalBytes: mem.totalBytes})
		n.handles = append(n.handles, h)
	}
	return nil
}

// Devices returns the GPUs found by Open, in NVML's order.
func (n *NVML) Devices() []Device { return append([]Device(nil), n.devices...) }

// Sample reads the state of the device with NVML index index.
func (n *NVML) Sample(index int) (Sample, error) {
	if index < 0 || index >= len(n.handles) {
		return Sample{}, fmt.Errorf("nvml: sample: no device %d (have %d)", index, len(n.handles))
	}
	h := n.handles[index]
	var s Sample
	mem, ret := n.lib.deviceMemory(h)
	if err := n.value(&s.MemoryUsedBytes, float64(mem.usedBytes), "memory", ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: %w", index, err)
	}
	mW, ret := n.lib.devicePower(h)
	if err := n.value(&s.PowerW, float64(mW)/1000, "power", ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: %w", index, err)
	}
	mhz, ret := n.lib.deviceClock(h, clockSM)
	if err := n.value(&s.SMClockMHz, float64(mhz), "SM clock", ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: %w", index, err)
	}
	util, ret := n.lib.deviceUtilization(h)
	if err := n.value(&s.GPUUtilPct, float64(util.gpuPct), "utilisation", ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: %w", index, err)
	}
	return s, nil
}

// value sets *dst to v on success and to NaN where the device does not
// support the query; other failures are errors naming op.
func (n *NVML) value(dst *float64, v float64, op string, ret int) error {
	switch ret {
	case retSuccess:
		*dst = v
	case retNotSupported:
		*dst = math.NaN()
	default:
		*dst = math.NaN()
		return n.fail(op, ret)
	}
	return nil
}

// Close shuts NVML down and unloads it; n must not be used afterwards.
func (n *NVML) Close() error {
	if n.lib == nil {
		return nil
	}
	ret := n.lib.shutdown()
	var err error
	if ret != retSuccess {
		err = fmt.Errorf("nvml: %w", n.fail("shutdown", ret))
	}
	n.lib.close()
	n.lib, n.handles = nil, nil
	return err
}

// VisibleIndex returns the NVML index of the process's CUDA device ordinal
// (0 is the device gpu.New(0) uses), following CUDA_VISIBLE_DEVICES where it
// is set. CUDA numbers devices fastest first unless CUDA_DEVICE_ORDER is
// PCI_BUS_ID, and NVML in PCI bus order; on machines of one kind of GPU the
// two agree.
func (n *NVML) VisibleIndex(ordinal int) (int, error) {
	env, set := os.LookupEnv("CUDA_VISIBLE_DEVICES")
	uuids := make([]string, len(n.devices))
	for i, d := range n.devices {
		uuids[i] = d.UUID
	}
	return visibleIndex(env, set, ordinal, uuids)
}

// visibleIndex maps a CUDA device ordinal to an index into uuids (the
// devices in NVML order) under CUDA_VISIBLE_DEVICES=env. As in CUDA, the
// list's entries are indices or GPU UUIDs (or unique prefixes of them), and
// it ends at the first entry that names no device.
func visibleIndex(env string, set bool, ordinal int, uuids []string) (int, error) {
	if ordinal < 0 {
		return 0, fmt.Errorf("nvml: negative CUDA device ordinal %d", ordinal)
	}
	if !set {
		if ordinal >= len(uuids) {
			return 0, fmt.Errorf("nvml: CUDA device %d: only %d devices", ordinal, len(uuids))
		}
		return ordinal, nil
	}
	var visible []int
	for entry := range strings.SplitSeq(env, ",") {
		i := lookup(strings.TrimSpace(entry), uuids)
		if i < 0 {
			break
		}
		visible = append(visible, i)
	}
	if ordinal >= len(visible) {
		return 0, fmt.Errorf("nvml: CUDA device %d is not visible with CUDA_VISIBLE_DEVICES=%q (%d devices)", ordinal, env, len(uuids))
	}
	return visible[ordinal], nil
}

// lookup returns the index of the device that a CUDA_VISIBLE_DEVICES entry
// names, or -1 if it names none (MIG instances included).
func lookup(entry string, uuids []string) int {
	if i, err := strconv.Atoi(entry); err == nil {
		if i < 0 || i >= len(uuids) {
			return -1
		}
		return i
	}
	if !strings.HasPrefix(entry, "GPU-") {
		return -1
	}
	found := -1
	for i, u := range uuids {
		if strings.HasPrefix(u, entry) {
			if found >= 0 {
				return -1 // ambiguous prefix
			}
			found = i
		}
	}
	return found
}
