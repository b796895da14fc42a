/* Demo: a driver-API program that lists the device and does vector arithmetic through device
 * memory (copies in every direction, memset), checked against a CPU reference. */
#include "common.h"
#include <string.h>

int main(void) {
    int n_dev = 0, driver = 0, major = 0, minor = 0, sms = 0;
    char name[256];
    size_t total = 0, free_b = 0;
    const int N = 1 << 20;
    CHECK(cuInit(0));
    CHECK(cuDriverGetVersion(&driver));
    CHECK(cuDeviceGetCount(&n_dev));
    CUdevice dev;
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDeviceGetName(name, sizeof name, dev));
    CHECK(cuDeviceTotalMem(&total, dev));
    CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    CHECK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    printf("driver %d.%d, %d device(s); device 0: %s, %zu MiB, compute capability %d.%d, %d SMs\n",
           driver / 1000, driver % 1000 / 10, n_dev, name, total >> 20, major, minor, sms);

    CUcontext ctx;
    CHECK(cuCtxCreate(&ctx, NULL, 0, dev));
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float)), *out = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) a[i] = (float)i * 0.5f;
    CUdeviceptr da, db;
    CHECK(cuMemAlloc(&da, N * sizeof(float)));
    CHECK(cuMemAlloc(&db, N * sizeof(float)));
    CHECK(cuMemGetInfo(&free_b, &total));
    CHECK(cuMemcpyHtoD(da, a, N * sizeof(float)));
    CHECK(cuMemcpyDtoD(db, da, N * sizeof(float)));
    CHECK(cuMemsetD32(da + 4 * 1000, 0x3f800000u /* 1.0f */, 24));
    CHECK(cuMemcpyDtoH(out, da, N * sizeof(float)));
    CHECK(cuMemcpyDtoH(b, db, N * sizeof(float)));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float want = (i >= 1000 && i < 1024) ? 1.0f : (float)i * 0.5f;
        if (out[i] != want || b[i] != (float)i * 0.5f) bad++;
    }
    printf("copied %d floats host->device->device->host, memset 24 of them: %s (%d mismatches); %zu MiB free\n",
           N, bad ? "WRONG" : "correct", bad, free_b >> 20);
    CHECK(cuMemFree(da));
    CHECK(cuMemFree(db));
    CHECK(cuCtxDestroy(ctx));
    free(a); free(b); free(out);
    return bad ? 1 : 0;
}
