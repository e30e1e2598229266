// dl.h declares the tables of entry points that package cuda loads with
// dlopen/dlsym from the NVIDIA driver (libcuda.so.1), NVRTC (libnvrtc.so)
// and cuBLAS (libcublas.so), and the small C wrappers Go calls them through
// (Go cannot call a C function pointer directly). No CUDA header is needed:
// the few types used are declared here with the sizes the CUDA ABI fixes.
#ifndef KVC_DL_H
#define KVC_DL_H

#include <stddef.h>

typedef int kvc_CUresult;
typedef int kvc_CUdevice;
typedef void *kvc_CUcontext;
typedef void *kvc_CUmodule;
typedef void *kvc_CUfunction;
typedef void *kvc_CUstream;
typedef unsigned long long kvc_CUdeviceptr;

// kvc_cuda holds the driver library handle and its entry points.
typedef struct {
	void *handle;
	kvc_CUresult (*cuInit)(unsigned);
	kvc_CUresult (*cuDriverGetVersion)(int *);
	kvc_CUresult (*cuDeviceGetCount)(int *);
	kvc_CUresult (*cuDeviceGet)(kvc_CUdevice *, int);
	kvc_CUresult (*cuDeviceGetName)(char *, int, kvc_CUdevice);
	kvc_CUresult (*cuDeviceGetAttribute)(int *, int, kvc_CUdevice);
	kvc_CUresult (*cuDeviceTotalMem)(size_t *, kvc_CUdevice);
	kvc_CUresult (*cuDevicePrimaryCtxRetain)(kvc_CUcontext *, kvc_CUdevice);
	kvc_CUresult (*cuDevicePrimaryCtxRelease)(kvc_CUdevice);
	kvc_CUresult (*cuCtxSetCurrent)(kvc_CUcontext);
	kvc_CUresult (*cuCtxSynchronize)(void);
	kvc_CUresult (*cuMemAlloc)(kvc_CUdeviceptr *, size_t);
	kvc_CUresult (*cuMemFree)(kvc_CUdeviceptr);
	kvc_CUresult (*cuMemGetInfo)(size_t *, size_t *);
	kvc_CUresult (*cuMemsetD32)(kvc_CUdeviceptr, unsigned, size_t);
	kvc_CUresult (*cuMemcpyHtoD)(kvc_CUdeviceptr, const void *, size_t);
	kvc_CUresult (*cuMemcpyDtoH)(void *, kvc_CUdeviceptr, size_t);
	kvc_CUresult (*cuMemcpyDtoD)(kvc_CUdeviceptr, kvc_CUdeviceptr, size_t);
	kvc_CUresult (*cuMemHostAlloc)(void **, size_t, unsigned);
	kvc_CUresult (*cuMemFreeHost)(void *);
	kvc_CUresult (*cuMemHostGetDevicePointer)(kvc_CUdeviceptr *, void *, unsigned);
	kvc_CUresult (*cuMemcpyHtoDAsync)(kvc_CUdeviceptr, const void *, size_t, kvc_CUstream);
	kvc_CUresult (*cuModuleLoadData)(kvc_CUmodule *, const void *);
	kvc_CUresult (*cuModuleUnload)(kvc_CUmodule);
	kvc_CUresult (*cuModuleGetFunction)(kvc_CUfunction *, kvc_CUmodule, const char *);
	kvc_CUresult (*cuFuncSetAttribute)(kvc_CUfunction, int, int);
	kvc_CUresult (*cuLaunchKernel)(kvc_CUfunction, unsigned, unsigned, unsigned,
		unsigned, unsigned, unsigned, unsigned, kvc_CUstream, void **, void **);
	kvc_CUresult (*cuGetErrorString)(kvc_CUresult, const char **);
	kvc_CUresult (*cuGetErrorName)(kvc_CUresult, const char **);
	kvc_CUresult (*cuProfilerStart)(void); // optional
	kvc_CUresult (*cuProfilerStop)(void);  // optional
} kvc_cuda;

// kvc_cuda_open dlopens path and resolves every entry point. It returns 0,
// 1 when the library cannot be opened (err holds dlerror's text) or 2 when a
// symbol is missing (err names it); err has room for errlen bytes.
int kvc_cuda_open(kvc_cuda *t, const char *path, char *err, int errlen);
void kvc_cuda_close(kvc_cuda *t);

