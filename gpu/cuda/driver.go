package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// driverAPI is the CUDA driver as the rest of the package sees it. The cgo
// binding (binding_cgo.go) implements it over entry points loaded with
// dlsym; tests may fake it. Handles (contexts, modules, functions) are C
// pointers the Go side never dereferences. Every method taking ctx makes it
// current on the calling thread first.
type driverAPI interface {
	init() int
	driverVersion() (int, int)
	deviceCount() (int, int)
	deviceGet(ordinal int) (int, int)
	deviceName(dev int) (string, int)
	deviceAttribute(attr, dev int) (int, int)
	deviceTotalMem(dev int) (int64, int)
	primaryRetain(dev int) (unsafe.Pointer, int)
	primaryRelease(dev int) int
	sync(ctx unsafe.Pointer) int
	profile(ctx unsafe.Pointer, on bool) int
	memInfo(ctx unsafe.Pointer) (free, total int64, status int)
	alloc(ctx unsafe.Pointer, bytes int) (DevicePtr, int)
	free(ctx unsafe.Pointer, p DevicePtr) int
	memset32(ctx unsafe.Pointer, p DevicePtr, v uint32, n int) int
	htod(ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes int) int
	dtoh(ctx unsafe.Pointer, dst unsafe.Pointer, src DevicePtr, bytes int) int
	dtod(ctx unsafe.Pointer, dst, src DevicePtr, bytes int) int
	hostAlloc(ctx unsafe.Pointer, bytes int) (unsafe.Pointer, int)
	hostAllocMapped(ctx unsafe.Pointer, bytes int) (unsafe.Pointer, DevicePtr, int)
	hostFree(ctx, p unsafe.Pointer) int
	htodAsync(ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes int) int
	moduleLoad(ctx unsafe.Pointer, image []byte) (unsafe.Pointer, int)
	moduleUnload(ctx unsafe.Pointer, m unsafe.Pointer) int
	moduleFunction(ctx unsafe.Pointer, m unsafe.Pointer, name string) (unsafe.Pointer, int)
	funcAttribute(ctx unsafe.Pointer, f unsafe.Pointer, attr, v int) int
	launch(ctx unsafe.Pointer, f unsafe.Pointer, grid, block Dim3, shared int, args []Arg) int
	errorText(status int) (name, text string)
	close()
}

// DevicePtr is an address in device memory.
type DevicePtr uint64

// Add returns p advanced by bytes.
func (p DevicePtr) Add(bytes int) DevicePtr { return p + DevicePtr(bytes) }

// Dim3 is a grid or block shape.
type Dim3 struct{ X, Y, Z int }

// Arg is one kernel parameter, held in 8 bytes: pointers and 64-bit values
// fill them, 4-byte values (int, float) the low half, which is what a
// kernel reads for a parameter of that type.
type Arg uint64

// Ptr passes a device pointer.
func Ptr(p DevicePtr) Arg { return Arg(p) }

// Int passes a 32-bit int parameter.
func Int(v int) Arg {
	if v < math.MinInt32 || v > math.MaxInt32 {
		panic(fmt.Sprintf("cuda: kernel argument %d overflows int32", v))
	}
	return Arg(uint32(int32(v)))
}

// Int64 passes a 64-bit (long long) parameter.
func Int64(v int64) Arg { return Arg(uint64(v)) }

// Float passes a float parameter.
func Float(v float32) Arg { return Arg(math.Float32bits(v)) }

// Driver is the loaded libcuda.so.1.
type Driver struct {
	api     driverAPI
	Path    string // the library loaded
	Version int    // the driver's CUDA version, 1000·major + 10·minor
}

// OpenDriver loads the driver library and initialises it. Errors wrap
// ErrNoDriver when the library is missing or incomplete, ErrNoDevice when
// it reports no GPU.
func OpenDriver() (*Driver, error) {
	api, path, err := openFirst("libcuda.so.1", ErrNoDriver, []string{"libcuda.so.1"}, loadDriver)
	if err != nil {
		return nil, err
	}
	d := &Driver{api: api, Path: path}
	if st := api.init(); st != 0 {
		err := d.check("cuInit", st)
		if st == errNoDevice {
			err = fmt.Errorf("%w: %v", ErrNoDevice, err)
		}
		api.close()
		return nil, err
	}
	v, st := api.driverVersion()
	if st != 0 {
		api.close()
		return nil, d.check("cuDriverGetVersion", st)
	}
	d.Version = v
	return d, nil
}

