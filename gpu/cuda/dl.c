//go:build cgo && linux

// dl.c loads the driver, NVRTC, cuBLAS and cuBLASLt entry points with
// dlopen/dlsym and wraps each call Go needs. See dl.h.

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "dl.h"

// entry names one table slot and the symbols that may fill it, newest
// first (the driver exports versioned names such as cuMemAlloc_v2).
typedef struct {
	void **slot;
	const char *names[3];
	int optional;
} entry;

static int resolve(void *h, entry *e, int n, char *err, int errlen) {
	for (int i = 0; i < n; i++) {
		void *p = NULL;
		for (int j = 0; j < 3 && e[i].names[j] != NULL && p == NULL; j++) {
			p = dlsym(h, e[i].names[j]);
		}
		if (p == NULL && !e[i].optional) {
			snprintf(err, errlen, "%s", e[i].names[0]);
			return 2;
		}
		*e[i].slot = p;
	}
	return 0;
}

static void *open_lib(const char *path, char *err, int errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *m = dlerror();
		snprintf(err, errlen, "%s", m != NULL ? m : "dlopen failed");
	}
	return h;
}

#define E(field, ...) {(void **)&t->field, {__VA_ARGS__}, 0}
#define OPT(field, ...) {(void **)&t->field, {__VA_ARGS__}, 1}