// The wrappers below make ctx current on the calling thread first (a Go
// goroutine may run on any thread), then make one driver call.
kvc_CUresult kvc_cu_init(kvc_cuda *t);
kvc_CUresult kvc_cu_driver_version(kvc_cuda *t, int *v);
kvc_CUresult kvc_cu_device_count(kvc_cuda *t, int *n);
kvc_CUresult kvc_cu_device_get(kvc_cuda *t, kvc_CUdevice *d, int ordinal);
kvc_CUresult kvc_cu_device_name(kvc_cuda *t, char *name, int len, kvc_CUdevice d);
kvc_CUresult kvc_cu_device_attribute(kvc_cuda *t, int *v, int attr, kvc_CUdevice d);
kvc_CUresult kvc_cu_device_total_mem(kvc_cuda *t, size_t *bytes, kvc_CUdevice d);
kvc_CUresult kvc_cu_primary_retain(kvc_cuda *t, kvc_CUcontext *ctx, kvc_CUdevice d);
kvc_CUresult kvc_cu_primary_release(kvc_cuda *t, kvc_CUdevice d);
kvc_CUresult kvc_cu_sync(kvc_cuda *t, kvc_CUcontext ctx);
// kvc_cu_profile starts (on != 0) or stops the range a profiler started
// with its collection off records; it does nothing where the driver lacks
// the entry points.
kvc_CUresult kvc_cu_profile(kvc_cuda *t, kvc_CUcontext ctx, int on);
kvc_CUresult kvc_cu_mem_info(kvc_cuda *t, kvc_CUcontext ctx, size_t *free, size_t *total);
kvc_CUresult kvc_cu_alloc(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr *p, size_t bytes);
kvc_CUresult kvc_cu_free(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr p);
kvc_CUresult kvc_cu_memset32(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr p, unsigned v, size_t n);
kvc_CUresult kvc_cu_htod(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr dst, const void *src, size_t bytes);
kvc_CUresult kvc_cu_dtoh(kvc_cuda *t, kvc_CUcontext ctx, void *dst, kvc_CUdeviceptr src, size_t bytes);
kvc_CUresult kvc_cu_dtod(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr dst, kvc_CUdeviceptr src, size_t bytes);
// kvc_cu_host_alloc allocates page-locked host memory; kvc_cu_htod_async
// copies from it on the legacy default stream, the one kernels launch on.
kvc_CUresult kvc_cu_host_alloc(kvc_cuda *t, kvc_CUcontext ctx, void **p, size_t bytes);
kvc_CUresult kvc_cu_host_free(kvc_cuda *t, kvc_CUcontext ctx, void *p);
// kvc_cu_host_alloc_mapped allocates page-locked host memory that every
// context may use (CU_MEMHOSTALLOC_PORTABLE) mapped into the device's
// address space (CU_MEMHOSTALLOC_DEVICEMAP), and sets dp to its device
// address (with unified addressing, p itself).
kvc_CUresult kvc_cu_host_alloc_mapped(kvc_cuda *t, kvc_CUcontext ctx, void **p, kvc_CUdeviceptr *dp, size_t bytes);
kvc_CUresult kvc_cu_htod_async(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr dst, const void *src, size_t bytes);
kvc_CUresult kvc_cu_module_load(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUmodule *m, const void *image);
kvc_CUresult kvc_cu_module_unload(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUmodule m);
kvc_CUresult kvc_cu_module_function(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUfunction *f, kvc_CUmodule m, const char *name);
kvc_CUresult kvc_cu_func_attribute(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUfunction f, int attr, int v);
// kvc_cu_launch passes args[i] by address as the i-th kernel parameter:
// each parameter occupies 8 bytes, little-endian, so 4-byte parameters read
// the low half.
kvc_CUresult kvc_cu_launch(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUfunction f,
	unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
	unsigned shared, unsigned long long *args, int nargs);
// kvc_cu_error_text fills name and text for r; either may be "".
void kvc_cu_error_text(kvc_cuda *t, kvc_CUresult r, const char **name, const char **text);