// check turns a driver status into an error (nil for success).
func (d *Driver) check(op string, status int) error {
	if status == 0 {
		return nil
	}
	name, text := d.api.errorText(status)
	return &Error{Op: op, Code: status, Name: name, Text: text}
}

// Close unloads the library. Devices opened from it must be closed first.
func (d *Driver) Close() {
	if d.api != nil {
		d.api.close()
		d.api = nil
	}
}

// DeviceCount returns the number of GPUs the driver sees.
func (d *Driver) DeviceCount() (int, error) {
	n, st := d.api.deviceCount()
	return n, d.check("cuDeviceGetCount", st)
}

// Device attributes read at Open (CUdevice_attribute values) and limits.
const (
	attrMultiprocessors   = 16
	attrComputeMajor      = 75
	attrComputeMinor      = 76
	attrSharedPerBlockOpt = 97
	funcMaxDynamicShared  = 8  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
	maxKernelArgs         = 32 // as dl.c's parameter table
)

// Device is one GPU with its primary context retained.
type Device struct {
	drv *Driver
	dev int
	ctx unsafe.Pointer

	Ordinal         int
	Name            string
	Major, Minor    int   // compute capability
	Multiprocessors int   // streaming multiprocessors
	SharedOptin     int   // most dynamic shared memory a block may opt in to, bytes
	TotalMem        int64 // bytes
}

// Open retains the primary context of GPU ordinal and reads its
// properties. An ordinal the driver does not know is an error wrapping
// ErrNoDevice.
func (d *Driver) Open(ordinal int) (*Device, error) {
	n, err := d.DeviceCount()
	if err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("%w: device %d asked for, the driver sees %d", ErrNoDevice, ordinal, n)
	}
	dev, st := d.api.deviceGet(ordinal)
	if err := d.check("cuDeviceGet", st); err != nil {
		return nil, err
	}
	g := &Device{drv: d, dev: dev, Ordinal: ordinal}
	if g.Name, st = d.api.deviceName(dev); st != 0 {
		return nil, d.check("cuDeviceGetName", st)
	}
	for _, a := range []struct {
		attr int
		dst  *int
	}{
		{attrComputeMajor, &g.Major}, {attrComputeMinor, &g.Minor},
		{attrMultiprocessors, &g.Multiprocessors}, {attrSharedPerBlockOpt, &g.SharedOptin},
	} {
		if *a.dst, st = d.api.deviceAttribute(a.attr, dev); st != 0 {
			return nil, d.check("cuDeviceGetAttribute", st)
		}
	}
	if g.TotalMem, st = d.api.deviceTotalMem(dev); st != 0 {
		return nil, d.check("cuDeviceTotalMem", st)
	}
	if g.ctx, st = d.api.primaryRetain(dev); st != 0 {
		return nil, d.check("cuDevicePrimaryCtxRetain", st)
	}
	return g, nil
}

// Arch is the compute capability as NVRTC spells a real architecture,
// e.g. "sm_90".
func (g *Device) Arch() string { return fmt.Sprintf("sm_%d%d", g.Major, g.Minor) }

// Close releases the primary context. Memory and modules of the device
// must not be used afterwards.
func (g *Device) Close() error {
	if g.ctx == nil {
		return nil
	}
	g.ctx = nil
	return g.drv.check("cuDevicePrimaryCtxRelease", g.drv.api.primaryRelease(g.dev))
}

func (g *Device) check(op string, st int) error { return g.drv.check(op, st) }

// Synchronize waits for all queued work and reports the first
// asynchronous failure (a kernel's illegal access, say).
func (g *Device) Synchronize() error { return g.check("cuCtxSynchronize", g.drv.api.sync(g.ctx)) }

