//go:build cgo && linux

package nvml

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "dl.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// errBufLen is the room given to C for a dlerror message or symbol name.
const errBufLen = 512

// cLibrary is the table of dl.c, in C memory.
type cLibrary struct{ t *C.kvc_nvml }

// load opens the NVML library at path and resolves its entry points.
func load(path string) (library, error) {
	t := (*C.kvc_nvml)(C.calloc(1, C.size_t(unsafe.Sizeof(C.kvc_nvml{}))))
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	buf := (*C.char)(C.calloc(1, errBufLen))
	defer C.free(unsafe.Pointer(buf))
	switch C.kvc_nvml_open(t, cpath, buf, errBufLen) {
	case 0:
		return &cLibrary{t}, nil
	case 2:
		C.free(unsafe.Pointer(t))
		return nil, fmt.Errorf("%w: %s lacks %s (driver too old?)", ErrNoLibrary, path, C.GoString(buf))
	}
	C.free(unsafe.Pointer(t))
	return nil, fmt.Errorf("%w: %s", ErrNoLibrary, C.GoString(buf))
}

func (l *cLibrary) close() {
	if l.t != nil {
		C.kvc_nvml_close(l.t)
		C.free(unsafe.Pointer(l.t))
		l.t = nil
	}
}

func (l *cLibrary) init() int     { return int(C.kvc_nvml_init(l.t)) }
func (l *cLibrary) shutdown() int { return int(C.kvc_nvml_shutdown(l.t)) }

func (l *cLibrary) errorString(ret int) string {
	return C.GoString(C.kvc_nvml_error_string(l.t, C.kvc_nvmlReturn(ret)))
}

func (l *cLibrary) driverVersion() (string, int) {
	var buf [C.KVC_NVML_DRIVER_VERSION_LEN]C.char
	if ret := C.kvc_nvml_driver_version(l.t, &buf[0], C.uint(len(buf))); ret != 0 {
		return "", int(ret)
	}
	return goString(buf[:]), 0
}

func (l *cLibrary) deviceCount() (int, int) {
	var n C.uint
	ret := C.kvc_nvml_device_count(l.t, &n)
	return int(n), int(ret)
}

func (l *cLibrary) deviceHandle(index int) (device, int) {
	var d C.kvc_nvmlDevice
	ret := C.kvc_nvml_device_handle(l.t, C.uint(index), &d)
	return device(d), int(ret)
}

func (l *cLibrary) deviceName(d device) (string, int) {
	var buf [C.KVC_NVML_NAME_LEN]C.char
	if ret := C.kvc_nvml_device_name(l.t, C.kvc_nvmlDevice(d), &buf[0], C.uint(len(buf))); ret != 0 {
		return "", int(ret)
	}
	return goString(buf[:]), 0
}

func (l *cLibrary) deviceUUID(d device) (string, int) {
	var buf [C.KVC_NVML_UUID_LEN]C.char
	if ret := C.kvc_nvml_device_uuid(l.t, C.kvc_nvmlDevice(d), &buf[0], C.uint(len(buf))); ret != 0 {
		return "", int(ret)
	}
	return goString(buf[:]), 0
}

func (l *cLibrary) deviceMemory(d device) (memory, int) {
	var m C.kvc_nvmlMemory
	ret := C.kvc_nvml_device_memory(l.t, C.kvc_nvmlDevice(d), &m)
	return memory{totalBytes: uint64(m.total), freeBytes: uint64(m.free), usedBytes: uint64(m.used)}, int(ret)
}

func (l *cLibrary) devicePower(d device) (uint32, int) {
	var mW C.uint
	ret := C.kvc_nvml_device_power(l.t, C.kvc_nvmlDevice(d), &mW)
	return uint32(mW), int(ret)
}

func (l *cLibrary) deviceClock(d device, clock int) (uint32, int) {
	var mhz C.uint
	ret := C.kvc_nvml_device_clock(l.t, C.kvc_nvmlDevice(d), C.int(clock), &mhz)
	return uint32(mhz), int(ret)
}

func (l *cLibrary) deviceUtilization(d device) (utilization, int) {
	var u C.kvc_nvmlUtilization
	ret := C.kvc_nvml_device_utilization(l.t, C.kvc_nvmlDevice(d), &u)
	return utilization{gpuPct: uint32(u.gpu), memoryPct: uint32(u.memory)}, int(ret)
}

// goString returns the NUL-terminated string in buf; all of buf if NVML
// left no NUL.
func goString(buf []C.char) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf))
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// cLayout returns the sizes and field offsets, in bytes, of the C
// declarations in dl.h, for the tests to hold against NVML's documented
// layout.
func cLayout() map[string]uintptr {
	var m C.kvc_nvmlMemory
	var u C.kvc_nvmlUtilization
	var r C.kvc_nvmlReturn
	var d C.kvc_nvmlDevice
	return map[string]uintptr{
		"nvmlReturn_t":                           unsafe.Sizeof(r),
		"nvmlDevice_t":                           unsafe.Sizeof(d),
		"nvmlMemory_t":                           unsafe.Sizeof(m),
		"nvmlMemory_t.total":                     unsafe.Offsetof(m.total),
		"nvmlMemory_t.free":                      unsafe.Offsetof(m.free),
		"nvmlMemory_t.used":                      unsafe.Offsetof(m.used),
		"nvmlUtilization_t":                      unsafe.Sizeof(u),
		"nvmlUtilization_t.gpu":                  unsafe.Offsetof(u.gpu),
		"nvmlUtilization_t.memory":               unsafe.Offsetof(u.memory),
		"NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE": C.KVC_NVML_DRIVER_VERSION_LEN,
		"NVML_DEVICE_NAME_V2_BUFFER_SIZE":        C.KVC_NVML_NAME_LEN,
		"NVML_DEVICE_UUID_V2_BUFFER_SIZE":        C.KVC_NVML_UUID_LEN,
	}
}
