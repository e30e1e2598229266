//go:build cgo && linux

package cuda

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "dl.h"
*/
import "C"

import (
	"unsafe"
)

// errBufLen is the room given to C for a dlerror message or symbol name.
const errBufLen = 512

// openTable runs a kvc_*_open function on a fresh C-allocated table and
// turns its result into an error.
func openTable[T any](path string, open func(t *T, path *C.char, err *C.char, n C.int) C.int) (*T, error) {
	t := (*T)(C.calloc(1, C.size_t(unsafe.Sizeof(*new(T)))))
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	buf := (*C.char)(C.calloc(1, errBufLen))
	defer C.free(unsafe.Pointer(buf))
	switch open(t, cpath, buf, errBufLen) {
	case 0:
		return t, nil
	case 2:
		C.free(unsafe.Pointer(t))
		return nil, &missingSymbol{lib: path, symbol: C.GoString(buf)}
	}
	C.free(unsafe.Pointer(t))
	return nil, &dlError{C.GoString(buf)}
}

// preload loads the library at path so that libraries loaded later find it
// by its soname; the returned function unloads it.
func preload(path string) (func(), error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	buf := (*C.char)(C.calloc(1, errBufLen))
	defer C.free(unsafe.Pointer(buf))
	h := C.kvc_dlopen_global(cpath, buf, errBufLen)
	if h == nil {
		return nil, &dlError{C.GoString(buf)}
	}
	return func() { C.kvc_dlclose(h) }, nil
}

// cDriver is the driver table of dl.c.
type cDriver struct{ t *C.kvc_cuda }

func loadDriver(path string) (driverAPI, error) {
	t, err := openTable(path, func(t *C.kvc_cuda, p, e *C.char, n C.int) C.int { return C.kvc_cuda_open(t, p, e, n) })
	if err != nil {
		return nil, err
	}
	return &cDriver{t}, nil
}

func (d *cDriver) close() {
	if d.t != nil {
		C.kvc_cuda_close(d.t)
		C.free(unsafe.Pointer(d.t))
		d.t = nil
	}
}

func (d *cDriver) init() int { return int(C.kvc_cu_init(d.t)) }

func (d *cDriver) driverVersion() (int, int) {
	var v C.int
	st := C.kvc_cu_driver_version(d.t, &v)
	return int(v), int(st)
}

func (d *cDriver) deviceCount() (int, int) {
	var n C.int
	st := C.kvc_cu_device_count(d.t, &n)
	return int(n), int(st)
}

func (d *cDriver) deviceGet(ordinal int) (int, int) {
	var dev C.kvc_CUdevice
	st := C.kvc_cu_device_get(d.t, &dev, C.int(ordinal))
	return int(dev), int(st)
}

func (d *cDriver) deviceName(dev int) (string, int) {
	var buf [256]C.char
	st := C.kvc_cu_device_name(d.t, &buf[0], C.int(len(buf)), C.kvc_CUdevice(dev))
	if st != 0 {
		return "", int(st)
	}
	return C.GoString(&buf[0]), 0
}

func (d *cDriver) deviceAttribute(attr, dev int) (int, int) {
	var v C.int
	st := C.kvc_cu_device_attribute(d.t, &v, C.int(attr), C.kvc_CUdevice(dev))
	return int(v), int(st)
}

func (d *cDriver) deviceTotalMem(dev int) (int64, int) {
	var n C.size_t
	st := C.kvc_cu_device_total_mem(d.t, &n, C.kvc_CUdevice(dev))
	return int64(n), int(st)
}

func (d *cDriver) primaryRetain(dev int) (unsafe.Pointer, int) {
	var ctx C.kvc_CUcontext
	st := C.kvc_cu_primary_retain(d.t, &ctx, C.kvc_CUdevice(dev))
	return unsafe.Pointer(ctx), int(st)
}

func (d *cDriver) primaryRelease(dev int) int {
	return int(C.kvc_cu_primary_release(d.t, C.kvc_CUdevice(dev)))
}

func (d *cDriver) sync(ctx unsafe.Pointer) int {
	return int(C.kvc_cu_sync(d.t, C.kvc_CUcontext(ctx)))
}