// Profile starts (on) or stops the range that a profiler run with its
// collection off at start (ncu --profile-from-start off) records, so that
// a benchmark can be profiled over its timed loop alone. Without a
// profiler, or with a driver that lacks the entry points, it does nothing.
func (g *Device) Profile(on bool) error {
	name := "cuProfilerStop"
	if on {
		name = "cuProfilerStart"
	}
	return g.check(name, g.drv.api.profile(g.ctx, on))
}

// MemInfo returns free and total device memory in bytes.
func (g *Device) MemInfo() (free, total int64, err error) {
	free, total, st := g.drv.api.memInfo(g.ctx)
	return free, total, g.check("cuMemGetInfo", st)
}

// Alloc returns bytes of uninitialised device memory.
func (g *Device) Alloc(bytes int) (DevicePtr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("cuda: allocation of %d bytes", bytes)
	}
	p, st := g.drv.api.alloc(g.ctx, bytes)
	if st != 0 {
		return 0, fmt.Errorf("%w (%d bytes)", g.check("cuMemAlloc", st), bytes)
	}
	return p, nil
}

// Free releases memory from Alloc. The driver waits for work using it.
func (g *Device) Free(p DevicePtr) error { return g.check("cuMemFree", g.drv.api.free(g.ctx, p)) }

// Memset32 sets n 32-bit words at p to v.
func (g *Device) Memset32(p DevicePtr, v uint32, n int) error {
	if n == 0 {
		return nil
	}
	return g.check("cuMemsetD32", g.drv.api.memset32(g.ctx, p, v, n))
}

// CopyDtoD copies bytes between device buffers, in stream order.
func (g *Device) CopyDtoD(dst, src DevicePtr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	return g.check("cuMemcpyDtoD", g.drv.api.dtod(g.ctx, dst, src, bytes))
}

// Plain are element types copied between host and device as raw bytes.
type Plain interface {
	~float32 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~uint16 | ~byte
}

// Upload copies src to device memory at dst. The copy is ordered after
// earlier work, and src may be reused when it returns.
func Upload[T Plain](g *Device, dst DevicePtr, src []T) error {
	if len(src) == 0 {
		return nil
	}
	bytes := len(src) * int(unsafe.Sizeof(src[0]))
	return g.check("cuMemcpyHtoD", g.drv.api.htod(g.ctx, dst, unsafe.Pointer(&src[0]), bytes))
}

// Download copies len(dst) elements from device memory at src, after all
// earlier work has finished; it reports asynchronous failures of that work.
func Download[T Plain](g *Device, dst []T, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	bytes := len(dst) * int(unsafe.Sizeof(dst[0]))
	return g.check("cuMemcpyDtoH", g.drv.api.dtoh(g.ctx, unsafe.Pointer(&dst[0]), src, bytes))
}

// AllocHost returns bytes of page-locked host memory, from which
// UploadAsync copies without waiting for the device. Free it with
// FreeHost.
func (g *Device) AllocHost(bytes int) ([]byte, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("cuda: AllocHost of %d bytes", bytes)
	}
	p, st := g.drv.api.hostAlloc(g.ctx, bytes)
	if st != 0 {
		return nil, g.check("cuMemHostAlloc", st)
	}
	return unsafe.Slice((*byte)(p), bytes), nil
}

// AllocMapped returns bytes of page-locked host memory mapped into the
// device's address space, usable from every context, and the device
// address kernels reach it at (with unified addressing, the host
// address). Kernels read and write it across the bus. Free it with
// FreeHost.
func (g *Device) AllocMapped(bytes int) ([]byte, DevicePtr, error) {
	if bytes <= 0 {
		return nil, 0, fmt.Errorf("cuda: AllocMapped of %d bytes", bytes)
	}
	p, dp, st := g.drv.api.hostAllocMapped(g.ctx, bytes)
	if st != 0 {
		return nil, 0, fmt.Errorf("%w (%d bytes)", g.check("cuMemHostAlloc", st), bytes)
	}
	return unsafe.Slice((*byte)(p), bytes), dp, nil
}

