/* cuPointerGetAttribute(s) on device, page-locked host and unknown pointers; stream-ordered
 * allocation (cuMemAllocAsync / cuMemFreeAsync). */
#include "common.h"
#include <string.h>

int main(void) {
    CUcontext ctx = setup();
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, 1000));
    unsigned int mt = 0;
    CHECK(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d + 10));
    EXPECT(mt == CU_MEMORYTYPE_DEVICE);
    CUdeviceptr start = 0;
    size_t size = 0;
    CHECK(cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, d + 10));
    CHECK(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, d + 10));
    EXPECT(start == d && size == 1000);
    CUcontext owner = 0;
    CHECK(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, d));
    EXPECT(owner == ctx);
    int ordinal = -5;
    CHECK(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, d));
    EXPECT(ordinal == 0);
    void *hp = 0;
    EXPECT_ERR(cuPointerGetAttribute(&hp, CU_POINTER_ATTRIBUTE_HOST_POINTER, d), CUDA_ERROR_INVALID_VALUE);

    void *pinned;
    CHECK(cuMemAllocHost(&pinned, 4096));
    CHECK(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)pinned + 100));
    EXPECT(mt == CU_MEMORYTYPE_HOST);

    int local = 0;
    EXPECT_ERR(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)&local), CUDA_ERROR_INVALID_VALUE);
    /* The plural form does not fail on unknown pointers: attributes get null values. */
    CUpointer_attribute attrs[2] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_DEVICE_POINTER};
    unsigned int mt2 = 77;
    CUdeviceptr dp = 77;
    void *vals[2] = {&mt2, &dp};
    CHECK(cuPointerGetAttributes(2, attrs, vals, (CUdeviceptr)&local));
    EXPECT(mt2 == 0 && dp == 0);
    CHECK(cuPointerGetAttributes(2, attrs, vals, d));
    EXPECT(mt2 == CU_MEMORYTYPE_DEVICE && dp == d);

    /* Stream-ordered allocation. */
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr a;
    CHECK(cuMemAllocAsync(&a, 1 << 20, s));
    CHECK(cuMemsetD32Async(a, 0x01020304u, (1 << 20) / 4, s));
    unsigned int v[4];
    CHECK(cuMemcpyDtoHAsync(v, a + 4096, sizeof v, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT(v[0] == 0x01020304u && v[3] == 0x01020304u);
    CHECK(cuMemFreeAsync(a, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT_ERR(cuMemFreeAsync(a, s), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAllocAsync(&a, 64, (CUstream)(uintptr_t)0xdead0), CUDA_ERROR_INVALID_HANDLE);

    CHECK(cuMemFreeHost(pinned));
    CHECK(cuMemFree(d));
    CHECK(cuStreamDestroy(s));
    return finish("pointers");
}