func (d *cDriver) profile(ctx unsafe.Pointer, on bool) int {
	o := C.int(0)
	if on {
		o = 1
	}
	return int(C.kvc_cu_profile(d.t, C.kvc_CUcontext(ctx), o))
}

func (d *cDriver) memInfo(ctx unsafe.Pointer) (int64, int64, int) {
	var free, total C.size_t
	st := C.kvc_cu_mem_info(d.t, C.kvc_CUcontext(ctx), &free, &total)
	return int64(free), int64(total), int(st)
}

func (d *cDriver) alloc(ctx unsafe.Pointer, bytes int) (DevicePtr, int) {
	var p C.kvc_CUdeviceptr
	st := C.kvc_cu_alloc(d.t, C.kvc_CUcontext(ctx), &p, C.size_t(bytes))
	return DevicePtr(p), int(st)
}

func (d *cDriver) free(ctx unsafe.Pointer, p DevicePtr) int {
	return int(C.kvc_cu_free(d.t, C.kvc_CUcontext(ctx), C.kvc_CUdeviceptr(p)))
}

func (d *cDriver) memset32(ctx unsafe.Pointer, p DevicePtr, v uint32, n int) int {
	return int(C.kvc_cu_memset32(d.t, C.kvc_CUcontext(ctx), C.kvc_CUdeviceptr(p), C.uint(v), C.size_t(n)))
}

func (d *cDriver) htod(ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes int) int {
	return int(C.kvc_cu_htod(d.t, C.kvc_CUcontext(ctx), C.kvc_CUdeviceptr(dst), src, C.size_t(bytes)))
}

func (d *cDriver) dtoh(ctx unsafe.Pointer, dst unsafe.Pointer, src DevicePtr, bytes int) int {
	return int(C.kvc_cu_dtoh(d.t, C.kvc_CUcontext(ctx), dst, C.kvc_CUdeviceptr(src), C.size_t(bytes)))
}

func (d *cDriver) dtod(ctx unsafe.Pointer, dst, src DevicePtr, bytes int) int {
	return int(C.kvc_cu_dtod(d.t, C.kvc_CUcontext(ctx), C.kvc_CUdeviceptr(dst), C.kvc_CUdeviceptr(src), C.size_t(bytes)))
}

func (d *cDriver) hostAlloc(ctx unsafe.Pointer, bytes int) (unsafe.Pointer, int) {
	var p unsafe.Pointer
	st := C.kvc_cu_host_alloc(d.t, C.kvc_CUcontext(ctx), &p, C.size_t(bytes))
	return p, int(st)
}

func (d *cDriver) hostAllocMapped(ctx unsafe.Pointer, bytes int) (unsafe.Pointer, DevicePtr, int) {
	var p unsafe.Pointer
	var dp C.kvc_CUdeviceptr
	st := C.kvc_cu_host_alloc_mapped(d.t, C.kvc_CUcontext(ctx), &p, &dp, C.size_t(bytes))
	return p, DevicePtr(dp), int(st)
}

func (d *cDriver) hostFree(ctx, p unsafe.Pointer) int {
	return int(C.kvc_cu_host_free(d.t, C.kvc_CUcontext(ctx), p))
}

func (d *cDriver) htodAsync(ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes int) int {
	return int(C.kvc_cu_htod_async(d.t, C.kvc_CUcontext(ctx), C.kvc_CUdeviceptr(dst), src, C.size_t(bytes)))
}

func (d *cDriver) moduleLoad(ctx unsafe.Pointer, image []byte) (unsafe.Pointer, int) {
	var m C.kvc_CUmodule
	st := C.kvc_cu_module_load(d.t, C.kvc_CUcontext(ctx), &m, unsafe.Pointer(&image[0]))
	return unsafe.Pointer(m), int(st)
}

func (d *cDriver) moduleUnload(ctx, m unsafe.Pointer) int {
	return int(C.kvc_cu_module_unload(d.t, C.kvc_CUcontext(ctx), C.kvc_CUmodule(m)))
}

func (d *cDriver) moduleFunction(ctx, m unsafe.Pointer, name string) (unsafe.Pointer, int) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var f C.kvc_CUfunction
	st := C.kvc_cu_module_function(d.t, C.kvc_CUcontext(ctx), &f, C.kvc_CUmodule(m), cname)
	return unsafe.Pointer(f), int(st)
}

