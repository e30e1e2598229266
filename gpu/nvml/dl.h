// dl.h declares the table of NVML entry points that package nvml loads with
// dlopen/dlsym from libnvidia-ml.so.1, and the C wrappers Go calls them
// through (Go cannot call a C function pointer directly). No NVML header is
// needed: the few types used are declared here as NVML's API reference
// documents them.
#ifndef KVC_NVML_DL_H
#define KVC_NVML_DL_H

// kvc_nvmlReturn is nvmlReturn_t, a C enum: NVML_SUCCESS is 0.
typedef int kvc_nvmlReturn;
// kvc_nvmlDevice is nvmlDevice_t, a pointer to an opaque struct.
typedef void *kvc_nvmlDevice;

// kvc_nvmlMemory is nvmlMemory_t (version 1): bytes of device memory, total,
// unallocated and used; 24 bytes.
typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} kvc_nvmlMemory;

// kvc_nvmlUtilization is nvmlUtilization_t: percent of the last sample
// period that a kernel ran (gpu) and that memory was read or written; 8
// bytes.
typedef struct {
	unsigned int gpu;
	unsigned int memory;
} kvc_nvmlUtilization;

// Buffer sizes NVML documents for its strings (terminating NUL included).
enum {
	KVC_NVML_DRIVER_VERSION_LEN = 80, // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
	KVC_NVML_NAME_LEN = 96,           // NVML_DEVICE_NAME_V2_BUFFER_SIZE
	KVC_NVML_UUID_LEN = 96,           // NVML_DEVICE_UUID_V2_BUFFER_SIZE
};

// kvc_nvml holds the library handle and its entry points. Clock types are
// nvmlClockType_t, a C enum passed as int.
typedef struct {
	void *handle;
	kvc_nvmlReturn (*init)(void);
	kvc_nvmlReturn (*shutdown)(void);
	const char *(*errorString)(kvc_nvmlReturn);
	kvc_nvmlReturn (*systemGetDriverVersion)(char *, unsigned int);
	kvc_nvmlReturn (*deviceGetCount)(unsigned int *);
	kvc_nvmlReturn (*deviceGetHandleByIndex)(unsigned int, kvc_nvmlDevice *);
	kvc_nvmlReturn (*deviceGetName)(kvc_nvmlDevice, char *, unsigned int);
	kvc_nvmlReturn (*deviceGetUUID)(kvc_nvmlDevice, char *, unsigned int);
	kvc_nvmlReturn (*deviceGetMemoryInfo)(kvc_nvmlDevice, kvc_nvmlMemory *);
	kvc_nvmlReturn (*deviceGetPowerUsage)(kvc_nvmlDevice, unsigned int *);
	kvc_nvmlReturn (*deviceGetClockInfo)(kvc_nvmlDevice, int, unsigned int *);
	kvc_nvmlReturn (*deviceGetUtilizationRates)(kvc_nvmlDevice, kvc_nvmlUtilization *);
} kvc_nvml;

// kvc_nvml_open dlopens path and resolves every entry point. It returns 0,
// 1 when the library cannot be opened (err holds dlerror's text) or 2 when
// a symbol is missing (err names it); err has room for errlen bytes.
int kvc_nvml_open(kvc_nvml *t, const char *path, char *err, int errlen);
// kvc_nvml_close unloads the library (it does not shut NVML down).
void kvc_nvml_close(kvc_nvml *t);

// One wrapper per entry point, each a single call.
kvc_nvmlReturn kvc_nvml_init(kvc_nvml *t);
kvc_nvmlReturn kvc_nvml_shutdown(kvc_nvml *t);
// kvc_nvml_error_string returns NVML's description of r, or NULL.
const char *kvc_nvml_error_string(kvc_nvml *t, kvc_nvmlReturn r);
kvc_nvmlReturn kvc_nvml_driver_version(kvc_nvml *t, char *buf, unsigned int len);
kvc_nvmlReturn kvc_nvml_device_count(kvc_nvml *t, unsigned int *n);
kvc_nvmlReturn kvc_nvml_device_handle(kvc_nvml *t, unsigned int index, kvc_nvmlDevice *d);
kvc_nvmlReturn kvc_nvml_device_name(kvc_nvml *t, kvc_nvmlDevice d, char *buf, unsigned int len);
kvc_nvmlReturn kvc_nvml_device_uuid(kvc_nvml *t, kvc_nvmlDevice d, char *buf, unsigned int len);
kvc_nvmlReturn kvc_nvml_device_memory(kvc_nvml *t, kvc_nvmlDevice d, kvc_nvmlMemory *m);
kvc_nvmlReturn kvc_nvml_device_power(kvc_nvml *t, kvc_nvmlDevice d, unsigned int *mW);
kvc_nvmlReturn kvc_nvml_device_clock(kvc_nvml *t, kvc_nvmlDevice d, int type, unsigned int *mhz);
kvc_nvmlReturn kvc_nvml_device_utilization(kvc_nvml *t, kvc_nvmlDevice d, kvc_nvmlUtilization *u);

#endif
