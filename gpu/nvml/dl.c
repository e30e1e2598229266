//go:build cgo && linux

// dl.c loads NVML's entry points with dlopen/dlsym and wraps each call Go
// needs. See dl.h.

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "dl.h"

// entry names one table slot and the symbols that may fill it, newest
// first (NVML exports versioned names such as nvmlInit_v2 beside the
// originals).
typedef struct {
	void **slot;
	const char *names[2];
} entry;

int kvc_nvml_open(kvc_nvml *t, const char *path, char *err, int errlen) {
	memset(t, 0, sizeof *t);
	t->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (t->handle == NULL) {
		const char *m = dlerror();
		snprintf(err, errlen, "%s", m != NULL ? m : "dlopen failed");
		return 1;
	}
	entry e[] = {
		{(void **)&t->init, {"nvmlInit_v2", "nvmlInit"}},
		{(void **)&t->shutdown, {"nvmlShutdown"}},
		{(void **)&t->errorString, {"nvmlErrorString"}},
		{(void **)&t->systemGetDriverVersion, {"nvmlSystemGetDriverVersion"}},
		{(void **)&t->deviceGetCount, {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"}},
		{(void **)&t->deviceGetHandleByIndex, {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"}},
		{(void **)&t->deviceGetName, {"nvmlDeviceGetName"}},
		{(void **)&t->deviceGetUUID, {"nvmlDeviceGetUUID"}},
		{(void **)&t->deviceGetMemoryInfo, {"nvmlDeviceGetMemoryInfo"}},
		{(void **)&t->deviceGetPowerUsage, {"nvmlDeviceGetPowerUsage"}},
		{(void **)&t->deviceGetClockInfo, {"nvmlDeviceGetClockInfo"}},
		{(void **)&t->deviceGetUtilizationRates, {"nvmlDeviceGetUtilizationRates"}},
	};
	for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
		void *p = NULL;
		for (int j = 0; j < 2 && e[i].names[j] != NULL && p == NULL; j++) {
			p = dlsym(t->handle, e[i].names[j]);
		}
		if (p == NULL) {
			snprintf(err, errlen, "%s", e[i].names[0]);
			kvc_nvml_close(t);
			return 2;
		}
		*e[i].slot = p;
	}
	return 0;
}

void kvc_nvml_close(kvc_nvml *t) {
	if (t->handle != NULL) {
		dlclose(t->handle);
	}
	memset(t, 0, sizeof *t);
}

kvc_nvmlReturn kvc_nvml_init(kvc_nvml *t) { return t->init(); }

kvc_nvmlReturn kvc_nvml_shutdown(kvc_nvml *t) { return t->shutdown(); }

const char *kvc_nvml_error_string(kvc_nvml *t, kvc_nvmlReturn r) { return t->errorString(r); }

kvc_nvmlReturn kvc_nvml_driver_version(kvc_nvml *t, char *buf, unsigned int len) {
	return t->systemGetDriverVersion(buf, len);
}

kvc_nvmlReturn kvc_nvml_device_count(kvc_nvml *t, unsigned int *n) { return t->deviceGetCount(n); }

kvc_nvmlReturn kvc_nvml_device_handle(kvc_nvml *t, unsigned int index, kvc_nvmlDevice *d) {
	return t->deviceGetHandleByIndex(index, d);
}

kvc_nvmlReturn kvc_nvml_device_name(kvc_nvml *t, kvc_nvmlDevice d, char *buf, unsigned int len) {
	return t->deviceGetName(d, buf, len);
}

kvc_nvmlReturn kvc_nvml_device_uuid(kvc_nvml *t, kvc_nvmlDevice d, char *buf, unsigned int len) {
	return t->deviceGetUUID(d, buf, len);
}

kvc_nvmlReturn kvc_nvml_device_memory(kvc_nvml *t, kvc_nvmlDevice d, kvc_nvmlMemory *m) {
	return t->deviceGetMemoryInfo(d, m);
}

kvc_nvmlReturn kvc_nvml_device_power(kvc_nvml *t, kvc_nvmlDevice d, unsigned int *mW) {
	return t->deviceGetPowerUsage(d, mW);
}

kvc_nvmlReturn kvc_nvml_device_clock(kvc_nvml *t, kvc_nvmlDevice d, int type, unsigned int *mhz) {
	return t->deviceGetClockInfo(d, type, mhz);
}

kvc_nvmlReturn kvc_nvml_device_utilization(kvc_nvml *t, kvc_nvmlDevice d, kvc_nvmlUtilization *u) {
	return t->deviceGetUtilizationRates(d, u);
}