func (d *cDriver) funcAttribute(ctx, f unsafe.Pointer, attr, v int) int {
	return int(C.kvc_cu_func_attribute(d.t, C.kvc_CUcontext(ctx), C.kvc_CUfunction(f), C.int(attr), C.int(v)))
}

func (d *cDriver) launch(ctx, f unsafe.Pointer, grid, block Dim3, shared int, args []Arg) int {
	var argp *C.ulonglong
	if len(args) > 0 {
		argp = (*C.ulonglong)(unsafe.Pointer(&args[0]))
	}
	return int(C.kvc_cu_launch(d.t, C.kvc_CUcontext(ctx), C.kvc_CUfunction(f),
		C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z), C.uint(block.X), C.uint(block.Y), C.uint(block.Z),
		C.uint(shared), argp, C.int(len(args))))
}

func (d *cDriver) errorText(status int) (string, string) {
	var name, text *C.char
	C.kvc_cu_error_text(d.t, C.kvc_CUresult(status), &name, &text)
	return C.GoString(name), C.GoString(text)
}

// cNVRTC is the NVRTC table of dl.c.
type cNVRTC struct{ t *C.kvc_nvrtc }

func loadNVRTC(path string) (nvrtcAPI, error) {
	t, err := openTable(path, func(t *C.kvc_nvrtc, p, e *C.char, n C.int) C.int { return C.kvc_nvrtc_open(t, p, e, n) })
	if err != nil {
		return nil, err
	}
	return &cNVRTC{t}, nil
}

func (n *cNVRTC) close() {
	if n.t != nil {
		C.kvc_nvrtc_close(n.t)
		C.free(unsafe.Pointer(n.t))
		n.t = nil
	}
}

func (n *cNVRTC) version() (int, int, int) {
	var major, minor C.int
	st := C.kvc_nvrtc_version(n.t, &major, &minor)
	return int(major), int(minor), int(st)
}

func (n *cNVRTC) hasCUBIN() bool { return C.kvc_nvrtc_has_cubin(n.t) != 0 }

func (n *cNVRTC) errorText(status int) string {
	return C.GoString(C.kvc_nvrtc_error(n.t, C.int(status)))
}

