// Package nvml reads what NVIDIA's management library (NVML) knows about
// the GPUs of this machine: name, driver version and UUID of each device,
// and samples of its memory use, power draw, SM clock and utilisation.
//
// It wraps github.com/NVIDIA/go-nvml, which loads libnvidia-ml.so.1 with
// dlopen when Open is called, so nothing of the driver is needed to build;
// on a machine without one Open returns an error wrapping ErrNoLibrary.
package nvml

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoLibrary is wrapped by Open's error when libnvidia-ml.so.1 cannot be
// loaded, as on a machine without an NVIDIA driver.
var ErrNoLibrary = errors.New("libnvidia-ml.so.1 not found (no NVIDIA driver on this machine?)")

// ErrNoDevice is wrapped by Open's error when NVML reports no GPU.
var ErrNoDevice = errors.New("no NVIDIA GPU")

// NVML is an initialised NVML library and the devices it found when opened.
// Its methods may be called from several goroutines.
type NVML struct {
	lib     gonvml.Interface
	devices []Device
	handles []gonvml.Device
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
func Open() (*NVML, error) {
	lib := gonvml.New()
	switch ret := lib.Init(); ret {
	case gonvml.SUCCESS:
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return nil, fmt.Errorf("nvml: %w", ErrNoLibrary)
	default:
		return nil, fmt.Errorf("nvml: init: %v", ret)
	}
	n := &NVML{lib: lib}
	if err := n.list(); err != nil {
		lib.Shutdown()
		return nil, err
	}
	return n, nil
}

// list fills n.devices and n.handles.
func (n *NVML) list() error {
	driver, ret := n.lib.SystemGetDriverVersion()
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml: driver version: %v", ret)
	}
	count, ret := n.lib.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml: device count: %v", ret)
	}
	if count == 0 {
		return fmt.Errorf("nvml: %w", ErrNoDevice)
	}
	for i := range count {
		h, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != gonvml.SUCCESS {
			return fmt.Errorf("nvml: device %d: handle: %v", i, ret)
		}
		name, ret := h.GetName()
		if ret != gonvml.SUCCESS {
			return fmt.Errorf("nvml: device %d: name: %v", i, ret)
		}
		uuid, ret := h.GetUUID()
		if ret != gonvml.SUCCESS {
			return fmt.Errorf("nvml: device %d: UUID: %v", i, ret)
		}
		mem, ret := h.GetMemoryInfo()
		if ret != gonvml.SUCCESS {
			return fmt.Errorf("nvml: device %d: memory: %v", i, ret)
		}
		n.devices = append(n.devices, Device{Index: i, Name: name, UUID: uuid, Driver: driver, MemoryTotalBytes: mem.Total})
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
	mem, ret := h.GetMemoryInfo()
	if err := value(&s.MemoryUsedBytes, float64(mem.Used), ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: memory: %w", index, err)
	}
	mW, ret := h.GetPowerUsage()
	if err := value(&s.PowerW, float64(mW)/1000, ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: power: %w", index, err)
	}
	mhz, ret := h.GetClockInfo(gonvml.CLOCK_SM)
	if err := value(&s.SMClockMHz, float64(mhz), ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: SM clock: %w", index, err)
	}
	util, ret := h.GetUtilizationRates()
	if err := value(&s.GPUUtilPct, float64(util.Gpu), ret); err != nil {
		return s, fmt.Errorf("nvml: device %d: utilisation: %w", index, err)
	}
	return s, nil
}

// value sets *dst to v on success and to NaN where the device does not
// support the query; other failures are errors.
func value(dst *float64, v float64, ret gonvml.Return) error {
	switch ret {
	case gonvml.SUCCESS:
		*dst = v
	case gonvml.ERROR_NOT_SUPPORTED:
		*dst = math.NaN()
	default:
		*dst = math.NaN()
		return ret
	}
	return nil
}

// Close shuts NVML down; n must not be used afterwards.
func (n *NVML) Close() error {
	if n.lib == nil {
		return nil
	}
	ret := n.lib.Shutdown()
	n.lib, n.handles = nil, nil
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml: shutdown: %v", ret)
	}
	return nil
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