// FreeHost releases memory from AllocHost or AllocMapped, which must no
// longer be used.
func (g *Device) FreeHost(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return g.check("cuMemFreeHost", g.drv.api.hostFree(g.ctx, unsafe.Pointer(&b[0])))
}

// UploadAsync queues a copy of src, which must lie in memory from
// AllocHost, to device memory at dst, in stream order after earlier work,
// and returns without waiting: src must not change until the copy is done
// (after the next call that synchronises, such as Synchronize or
// Download).
func UploadAsync(g *Device, dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return g.check("cuMemcpyHtoDAsync", g.drv.api.htodAsync(g.ctx, dst, unsafe.Pointer(&src[0]), len(src)))
}

// Module is loaded device code.
type Module struct {
	g *Device
	m unsafe.Pointer
}

// LoadModule loads a cubin, or PTX ending in a NUL byte, which the driver
// then compiles for the device.
func (g *Device) LoadModule(image []byte) (*Module, error) {
	if len(image) == 0 {
		return nil, errors.New("cuda: empty module image")
	}
	m, st := g.drv.api.moduleLoad(g.ctx, image)
	if st != 0 {
		return nil, g.check("cuModuleLoadData", st)
	}
	return &Module{g: g, m: m}, nil
}

// Unload releases the module; its functions must not be launched again.
func (m *Module) Unload() error {
	if m.m == nil {
		return nil
	}
	st := m.g.drv.api.moduleUnload(m.g.ctx, m.m)
	m.m = nil
	return m.g.check("cuModuleUnload", st)
}

// Function looks up an extern "C" kernel of the module.
func (m *Module) Function(name string) (*Function, error) {
	f, st := m.g.drv.api.moduleFunction(m.g.ctx, m.m, name)
	if st != 0 {
		return nil, fmt.Errorf("kernel %s: %w", name, m.g.check("cuModuleGetFunction", st))
	}
	return &Function{g: m.g, f: f, Name: name}, nil
}

// Function is a kernel ready to launch.
type Function struct {
	g         *Device
	f         unsafe.Pointer
	Name      string
	maxShared int // dynamic shared memory allowed per block as last set, bytes
}

// Launch queues the kernel on the default stream with shared bytes of
// dynamic shared memory, raising the kernel's limit first when shared is
// over what it was set to: on the first launch with any, since the
// default 48 KiB counts the kernel's static shared memory too. A zero Y
// or Z extent is read as 1; a grid with no X extent launches nothing. Errors are those of the launch itself;
// failures while the kernel runs surface at the next synchronising call.
func (f *Function) Launch(grid, block Dim3, shared int, args ...Arg) error {
	if grid.X <= 0 {
		return nil
	}
	if block.X <= 0 {
		return fmt.Errorf("kernel %s: block %v", f.Name, block)
	}
	if len(args) > maxKernelArgs {
		return fmt.Errorf("kernel %s: %d arguments, at most %d", f.Name, len(args), maxKernelArgs)
	}
	if shared > f.maxShared {
		if shared > f.g.SharedOptin {
			return fmt.Errorf("kernel %s: %d bytes of shared memory, the device allows %d", f.Name, shared, f.g.SharedOptin)
		}
		if st := f.g.drv.api.funcAttribute(f.g.ctx, f.f, funcMaxDynamicShared, shared); st != 0 {
			return fmt.Errorf("kernel %s: %w", f.Name, f.g.check("cuFuncSetAttribute", st))
		}
		f.maxShared = shared
	}
	grid, block = grid.norm(), block.norm()
	if st := f.g.drv.api.launch(f.g.ctx, f.f, grid, block, shared, args); st != 0 {
		return fmt.Errorf("kernel %s grid %v block %v: %w", f.Name, grid, block, f.g.check("cuLaunchKernel", st))
	}
	return nil
}

// norm reads zero Y and Z extents as 1.
func (d Dim3) norm() Dim3 {
	return Dim3{d.X, max(d.Y, 1), max(d.Z, 1)}
}