func (n *cNVRTC) compile(src, name string, opts []string, cubin bool) ([]byte, string, string, int) {
	csrc, cname := C.CString(src), C.CString(name)
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	var prog C.kvc_nvrtcProgram
	if st := C.kvc_nvrtc_create(n.t, &prog, csrc, cname); st != 0 {
		return nil, "", "nvrtcCreateProgram", int(st)
	}
	defer C.kvc_nvrtc_destroy(n.t, &prog)
	// The option strings live in C memory; the array of their addresses
	// does too, so that no Go memory holding C pointers crosses over.
	copts := (**C.char)(C.calloc(C.size_t(max(len(opts), 1)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	defer C.free(unsafe.Pointer(copts))
	list := unsafe.Slice(copts, max(len(opts), 1))
	for i, o := range opts {
		list[i] = C.CString(o)
		defer C.free(unsafe.Pointer(list[i]))
	}
	cst := C.kvc_nvrtc_compile(n.t, prog, C.int(len(opts)), copts)
	log := n.log(prog)
	if cst != 0 {
		return nil, log, "nvrtcCompileProgram", int(cst)
	}
	flag := C.int(0)
	if cubin {
		flag = 1
	}
	var size C.size_t
	if st := C.kvc_nvrtc_code_size(n.t, prog, flag, &size); st != 0 {
		return nil, log, "nvrtcGetCodeSize", int(st)
	}
	if size == 0 {
		return nil, log, "nvrtcGetCodeSize", 1
	}
	code := make([]byte, int(size))
	if st := C.kvc_nvrtc_code(n.t, prog, flag, (*C.char)(unsafe.Pointer(&code[0]))); st != 0 {
		return nil, log, "nvrtcGetCode", int(st)
	}
	return code, log, "", 0
}

func (n *cNVRTC) log(prog C.kvc_nvrtcProgram) string {
	var size C.size_t
	if C.kvc_nvrtc_log_size(n.t, prog, &size) != 0 || size <= 1 {
		return ""
	}
	buf := make([]byte, int(size))
	if C.kvc_nvrtc_log(n.t, prog, (*C.char)(unsafe.Pointer(&buf[0]))) != 0 {
		return ""
	}
	return string(buf[:len(buf)-1])
}

// cCUBLAS is the cuBLAS table of dl.c.
type cCUBLAS struct{ t *C.kvc_cublas }

func loadCUBLAS(path string) (cublasAPI, error) {
	t, err := openTable(path, func(t *C.kvc_cublas, p, e *C.char, n C.int) C.int { return C.kvc_cublas_open(t, p, e, n) })
	if err != nil {
		return nil, err
	}
	return &cCUBLAS{t}, nil
}

func (b *cCUBLAS) close() {
	if b.t != nil {
		C.kvc_cublas_close(b.t)
		C.free(unsafe.Pointer(b.t))
		b.t = nil
	}
}

// table returns the C driver table behind drv.
func table(drv driverAPI) *C.kvc_cuda { return drv.(*cDriver).t }

func (b *cCUBLAS) create(drv driverAPI, ctx unsafe.Pointer) (unsafe.Pointer, int) {
	var h C.kvc_cublasHandle
	st := C.kvc_cublas_create(b.t, table(drv), C.kvc_CUcontext(ctx), &h)
	return unsafe.Pointer(h), int(st)
}

func (b *cCUBLAS) destroy(drv driverAPI, ctx, h unsafe.Pointer) int {
	return int(C.kvc_cublas_destroy(b.t, table(drv), C.kvc_CUcontext(ctx), C.kvc_cublasHandle(h)))
}

func (b *cCUBLAS) version(h unsafe.Pointer) (int, int) {
	var v C.int
	st := C.kvc_cublas_version(b.t, C.kvc_cublasHandle(h), &v)
	return int(v), int(st)
}

func (b *cCUBLAS) setMathMode(h unsafe.Pointer, mode int) int {
	return int(C.kvc_cublas_math_mode(b.t, C.kvc_cublasHandle(h), C.int(mode)))
}

func (b *cCUBLAS) sgemm(drv driverAPI, ctx, h unsafe.Pointer, transA, transB, m, n, k int, alpha float32,
	a DevicePtr, lda int, bm DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) int {
	return int(C.kvc_cublas_sgemm(b.t, table(drv), C.kvc_CUcontext(ctx), C.kvc_cublasHandle(h),
		C.int(transA), C.int(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.kvc_CUdeviceptr(a), C.int(lda), C.kvc_CUdeviceptr(bm), C.int(ldb), C.float(beta),
		C.kvc_CUdeviceptr(c), C.int(ldc)))
}

// cCUBLASLt is the cuBLASLt table of dl.c.
type cCUBLASLt struct{ t *C.kvc_cublaslt }

func loadCUBLASLt(path string) (cublasLtAPI, error) {
	t, err := openTable(path, func(t *C.kvc_cublaslt, p, e *C.char, n C.int) C.int { return C.kvc_cublaslt_open(t, p, e, n) })
	if err != nil {
		return nil, err
	}
	return &cCUBLASLt{t}, nil
}

func (l *cCUBLASLt) close() {
	if l.t != nil {
		C.kvc_cublaslt_close(l.t)
		C.free(unsafe.Pointer(l.t))
		l.t = nil
	}
}

func (l *cCUBLASLt) create(drv driverAPI, ctx unsafe.Pointer) (unsafe.Pointer, int) {
	var h C.kvc_ltHandle
	st := C.kvc_lt_create(l.t, table(drv), C.kvc_CUcontext(ctx), &h)
	return unsafe.Pointer(h), int(st)
}

func (l *cCUBLASLt) destroy(drv driverAPI, ctx, h unsafe.Pointer) int {
	return int(C.kvc_lt_destroy(l.t, table(drv), C.kvc_CUcontext(ctx), C.kvc_ltHandle(h)))
}

func (l *cCUBLASLt) version() int { return int(C.kvc_lt_version(l.t)) }

func (l *cCUBLASLt) descCreate(computeType, scaleType int) (unsafe.Pointer, int) {
	var d C.kvc_ltDesc
	st := C.kvc_lt_desc_create(l.t, &d, C.int(computeType), C.int(scaleType))
	return unsafe.Pointer(d), int(st)
}

func (l *cCUBLASLt) descSet(desc unsafe.Pointer, attr int, v uint64, size int) int {
	return int(C.kvc_lt_desc_set(l.t, C.kvc_ltDesc(desc), C.int(attr), C.ulonglong(v), C.int(size)))
}

func (l *cCUBLASLt) descDestroy(desc unsafe.Pointer) int {
	return int(C.kvc_lt_desc_destroy(l.t, C.kvc_ltDesc(desc)))
}

func (l *cCUBLASLt) layoutCreate(dtype int, rows, cols uint64, ld int64) (unsafe.Pointer, int) {
	var lay C.kvc_ltLayout
	st := C.kvc_lt_layout_create(l.t, &lay, C.int(dtype), C.ulonglong(rows), C.ulonglong(cols), C.longlong(ld))
	return unsafe.Pointer(lay), int(st)
}

func (l *cCUBLASLt) layoutDestroy(layout unsafe.Pointer) int {
	return int(C.kvc_lt_layout_destroy(l.t, C.kvc_ltLayout(layout)))
}

func (l *cCUBLASLt) prefCreate() (unsafe.Pointer, int) {
	var p C.kvc_ltPref
	st := C.kvc_lt_pref_create(l.t, &p)
	return unsafe.Pointer(p), int(st)
}

func (l *cCUBLASLt) prefSet(pref unsafe.Pointer, attr int, v uint64, size int) int {
	return int(C.kvc_lt_pref_set(l.t, C.kvc_ltPref(pref), C.int(attr), C.ulonglong(v), C.int(size)))
}

func (l *cCUBLASLt) prefDestroy(pref unsafe.Pointer) int {
	return int(C.kvc_lt_pref_destroy(l.t, C.kvc_ltPref(pref)))
}

func (l *cCUBLASLt) heuristic(drv driverAPI, ctx, h, desc, a, b, c, d, pref unsafe.Pointer, out []ltHeuristic) (int, int) {
	if len(out) == 0 {
		return 0, 0
	}
	// The results live in C memory: cuBLASLt writes them there.
	res := (*C.kvc_ltHeuristic)(C.calloc(C.size_t(len(out)), C.size_t(unsafe.Sizeof(C.kvc_ltHeuristic{}))))
	defer C.free(unsafe.Pointer(res))
	var n C.int
	st := C.kvc_lt_heuristic(l.t, table(drv), C.kvc_CUcontext(ctx), C.kvc_ltHandle(h), C.kvc_ltDesc(desc),
		C.kvc_ltLayout(a), C.kvc_ltLayout(b), C.kvc_ltLayout(c), C.kvc_ltLayout(d), C.kvc_ltPref(pref),
		C.int(len(out)), res, &n)
	if st != 0 {
		return 0, int(st)
	}
	got := min(int(n), len(out))
	for i, r := range unsafe.Slice(res, len(out))[:got] {
		for j := range out[i].algo {
			out[i].algo[j] = uint64(r.algo.data[j])
		}
		out[i].workspace = int(r.workspaceSize)
		out[i].state = int(r.state)
		out[i].waves = float32(r.wavesCount)
	}
	return got, 0
}

func (l *cCUBLASLt) matmul(drv driverAPI, ctx, h, desc unsafe.Pointer, alpha, beta float32,
	a DevicePtr, al unsafe.Pointer, b DevicePtr, bl unsafe.Pointer,
	c DevicePtr, cl unsafe.Pointer, d DevicePtr, dl unsafe.Pointer,
	algo *ltAlgo, workspace DevicePtr, workspaceBytes int) int {
	var ca C.kvc_ltAlgo
	for i, w := range algo {
		ca.data[i] = C.ulonglong(w)
	}
	return int(C.kvc_lt_matmul(l.t, table(drv), C.kvc_CUcontext(ctx), C.kvc_ltHandle(h), C.kvc_ltDesc(desc),
		C.float(alpha), C.kvc_CUdeviceptr(a), C.kvc_ltLayout(al), C.kvc_CUdeviceptr(b), C.kvc_ltLayout(bl),
		C.float(beta), C.kvc_CUdeviceptr(c), C.kvc_ltLayout(cl), C.kvc_CUdeviceptr(d), C.kvc_ltLayout(dl),
		&ca, C.kvc_CUdeviceptr(workspace), C.size_t(workspaceBytes)))
}