// kvc_nvrtc holds the NVRTC library handle and its entry points. getCUBIN
// and getCUBINSize are optional (NVRTC before 11.1 lacks them).
typedef void *kvc_nvrtcProgram;
typedef struct {
	void *handle;
	int (*version)(int *, int *);
	const char *(*getErrorString)(int);
	int (*createProgram)(kvc_nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
	int (*destroyProgram)(kvc_nvrtcProgram *);
	int (*compileProgram)(kvc_nvrtcProgram, int, const char *const *);
	int (*getProgramLogSize)(kvc_nvrtcProgram, size_t *);
	int (*getProgramLog)(kvc_nvrtcProgram, char *);
	int (*getPTXSize)(kvc_nvrtcProgram, size_t *);
	int (*getPTX)(kvc_nvrtcProgram, char *);
	int (*getCUBINSize)(kvc_nvrtcProgram, size_t *);
	int (*getCUBIN)(kvc_nvrtcProgram, char *);
} kvc_nvrtc;

int kvc_nvrtc_open(kvc_nvrtc *t, const char *path, char *err, int errlen);
void kvc_nvrtc_close(kvc_nvrtc *t);
int kvc_nvrtc_has_cubin(kvc_nvrtc *t);
int kvc_nvrtc_version(kvc_nvrtc *t, int *major, int *minor);
const char *kvc_nvrtc_error(kvc_nvrtc *t, int r);
int kvc_nvrtc_create(kvc_nvrtc *t, kvc_nvrtcProgram *p, const char *src, const char *name);
int kvc_nvrtc_destroy(kvc_nvrtc *t, kvc_nvrtcProgram *p);
int kvc_nvrtc_compile(kvc_nvrtc *t, kvc_nvrtcProgram p, int nopts, char **opts);
int kvc_nvrtc_log_size(kvc_nvrtc *t, kvc_nvrtcProgram p, size_t *n);
int kvc_nvrtc_log(kvc_nvrtc *t, kvc_nvrtcProgram p, char *dst);
// kvc_nvrtc_code_size and kvc_nvrtc_code read the CUBIN when cubin is set,
// else the PTX.
int kvc_nvrtc_code_size(kvc_nvrtc *t, kvc_nvrtcProgram p, int cubin, size_t *n);
int kvc_nvrtc_code(kvc_nvrtc *t, kvc_nvrtcProgram p, int cubin, char *dst);

// kvc_cublas holds the cuBLAS library handle and its entry points.
typedef void *kvc_cublasHandle;
typedef struct {
	void *handle;
	int (*create)(kvc_cublasHandle *);
	int (*destroy)(kvc_cublasHandle);
	int (*getVersion)(kvc_cublasHandle, int *);
	int (*setMathMode)(kvc_cublasHandle, int);
	int (*sgemm)(kvc_cublasHandle, int, int, int, int, int, const float *,
		const float *, int, const float *, int, const float *, float *, int);
} kvc_cublas;

int kvc_cublas_open(kvc_cublas *t, const char *path, char *err, int errlen);
void kvc_cublas_close(kvc_cublas *t);
int kvc_cublas_create(kvc_cublas *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_cublasHandle *h);
int kvc_cublas_destroy(kvc_cublas *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_cublasHandle h);
int kvc_cublas_version(kvc_cublas *t, kvc_cublasHandle h, int *v);
int kvc_cublas_math_mode(kvc_cublas *t, kvc_cublasHandle h, int mode);
int kvc_cublas_sgemm(kvc_cublas *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_cublasHandle h,
	int transa, int transb, int m, int n, int k, float alpha,
	kvc_CUdeviceptr a, int lda, kvc_CUdeviceptr b, int ldb, float beta, kvc_CUdeviceptr c, int ldc);

// kvc_cublaslt holds the cuBLASLt library handle and its entry points.
// Enumerations (cudaDataType_t, cublasComputeType_t, attribute names) are
// C enums, passed as int.
typedef void *kvc_ltHandle;
typedef void *kvc_ltDesc;
typedef void *kvc_ltLayout;
typedef void *kvc_ltPref;
// kvc_ltAlgo is cublasLtMatmulAlgo_t: 64 opaque bytes.
typedef struct {
	unsigned long long data[8];
} kvc_ltAlgo;
// kvc_ltHeuristic is cublasLtMatmulHeuristicResult_t (cublasLt.h): the
// algorithm, the workspace it needs, its status (cublasStatus_t), the
// waves count and 4 reserved ints; 96 bytes.
typedef struct {
	kvc_ltAlgo algo;
	size_t workspaceSize;
	int state;
	float wavesCount;
	int reserved[4];
} kvc_ltHeuristic;
typedef struct {
	void *handle;
	int (*create)(kvc_ltHandle *);
	int (*destroy)(kvc_ltHandle);
	size_t (*getVersion)(void);
	int (*descCreate)(kvc_ltDesc *, int computeType, int scaleType);
	int (*descSetAttribute)(kvc_ltDesc, int, const void *, size_t);
	int (*descDestroy)(kvc_ltDesc);
	int (*layoutCreate)(kvc_ltLayout *, int type, unsigned long long rows, unsigned long long cols, long long ld);
	int (*layoutDestroy)(kvc_ltLayout);
	int (*prefCreate)(kvc_ltPref *);
	int (*prefSetAttribute)(kvc_ltPref, int, const void *, size_t);
	int (*prefDestroy)(kvc_ltPref);
	int (*heuristic)(kvc_ltHandle, kvc_ltDesc, kvc_ltLayout, kvc_ltLayout, kvc_ltLayout, kvc_ltLayout,
		kvc_ltPref, int, kvc_ltHeuristic *, int *);
	int (*matmul)(kvc_ltHandle, kvc_ltDesc, const void *alpha, const void *a, kvc_ltLayout,
		const void *b, kvc_ltLayout, const void *beta, const void *c, kvc_ltLayout,
		void *d, kvc_ltLayout, const kvc_ltAlgo *, void *workspace, size_t workspaceSize, kvc_CUstream);
} kvc_cublaslt;

int kvc_cublaslt_open(kvc_cublaslt *t, const char *path, char *err, int errlen);
void kvc_cublaslt_close(kvc_cublaslt *t);
int kvc_lt_create(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle *h);
int kvc_lt_destroy(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle h);
size_t kvc_lt_version(kvc_cublaslt *t);
int kvc_lt_desc_create(kvc_cublaslt *t, kvc_ltDesc *d, int computeType, int scaleType);
// kvc_lt_desc_set and kvc_lt_pref_set set an attribute of size bytes (4
// or 8) to v: a 4-byte attribute takes v's low 32 bits.
int kvc_lt_desc_set(kvc_cublaslt *t, kvc_ltDesc d, int attr, unsigned long long v, int size);
int kvc_lt_desc_destroy(kvc_cublaslt *t, kvc_ltDesc d);
int kvc_lt_layout_create(kvc_cublaslt *t, kvc_ltLayout *l, int type, unsigned long long rows, unsigned long long cols, long long ld);
int kvc_lt_layout_destroy(kvc_cublaslt *t, kvc_ltLayout l);
int kvc_lt_pref_create(kvc_cublaslt *t, kvc_ltPref *p);
int kvc_lt_pref_set(kvc_cublaslt *t, kvc_ltPref p, int attr, unsigned long long v, int size);
int kvc_lt_pref_destroy(kvc_cublaslt *t, kvc_ltPref p);
int kvc_lt_heuristic(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle h, kvc_ltDesc desc,
	kvc_ltLayout a, kvc_ltLayout b, kvc_ltLayout c, kvc_ltLayout d, kvc_ltPref pref,
	int requested, kvc_ltHeuristic *results, int *returned);
// kvc_lt_matmul queues d = alpha·op(a)·op(b) + beta·c on the legacy
// default stream, alpha and beta float32 on the host.
int kvc_lt_matmul(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle h, kvc_ltDesc desc,
	float alpha, kvc_CUdeviceptr a, kvc_ltLayout al, kvc_CUdeviceptr b, kvc_ltLayout bl,
	float beta, kvc_CUdeviceptr c, kvc_ltLayout cl, kvc_CUdeviceptr d, kvc_ltLayout dl,
	const kvc_ltAlgo *algo, kvc_CUdeviceptr workspace, size_t workspaceSize);

// kvc_dlopen_global loads a library for the libraries loaded after it to
// find by its soname (NVRTC opens its builtins library that way).
void *kvc_dlopen_global(const char *path, char *err, int errlen);
void kvc_dlclose(void *h);

#endif