int kvc_cuda_open(kvc_cuda *t, const char *path, char *err, int errlen) {
	memset(t, 0, sizeof *t);
	t->handle = open_lib(path, err, errlen);
	if (t->handle == NULL) {
		return 1;
	}
	entry e[] = {
		E(cuInit, "cuInit"),
		E(cuDriverGetVersion, "cuDriverGetVersion"),
		E(cuDeviceGetCount, "cuDeviceGetCount"),
		E(cuDeviceGet, "cuDeviceGet"),
		E(cuDeviceGetName, "cuDeviceGetName"),
		E(cuDeviceGetAttribute, "cuDeviceGetAttribute"),
		E(cuDeviceTotalMem, "cuDeviceTotalMem_v2", "cuDeviceTotalMem"),
		E(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
		E(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
		E(cuCtxSetCurrent, "cuCtxSetCurrent"),
		E(cuCtxSynchronize, "cuCtxSynchronize"),
		E(cuMemAlloc, "cuMemAlloc_v2"),
		E(cuMemFree, "cuMemFree_v2"),
		E(cuMemGetInfo, "cuMemGetInfo_v2"),
		E(cuMemsetD32, "cuMemsetD32_v2"),
		E(cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
		E(cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
		E(cuMemcpyDtoD, "cuMemcpyDtoD_v2"),
		E(cuMemHostAlloc, "cuMemHostAlloc"),
		E(cuMemFreeHost, "cuMemFreeHost"),
		E(cuMemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2", "cuMemHostGetDevicePointer"),
		E(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
		E(cuModuleLoadData, "cuModuleLoadData"),
		E(cuModuleUnload, "cuModuleUnload"),
		E(cuModuleGetFunction, "cuModuleGetFunction"),
		E(cuFuncSetAttribute, "cuFuncSetAttribute"),
		E(cuLaunchKernel, "cuLaunchKernel"),
		E(cuGetErrorString, "cuGetErrorString"),
		E(cuGetErrorName, "cuGetErrorName"),
		OPT(cuProfilerStart, "cuProfilerStart"),
		OPT(cuProfilerStop, "cuProfilerStop"),
	};
	int r = resolve(t->handle, e, sizeof e / sizeof e[0], err, errlen);
	if (r != 0) {
		kvc_cuda_close(t);
	}
	return r;
}

void kvc_cuda_close(kvc_cuda *t) {
	if (t->handle != NULL) {
		dlclose(t->handle);
	}
	memset(t, 0, sizeof *t);
}

kvc_CUresult kvc_cu_init(kvc_cuda *t) { return t->cuInit(0); }
kvc_CUresult kvc_cu_driver_version(kvc_cuda *t, int *v) { return t->cuDriverGetVersion(v); }
kvc_CUresult kvc_cu_device_count(kvc_cuda *t, int *n) { return t->cuDeviceGetCount(n); }
kvc_CUresult kvc_cu_device_get(kvc_cuda *t, kvc_CUdevice *d, int ordinal) { return t->cuDeviceGet(d, ordinal); }
kvc_CUresult kvc_cu_device_name(kvc_cuda *t, char *name, int len, kvc_CUdevice d) { return t->cuDeviceGetName(name, len, d); }
kvc_CUresult kvc_cu_device_attribute(kvc_cuda *t, int *v, int attr, kvc_CUdevice d) { return t->cuDeviceGetAttribute(v, attr, d); }
kvc_CUresult kvc_cu_device_total_mem(kvc_cuda *t, size_t *bytes, kvc_CUdevice d) { return t->cuDeviceTotalMem(bytes, d); }
kvc_CUresult kvc_cu_primary_retain(kvc_cuda *t, kvc_CUcontext *ctx, kvc_CUdevice d) { return t->cuDevicePrimaryCtxRetain(ctx, d); }
kvc_CUresult kvc_cu_primary_release(kvc_cuda *t, kvc_CUdevice d) { return t->cuDevicePrimaryCtxRelease(d); }

// CURRENT makes ctx current or returns the failure.
#define CURRENT(t, ctx)                                  \
	do {                                                 \
		kvc_CUresult r_ = (t)->cuCtxSetCurrent(ctx);     \
		if (r_ != 0) {                                   \
			return r_;                                   \
		}                                                \
	} while (0)

kvc_CUresult kvc_cu_sync(kvc_cuda *t, kvc_CUcontext ctx) {
	CURRENT(t, ctx);
	return t->cuCtxSynchronize();
}

kvc_CUresult kvc_cu_profile(kvc_cuda *t, kvc_CUcontext ctx, int on) {
	CURRENT(t, ctx);
	if (on) {
		return t->cuProfilerStart != NULL ? t->cuProfilerStart() : 0;
	}
	return t->cuProfilerStop != NULL ? t->cuProfilerStop() : 0;
}

kvc_CUresult kvc_cu_mem_info(kvc_cuda *t, kvc_CUcontext ctx, size_t *free, size_t *total) {
	CURRENT(t, ctx);
	return t->cuMemGetInfo(free, total);
}

kvc_CUresult kvc_cu_alloc(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr *p, size_t bytes) {
	CURRENT(t, ctx);
	return t->cuMemAlloc(p, bytes);
}

kvc_CUresult kvc_cu_free(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr p) {
	CURRENT(t, ctx);
	return t->cuMemFree(p);
}

kvc_CUresult kvc_cu_memset32(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr p, unsigned v, size_t n) {
	CURRENT(t, ctx);
	return t->cuMemsetD32(p, v, n);
}

kvc_CUresult kvc_cu_htod(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr dst, const void *src, size_t bytes) {
	CURRENT(t, ctx);
	return t->cuMemcpyHtoD(dst, src, bytes);
}

kvc_CUresult kvc_cu_dtoh(kvc_cuda *t, kvc_CUcontext ctx, void *dst, kvc_CUdeviceptr src, size_t bytes) {
	CURRENT(t, ctx);
	return t->cuMemcpyDtoH(dst, src, bytes);
}

kvc_CUresult kvc_cu_dtod(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr dst, kvc_CUdeviceptr src, size_t bytes) {
	CURRENT(t, ctx);
	return t->cuMemcpyDtoD(dst, src, bytes);
}

kvc_CUresult kvc_cu_host_alloc(kvc_cuda *t, kvc_CUcontext ctx, void **p, size_t bytes) {
	CURRENT(t, ctx);
	return t->cuMemHostAlloc(p, bytes, 0);
}

kvc_CUresult kvc_cu_host_alloc_mapped(kvc_cuda *t, kvc_CUcontext ctx, void **p, kvc_CUdeviceptr *dp, size_t bytes) {
	CURRENT(t, ctx);
	// CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP
	kvc_CUresult r = t->cuMemHostAlloc(p, bytes, 0x01 | 0x02);
	if (r != 0) {
		return r;
	}
	r = t->cuMemHostGetDevicePointer(dp, *p, 0);
	if (r != 0) {
		t->cuMemFreeHost(*p);
		*p = NULL;
	}
	return r;
}

kvc_CUresult kvc_cu_host_free(kvc_cuda *t, kvc_CUcontext ctx, void *p) {
	CURRENT(t, ctx);
	return t->cuMemFreeHost(p);
}

kvc_CUresult kvc_cu_htod_async(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUdeviceptr dst, const void *src, size_t bytes) {
	CURRENT(t, ctx);
	return t->cuMemcpyHtoDAsync(dst, src, bytes, NULL);
}

kvc_CUresult kvc_cu_module_load(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUmodule *m, const void *image) {
	CURRENT(t, ctx);
	return t->cuModuleLoadData(m, image);
}

kvc_CUresult kvc_cu_module_unload(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUmodule m) {
	CURRENT(t, ctx);
	return t->cuModuleUnload(m);
}

kvc_CUresult kvc_cu_module_function(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUfunction *f, kvc_CUmodule m, const char *name) {
	CURRENT(t, ctx);
	return t->cuModuleGetFunction(f, m, name);
}

kvc_CUresult kvc_cu_func_attribute(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUfunction f, int attr, int v) {
	CURRENT(t, ctx);
	return t->cuFuncSetAttribute(f, attr, v);
}

enum { max_kernel_args = 32 };

kvc_CUresult kvc_cu_launch(kvc_cuda *t, kvc_CUcontext ctx, kvc_CUfunction f,
	unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
	unsigned shared, unsigned long long *args, int nargs) {
	void *params[max_kernel_args];
	if (nargs > max_kernel_args) {
		return 1; // CUDA_ERROR_INVALID_VALUE
	}
	for (int i = 0; i < nargs; i++) {
		params[i] = &args[i];
	}
	CURRENT(t, ctx);
	return t->cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, NULL, params, NULL);
}

void kvc_cu_error_text(kvc_cuda *t, kvc_CUresult r, const char **name, const char **text) {
	*name = "";
	*text = "";
	if (t->cuGetErrorName(r, name) != 0 || *name == NULL) {
		*name = "";
	}
	if (t->cuGetErrorString(r, text) != 0 || *text == NULL) {
		*text = "";
	}
}

int kvc_nvrtc_open(kvc_nvrtc *t, const char *path, char *err, int errlen) {
	memset(t, 0, sizeof *t);
	t->handle = open_lib(path, err, errlen);
	if (t->handle == NULL) {
		return 1;
	}
	entry e[] = {
		E(version, "nvrtcVersion"),
		E(getErrorString, "nvrtcGetErrorString"),
		E(createProgram, "nvrtcCreateProgram"),
		E(destroyProgram, "nvrtcDestroyProgram"),
		E(compileProgram, "nvrtcCompileProgram"),
		E(getProgramLogSize, "nvrtcGetProgramLogSize"),
		E(getProgramLog, "nvrtcGetProgramLog"),
		E(getPTXSize, "nvrtcGetPTXSize"),
		E(getPTX, "nvrtcGetPTX"),
		OPT(getCUBINSize, "nvrtcGetCUBINSize"),
		OPT(getCUBIN, "nvrtcGetCUBIN"),
	};
	int r = resolve(t->handle, e, sizeof e / sizeof e[0], err, errlen);
	if (r != 0) {
		kvc_nvrtc_close(t);
	}
	return r;
}

void kvc_nvrtc_close(kvc_nvrtc *t) {
	if (t->handle != NULL) {
		dlclose(t->handle);
	}
	memset(t, 0, sizeof *t);
}

int kvc_nvrtc_has_cubin(kvc_nvrtc *t) { return t->getCUBIN != NULL && t->getCUBINSize != NULL; }
int kvc_nvrtc_version(kvc_nvrtc *t, int *major, int *minor) { return t->version(major, minor); }

const char *kvc_nvrtc_error(kvc_nvrtc *t, int r) {
	const char *s = t->getErrorString(r);
	return s != NULL ? s : "";
}

int kvc_nvrtc_create(kvc_nvrtc *t, kvc_nvrtcProgram *p, const char *src, const char *name) {
	return t->createProgram(p, src, name, 0, NULL, NULL);
}

int kvc_nvrtc_destroy(kvc_nvrtc *t, kvc_nvrtcProgram *p) { return t->destroyProgram(p); }

int kvc_nvrtc_compile(kvc_nvrtc *t, kvc_nvrtcProgram p, int nopts, char **opts) {
	return t->compileProgram(p, nopts, (const char *const *)opts);
}

int kvc_nvrtc_log_size(kvc_nvrtc *t, kvc_nvrtcProgram p, size_t *n) { return t->getProgramLogSize(p, n); }
int kvc_nvrtc_log(kvc_nvrtc *t, kvc_nvrtcProgram p, char *dst) { return t->getProgramLog(p, dst); }

int kvc_nvrtc_code_size(kvc_nvrtc *t, kvc_nvrtcProgram p, int cubin, size_t *n) {
	return cubin ? t->getCUBINSize(p, n) : t->getPTXSize(p, n);
}

int kvc_nvrtc_code(kvc_nvrtc *t, kvc_nvrtcProgram p, int cubin, char *dst) {
	return cubin ? t->getCUBIN(p, dst) : t->getPTX(p, dst);
}

int kvc_cublas_open(kvc_cublas *t, const char *path, char *err, int errlen) {
	memset(t, 0, sizeof *t);
	t->handle = open_lib(path, err, errlen);
	if (t->handle == NULL) {
		return 1;
	}
	entry e[] = {
		E(create, "cublasCreate_v2"),
		E(destroy, "cublasDestroy_v2"),
		E(getVersion, "cublasGetVersion_v2"),
		E(setMathMode, "cublasSetMathMode"),
		E(sgemm, "cublasSgemm_v2"),
	};
	int r = resolve(t->handle, e, sizeof e / sizeof e[0], err, errlen);
	if (r != 0) {
		kvc_cublas_close(t);
	}
	return r;
}

void kvc_cublas_close(kvc_cublas *t) {
	if (t->handle != NULL) {
		dlclose(t->handle);
	}
	memset(t, 0, sizeof *t);
}

// cuBLAS status codes are small positive numbers; a failure to make the
// context current is reported as a negative driver code.
#define CURRENT_BLAS(cu, ctx)                            \
	do {                                                 \
		kvc_CUresult r_ = (cu)->cuCtxSetCurrent(ctx);    \
		if (r_ != 0) {                                   \
			return -r_;                                  \
		}                                                \
	} while (0)

int kvc_cublas_create(kvc_cublas *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_cublasHandle *h) {
	CURRENT_BLAS(cu, ctx);
	return t->create(h);
}

int kvc_cublas_destroy(kvc_cublas *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_cublasHandle h) {
	CURRENT_BLAS(cu, ctx);
	return t->destroy(h);
}

int kvc_cublas_version(kvc_cublas *t, kvc_cublasHandle h, int *v) { return t->getVersion(h, v); }
int kvc_cublas_math_mode(kvc_cublas *t, kvc_cublasHandle h, int mode) { return t->setMathMode(h, mode); }

int kvc_cublas_sgemm(kvc_cublas *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_cublasHandle h,
	int transa, int transb, int m, int n, int k, float alpha,
	kvc_CUdeviceptr a, int lda, kvc_CUdeviceptr b, int ldb, float beta, kvc_CUdeviceptr c, int ldc) {
	CURRENT_BLAS(cu, ctx);
	return t->sgemm(h, transa, transb, m, n, k, &alpha, (const float *)a, lda,
		(const float *)b, ldb, &beta, (float *)c, ldc);
}

_Static_assert(sizeof(kvc_ltAlgo) == 64, "cublasLtMatmulAlgo_t is 64 bytes");
_Static_assert(sizeof(kvc_ltHeuristic) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

int kvc_cublaslt_open(kvc_cublaslt *t, const char *path, char *err, int errlen) {
	memset(t, 0, sizeof *t);
	t->handle = open_lib(path, err, errlen);
	if (t->handle == NULL) {
		return 1;
	}
	entry e[] = {
		E(create, "cublasLtCreate"),
		E(destroy, "cublasLtDestroy"),
		E(getVersion, "cublasLtGetVersion"),
		E(descCreate, "cublasLtMatmulDescCreate"),
		E(descSetAttribute, "cublasLtMatmulDescSetAttribute"),
		E(descDestroy, "cublasLtMatmulDescDestroy"),
		E(layoutCreate, "cublasLtMatrixLayoutCreate"),
		E(layoutDestroy, "cublasLtMatrixLayoutDestroy"),
		E(prefCreate, "cublasLtMatmulPreferenceCreate"),
		E(prefSetAttribute, "cublasLtMatmulPreferenceSetAttribute"),
		E(prefDestroy, "cublasLtMatmulPreferenceDestroy"),
		E(heuristic, "cublasLtMatmulAlgoGetHeuristic"),
		E(matmul, "cublasLtMatmul"),
	};
	int r = resolve(t->handle, e, sizeof e / sizeof e[0], err, errlen);
	if (r != 0) {
		kvc_cublaslt_close(t);
	}
	return r;
}

void kvc_cublaslt_close(kvc_cublaslt *t) {
	if (t->handle != NULL) {
		dlclose(t->handle);
	}
	memset(t, 0, sizeof *t);
}

int kvc_lt_create(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle *h) {
	CURRENT_BLAS(cu, ctx);
	return t->create(h);
}

int kvc_lt_destroy(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle h) {
	CURRENT_BLAS(cu, ctx);
	return t->destroy(h);
}

size_t kvc_lt_version(kvc_cublaslt *t) { return t->getVersion(); }

int kvc_lt_desc_create(kvc_cublaslt *t, kvc_ltDesc *d, int computeType, int scaleType) {
	return t->descCreate(d, computeType, scaleType);
}

// set_attr calls set with v's low 4 bytes or all 8, as size says.
static int set_attr(int (*set)(void *, int, const void *, size_t), void *obj, int attr, unsigned long long v, int size) {
	if (size == 4) {
		unsigned int w = (unsigned int)v;
		return set(obj, attr, &w, sizeof w);
	}
	return set(obj, attr, &v, sizeof v);
}

int kvc_lt_desc_set(kvc_cublaslt *t, kvc_ltDesc d, int attr, unsigned long long v, int size) {
	return set_attr(t->descSetAttribute, d, attr, v, size);
}

int kvc_lt_desc_destroy(kvc_cublaslt *t, kvc_ltDesc d) { return t->descDestroy(d); }

int kvc_lt_layout_create(kvc_cublaslt *t, kvc_ltLayout *l, int type, unsigned long long rows, unsigned long long cols, long long ld) {
	return t->layoutCreate(l, type, rows, cols, ld);
}

int kvc_lt_layout_destroy(kvc_cublaslt *t, kvc_ltLayout l) { return t->layoutDestroy(l); }
int kvc_lt_pref_create(kvc_cublaslt *t, kvc_ltPref *p) { return t->prefCreate(p); }

int kvc_lt_pref_set(kvc_cublaslt *t, kvc_ltPref p, int attr, unsigned long long v, int size) {
	return set_attr(t->prefSetAttribute, p, attr, v, size);
}

int kvc_lt_pref_destroy(kvc_cublaslt *t, kvc_ltPref p) { return t->prefDestroy(p); }

int kvc_lt_heuristic(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle h, kvc_ltDesc desc,
	kvc_ltLayout a, kvc_ltLayout b, kvc_ltLayout c, kvc_ltLayout d, kvc_ltPref pref,
	int requested, kvc_ltHeuristic *results, int *returned) {
	CURRENT_BLAS(cu, ctx);
	return t->heuristic(h, desc, a, b, c, d, pref, requested, results, returned);
}

int kvc_lt_matmul(kvc_cublaslt *t, kvc_cuda *cu, kvc_CUcontext ctx, kvc_ltHandle h, kvc_ltDesc desc,
	float alpha, kvc_CUdeviceptr a, kvc_ltLayout al, kvc_CUdeviceptr b, kvc_ltLayout bl,
	float beta, kvc_CUdeviceptr c, kvc_ltLayout cl, kvc_CUdeviceptr d, kvc_ltLayout dl,
	const kvc_ltAlgo *algo, kvc_CUdeviceptr workspace, size_t workspaceSize) {
	CURRENT_BLAS(cu, ctx);
	return t->matmul(h, desc, &alpha, (const void *)a, al, (const void *)b, bl, &beta, (const void *)c, cl,
		(void *)d, dl, algo, (void *)workspace, workspaceSize, NULL);
}

void *kvc_dlopen_global(const char *path, char *err, int errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) {
		const char *m = dlerror();
		snprintf(err, errlen, "%s", m != NULL ? m : "dlopen failed");
	}
	return h;
}

void kvc_dlclose(void *h) {
	if (h != NULL) {
		dlclose(h);
	}
}
