/* Devices, versions, error strings and entry points: every device query of the driver API,
 * its error paths, and the behaviour before cuInit. */
#include "common.h"
#include <stdint.h>
#include <string.h>

/* cuDeviceComputeCapability and cuDeviceGetProperties are deprecated but still part of the API. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef CUresult (*MemAllocFn)(CUdeviceptr *, size_t);
typedef CUresult (*MemFreeFn)(CUdeviceptr);

static void before_init(void) {
    int n = -1, v = 0;
    CUdevice dev;
    /* Everything but the version/error-text queries needs cuInit first. */
    EXPECT_ERR(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
    EXPECT_ERR(cuDeviceGet(&dev, 0), CUDA_ERROR_NOT_INITIALIZED);
    EXPECT_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 0), CUDA_ERROR_NOT_INITIALIZED);
    CUdeviceptr p;
    EXPECT_ERR(cuMemAlloc(&p, 16), CUDA_ERROR_NOT_INITIALIZED);
    CUcontext ctx;
    EXPECT_ERR(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_ERROR_NOT_INITIALIZED);
    /* cuDriverGetVersion and the error texts work without cuInit. */
    CHECK(cuDriverGetVersion(&v));
    EXPECT(v >= 13000);
    const char *s = NULL;
    CHECK(cuGetErrorName(CUDA_ERROR_NOT_INITIALIZED, &s));
    EXPECT(s && strcmp(s, "CUDA_ERROR_NOT_INITIALIZED") == 0);
    /* cuInit only accepts flags == 0; a failed cuInit leaves the driver uninitialised. */
    EXPECT_ERR(cuInit(1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
}

static void error_texts(void) {
    const char *s = (const char *)1;
    CHECK(cuGetErrorName(CUDA_SUCCESS, &s));
    EXPECT(s && strcmp(s, "CUDA_SUCCESS") == 0);
    CHECK(cuGetErrorName(CUDA_ERROR_INVALID_VALUE, &s));
    EXPECT(s && strcmp(s, "CUDA_ERROR_INVALID_VALUE") == 0);
    CHECK(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
    EXPECT(s && strcmp(s, "CUDA_ERROR_OUT_OF_MEMORY") == 0);
    CHECK(cuGetErrorName(CUDA_ERROR_NOT_SUPPORTED, &s));
    EXPECT(s && strcmp(s, "CUDA_ERROR_NOT_SUPPORTED") == 0);
    CHECK(cuGetErrorName(CUDA_ERROR_INVALID_HANDLE, &s));
    EXPECT(s && strcmp(s, "CUDA_ERROR_INVALID_HANDLE") == 0);
    CHECK(cuGetErrorString(CUDA_SUCCESS, &s));
    EXPECT(s && strcmp(s, "no error") == 0);
    CHECK(cuGetErrorString(CUDA_ERROR_INVALID_VALUE, &s));
    EXPECT(s && strcmp(s, "invalid argument") == 0);
    CHECK(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
    EXPECT(s && strcmp(s, "out of memory") == 0);
    CHECK(cuGetErrorString(CUDA_ERROR_NOT_INITIALIZED, &s));
    EXPECT(s && strcmp(s, "initialization error") == 0);
    /* Unknown codes: CUDA_ERROR_INVALID_VALUE and *pStr set to NULL (documented). */
    s = "x";
    EXPECT_ERR(cuGetErrorString((CUresult)9999, &s), CUDA_ERROR_INVALID_VALUE);
    EXPECT(s == NULL);
    s = "x";
    EXPECT_ERR(cuGetErrorName((CUresult)9999, &s), CUDA_ERROR_INVALID_VALUE);
    EXPECT(s == NULL);
    EXPECT_ERR(cuGetErrorName(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
}

static int attr(CUdevice dev, CUdevice_attribute a) {
    int v = -12345;
    CHECK(cuDeviceGetAttribute(&v, a, dev));
    return v;
}

int main(void) {
    before_init();
    CHECK(cuInit(0));
    CHECK(cuInit(0)); /* idempotent */
    error_texts();

    int driver = 0;
    CHECK(cuDriverGetVersion(&driver));
    EXPECT(driver >= 13000);
    EXPECT_ERR(cuDriverGetVersion(NULL), CUDA_ERROR_INVALID_VALUE);

    int count = 0;
    CHECK(cuDeviceGetCount(&count));
    EXPECT(count >= 1);
    EXPECT_ERR(cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);

    CUdevice dev = -1, bad;
    CHECK(cuDeviceGet(&dev, 0));
    EXPECT(dev == 0);
    EXPECT_ERR(cuDeviceGet(&bad, count), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGet(&bad, -1), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGet(&bad, 1000), CUDA_ERROR_INVALID_DEVICE);

    /* Name: non-empty, NUL-terminated within the buffer. */
    char name[256];
    memset(name, 0x7f, sizeof name);
    CHECK(cuDeviceGetName(name, sizeof name, dev));
    EXPECT(memchr(name, 0, sizeof name) != NULL);
    EXPECT(strlen(name) > 0);
    EXPECT_ERR(cuDeviceGetName(name, sizeof name, count), CUDA_ERROR_INVALID_DEVICE);

    /* UUID: 16 bytes, not all zero, stable between calls. */
    CUuuid u1, u2;
    memset(&u1, 0, sizeof u1);
    memset(&u2, 0xff, sizeof u2);
    CHECK(cuDeviceGetUuid(&u1, dev));
    CHECK(cuDeviceGetUuid(&u2, dev));
    int nonzero = 0;
    for (int i = 0; i < 16; i++) nonzero |= u1.bytes[i];
    EXPECT(nonzero);
    EXPECT(memcmp(&u1, &u2, sizeof u1) == 0);
    EXPECT_ERR(cuDeviceGetUuid(&u2, count), CUDA_ERROR_INVALID_DEVICE);

    size_t total = 0;
    CHECK(cuDeviceTotalMem(&total, dev));
    EXPECT(total > 0);
    EXPECT_ERR(cuDeviceTotalMem(&total, -1), CUDA_ERROR_INVALID_DEVICE);

    /* Every attribute of this cuda.h answers. */
    for (int a = 1; a < CU_DEVICE_ATTRIBUTE_MAX; a++) {
        int v = 0;
        CUresult r = cuDeviceGetAttribute(&v, (CUdevice_attribute)a, dev);
        if (r != CUDA_SUCCESS) {
            fprintf(stderr, "cuDeviceGetAttribute(%d) returned %d\n", a, (int)r);
            g_failures++;
        }
    }
    int v = 0;
    EXPECT_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MAX, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)-1, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)0, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)100000, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, count), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGetAttribute(NULL, CU_DEVICE_ATTRIBUTE_WARP_SIZE, dev), CUDA_ERROR_INVALID_VALUE);

    /* Plausible values for a compute-capability 7.5 part. */
    int major = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    int minor = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    EXPECT(major == 7 && minor == 5);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_WARP_SIZE) == 32);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK) == 1024);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT) > 0);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING) == 1);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X) >= 1024);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z) >= 64);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X) >= 65535);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK) >= 48 * 1024);
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN) >=
           attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK));
    EXPECT(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR) >=
           attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));

    int cmaj = 0, cmin = 0;
    CHECK(cuDeviceComputeCapability(&cmaj, &cmin, dev));
    EXPECT(cmaj == major && cmin == minor);
    EXPECT_ERR(cuDeviceComputeCapability(&cmaj, &cmin, count), CUDA_ERROR_INVALID_DEVICE);

    /* PCI bus id: "domain:bus:device.function", consistent with the PCI attributes, and
     * cuDeviceGetByPCIBusId maps it (full or without domain, any hex case) back to the device. */
    char bus[64];
    CHECK(cuDeviceGetPCIBusId(bus, sizeof bus, dev));
    unsigned dom = 0, b = 0, d = 0, fn = 0;
    EXPECT(sscanf(bus, "%x:%x:%x.%x", &dom, &b, &d, &fn) == 4);
    EXPECT((int)dom == attr(dev, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID));
    EXPECT((int)b == attr(dev, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID));
    EXPECT((int)d == attr(dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID));
    CUdevice back = -1;
    CHECK(cuDeviceGetByPCIBusId(&back, bus));
    EXPECT(back == dev);
    char up[64];
    for (size_t i = 0; i <= strlen(bus); i++) up[i] = (bus[i] >= 'a' && bus[i] <= 'f') ? bus[i] - 32 : bus[i];
    back = -1;
    CHECK(cuDeviceGetByPCIBusId(&back, up));
    EXPECT(back == dev);
    char shortid[64];
    snprintf(shortid, sizeof shortid, "%02x:%02x.%x", b, d, fn);
    back = -1;
    CHECK(cuDeviceGetByPCIBusId(&back, shortid));
    EXPECT(back == dev);
    EXPECT(cuDeviceGetByPCIBusId(&back, "ffff:ff:1f.7") != CUDA_SUCCESS);
    EXPECT(cuDeviceGetByPCIBusId(&back, "not a bus id") != CUDA_SUCCESS);
    EXPECT_ERR(cuDeviceGetPCIBusId(bus, sizeof bus, count), CUDA_ERROR_INVALID_DEVICE);

    /* Legacy properties agree with the attributes. */
    CUdevprop prop;
    memset(&prop, 0, sizeof prop);
    CHECK(cuDeviceGetProperties(&prop, dev));
    EXPECT(prop.maxThreadsPerBlock == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
    EXPECT(prop.maxThreadsDim[0] == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X));
    EXPECT(prop.maxThreadsDim[1] == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y));
    EXPECT(prop.maxThreadsDim[2] == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z));
    EXPECT(prop.maxGridSize[0] == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X));
    EXPECT(prop.maxGridSize[1] == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y));
    EXPECT(prop.maxGridSize[2] == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z));
    EXPECT(prop.sharedMemPerBlock == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK));
    EXPECT(prop.totalConstantMemory == attr(dev, CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY));
    EXPECT(prop.SIMDWidth == attr(dev, CU_DEVICE_ATTRIBUTE_WARP_SIZE));
    EXPECT(prop.memPitch == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_PITCH));
    EXPECT(prop.regsPerBlock == attr(dev, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK));
    EXPECT(prop.clockRate == attr(dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE));
    EXPECT(prop.textureAlign == attr(dev, CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT));
    EXPECT_ERR(cuDeviceGetProperties(&prop, count), CUDA_ERROR_INVALID_DEVICE);

    /* The memory a context sees is the device's. */
    CUcontext ctx = setup();
    size_t free_b = 0, total_ctx = 0;
    CHECK(cuMemGetInfo(&free_b, &total_ctx));
    EXPECT(total_ctx == total);
    EXPECT(free_b <= total_ctx);

    /* cuGetProcAddress: a forwarded symbol resolves to a working function. */
    void *pfn = NULL;
    CUdriverProcAddressQueryResult status = (CUdriverProcAddressQueryResult)-1;
    CHECK(cuGetProcAddress("cuMemAlloc", &pfn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status));
    EXPECT(pfn != NULL);
    EXPECT(status == CU_GET_PROC_ADDRESS_SUCCESS);
    void *pfree = NULL;
    CHECK(cuGetProcAddress("cuMemFree", &pfree, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status));
    EXPECT(pfree != NULL);
    if (pfn && pfree) {
        CUdeviceptr p = 0;
        CHECK(((MemAllocFn)pfn)(&p, 4096));
        EXPECT(p != 0);
        size_t base_size = 0;
        CUdeviceptr base = 0;
        CHECK(cuMemGetAddressRange(&base, &base_size, p));
        EXPECT(base == p && base_size == 4096);
        uint32_t in[4] = {1, 2, 3, 4}, out[4] = {0};
        CHECK(cuMemcpyHtoD(p, in, sizeof in));
        CHECK(cuMemcpyDtoH(out, p, sizeof out));
        EXPECT(memcmp(in, out, sizeof in) == 0);
        CHECK(((MemFreeFn)pfree)(p));
        EXPECT_ERR(cuMemFree(p), CUDA_ERROR_INVALID_VALUE);
    }
    /* An unknown symbol: not found, status says so, *pfn cleared. */
    pfn = (void *)1;
    EXPECT_ERR(cuGetProcAddress("cuNoSuchFunctionAnywhere", &pfn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status),
               CUDA_ERROR_NOT_FOUND);
    EXPECT(pfn == NULL);
    EXPECT(status == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    /* A symbol newer than the requested version: found, but not for that version. */
    pfn = (void *)1;
    status = CU_GET_PROC_ADDRESS_SUCCESS;
    cuGetProcAddress("cuLibraryLoadData", &pfn, 11000, CU_GET_PROC_ADDRESS_DEFAULT, &status);
    EXPECT(pfn == NULL);
    EXPECT(status == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    /* A CUDA version newer than the driver's is an invalid value (documented). */
    EXPECT_ERR(cuGetProcAddress("cuMemAlloc", &pfn, driver + 1000, CU_GET_PROC_ADDRESS_DEFAULT, &status),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuGetProcAddress(NULL, &pfn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status), CUDA_ERROR_INVALID_VALUE);
    /* The per-thread-default-stream flavour is a different entry point that uses the calling
     * thread's per-thread stream for the NULL stream. */
    void *legacy = NULL, *ptsz = NULL;
    CHECK(cuGetProcAddress("cuMemsetD32Async", &legacy, 13000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status));
    CHECK(cuGetProcAddress("cuMemsetD32Async", &ptsz, 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
                           &status));
    EXPECT(legacy != NULL && ptsz != NULL && legacy != ptsz);
    if (ptsz) {
        typedef CUresult (*MemsetD32AsyncFn)(CUdeviceptr, unsigned int, size_t, CUstream);
        CUdeviceptr p = 0;
        uint32_t out[64];
        CHECK(cuMemAlloc(&p, sizeof out));
        CHECK(((MemsetD32AsyncFn)ptsz)(p, 0x7e57u, 64, NULL));
        CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
        CHECK(cuMemcpyDtoH(out, p, sizeof out));
        int ok = 1;
        for (int i = 0; i < 64; i++) ok &= out[i] == 0x7e57u;
        EXPECT(ok);
        CHECK(cuMemFree(p));
    }
    EXPECT_ERR(cuGetProcAddress("cuMemAlloc", NULL, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status),
               CUDA_ERROR_INVALID_VALUE);

    /* A function that is not forwarded says so, and leaves the context working. */
    CUgraph g = NULL;
    EXPECT_ERR(cuGraphCreate(&g, 0), CUDA_ERROR_NOT_SUPPORTED);
    CUcontext cur = NULL;
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == ctx);

    CHECK(cuDevicePrimaryCtxRelease(dev));
    return finish("devices");
}
