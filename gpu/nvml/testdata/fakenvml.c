// fakenvml.c is a stand-in for libnvidia-ml.so.1 that the tests build with
// the C compiler and load through the real binding. It exports the entry
// points package nvml calls, with canned devices, and checks what NVML
// itself checks: that it was initialised, that handles are its own and that
// string buffers have the documented sizes. Macros select variants:
//
//	FAKE_INIT_RET  what nvmlInit returns (default 0, NVML_SUCCESS)
//	FAKE_COUNT     how many devices there are (default 2)
//	FAKE_POWER_RET what nvmlDeviceGetPowerUsage returns (default 0)
//	FAKE_NO_UUID   leave nvmlDeviceGetUUID out
//	FAKE_V1        export only the unversioned nvmlInit, nvmlDeviceGetCount
//	               and nvmlDeviceGetHandleByIndex, as old drivers do

#include <stdio.h>
#include <string.h>

#ifndef FAKE_INIT_RET
#define FAKE_INIT_RET 0
#endif
#ifndef FAKE_COUNT
#define FAKE_COUNT 2
#endif
#ifndef FAKE_POWER_RET
#define FAKE_POWER_RET 0
#endif

#ifdef FAKE_V1
#define V2(name) name
#else
#define V2(name) name##_v2
#endif

enum { OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, INSUFFICIENT_SIZE = 7 };

typedef struct { unsigned long long total, free, used; } memory;
typedef struct { unsigned int gpu, memory; } utilization;
typedef struct { int index; } dev;

static int initialised;
static dev devs[8] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};

// check returns a status for a call on d: UNINITIALIZED before nvmlInit,
// INVALID_ARGUMENT for a handle that is not one of devs.
static int check(dev *d) {
	if (!initialised) {
		return UNINITIALIZED;
	}
	if (d < &devs[0] || d >= &devs[FAKE_COUNT]) {
		return INVALID_ARGUMENT;
	}
	return OK;
}

int V2(nvmlInit)(void) {
	if (FAKE_INIT_RET == 0) {
		initialised++;
	}
	return FAKE_INIT_RET;
}

int nvmlShutdown(void) {
	if (!initialised) {
		return UNINITIALIZED;
	}
	initialised--;
	return OK;
}

const char *nvmlErrorString(int r) {
	static char buf[8][64];
	static int next;
	char *b = buf[next++ % 8];
	snprintf(b, 64, "fake error %d", r);
	return b;
}

int nvmlSystemGetDriverVersion(char *v, unsigned int n) {
	if (!initialised) {
		return UNINITIALIZED;
	}
	if (n < 80) { // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
		return INSUFFICIENT_SIZE;
	}
	snprintf(v, n, "%s", "580.0.1-fake");
	return OK;
}

int V2(nvmlDeviceGetCount)(unsigned int *n) {
	if (!initialised) {
		return UNINITIALIZED;
	}
	*n = FAKE_COUNT;
	return OK;
}

int V2(nvmlDeviceGetHandleByIndex)(unsigned int i, dev **d) {
	if (!initialised) {
		return UNINITIALIZED;
	}
	if (i >= FAKE_COUNT) {
		return INVALID_ARGUMENT;
	}
	*d = &devs[i];
	return OK;
}

int nvmlDeviceGetName(dev *d, char *name, unsigned int n) {
	int r = check(d);
	if (r != OK) {
		return r;
	}
	if (n < 96) { // NVML_DEVICE_NAME_V2_BUFFER_SIZE
		return INSUFFICIENT_SIZE;
	}
	snprintf(name, n, "Fake GPU %d", d->index);
	return OK;
}

#ifndef FAKE_NO_UUID
int nvmlDeviceGetUUID(dev *d, char *uuid, unsigned int n) {
	int r = check(d);
	if (r != OK) {
		return r;
	}
	if (n < 96) { // NVML_DEVICE_UUID_V2_BUFFER_SIZE
		return INSUFFICIENT_SIZE;
	}
	snprintf(uuid, n, "GPU-fake-%04d", d->index);
	return OK;
}
#endif

int nvmlDeviceGetMemoryInfo(dev *d, memory *m) {
	int r = check(d);
	if (r != OK) {
		return r;
	}
	m->total = 80ULL << 30;
	m->used = (unsigned long long)(d->index + 1) << 30;
	m->free = m->total - m->used;
	return OK;
}

int nvmlDeviceGetPowerUsage(dev *d, unsigned int *mW) {
	int r = check(d);
	if (r != OK) {
		return r;
	}
	if (FAKE_POWER_RET != OK) {
		return FAKE_POWER_RET;
	}
	*mW = 123456 + d->index;
	return OK;
}

int nvmlDeviceGetClockInfo(dev *d, int type, unsigned int *mhz) {
	int r = check(d);
	if (r != OK) {
		return r;
	}
	switch (type) {
	case 0: // NVML_CLOCK_GRAPHICS
		*mhz = 1755;
		return OK;
	case 1: // NVML_CLOCK_SM
		*mhz = 1980 - d->index;
		return OK;
	case 2: // NVML_CLOCK_MEM
		*mhz = 2619;
		return OK;
	}
	return INVALID_ARGUMENT;
}

int nvmlDeviceGetUtilizationRates(dev *d, utilization *u) {
	int r = check(d);
	if (r != OK) {
		return r;
	}
	u->gpu = 42 + d->index;
	u->memory = 7;
	return OK;
}
