/* Contexts: primary-context reference counting and reset, explicit contexts, the per-thread
 * context stack, per-context state (limits, cache config, flags) and the error paths. */
#include "common.h"
#include <stdint.h>
#include <string.h>

static CUcontext current(void) {
    CUcontext c = (CUcontext)(uintptr_t)0xdead;
    CHECK(cuCtxGetCurrent(&c));
    return c;
}

/* An allocation + round trip in the current context works. */
static int ctx_works(void) {
    CUdeviceptr p = 0;
    uint32_t in[64], out[64];
    for (int i = 0; i < 64; i++) in[i] = 0x1000u * i + 7;
    memset(out, 0, sizeof out);
    if (cuMemAlloc(&p, sizeof in) != CUDA_SUCCESS) return 0;
    int ok = cuMemcpyHtoD(p, in, sizeof in) == CUDA_SUCCESS &&
             cuMemcpyDtoH(out, p, sizeof out) == CUDA_SUCCESS && memcmp(in, out, sizeof in) == 0;
    ok = (cuMemFree(p) == CUDA_SUCCESS) && ok;
    return ok;
}

static void primary(CUdevice dev) {
    unsigned flags = 99;
    int active = 99;
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 0);
    EXPECT(flags == 0);
    EXPECT_ERR(cuDevicePrimaryCtxGetState(1000, &flags, &active), CUDA_ERROR_INVALID_DEVICE);
    /* Releasing a primary context nobody retained fails. */
    EXPECT_ERR(cuDevicePrimaryCtxRelease(dev), CUDA_ERROR_INVALID_CONTEXT);

    /* Flags set while inactive are reported and used by the context once retained. */
    CHECK(cuDevicePrimaryCtxSetFlags(dev, CU_CTX_SCHED_BLOCKING_SYNC));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(flags == CU_CTX_SCHED_BLOCKING_SYNC);
    EXPECT(active == 0);
    EXPECT_ERR(cuDevicePrimaryCtxSetFlags(dev, 0x7fff0000u), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDevicePrimaryCtxSetFlags(1000, 0), CUDA_ERROR_INVALID_DEVICE);

    CUcontext p1 = NULL, p2 = NULL, bogus;
    EXPECT_ERR(cuDevicePrimaryCtxRetain(&bogus, 1000), CUDA_ERROR_INVALID_DEVICE);
    CHECK(cuDevicePrimaryCtxRetain(&p1, dev));
    EXPECT(p1 != NULL);
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 1);
    CHECK(cuDevicePrimaryCtxRetain(&p2, dev));
    EXPECT(p1 == p2); /* one primary context per device */

    /* Retaining does not make it current. */
    EXPECT(current() == NULL);
    CHECK(cuCtxSetCurrent(p1));
    EXPECT(current() == p1);
    unsigned cflags = 0;
    CHECK(cuCtxGetFlags(&cflags));
    EXPECT((cflags & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_BLOCKING_SYNC);
    CUdevice d = -1;
    CHECK(cuCtxGetDevice(&d));
    EXPECT(d == dev);
    EXPECT(ctx_works());

    /* Two retains, two releases: active until the last one. */
    CHECK(cuDevicePrimaryCtxRelease(dev));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 1);
    EXPECT(ctx_works());
    CHECK(cuCtxSetCurrent(NULL));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 0);
    EXPECT_ERR(cuDevicePrimaryCtxRelease(dev), CUDA_ERROR_INVALID_CONTEXT);

    /* Reset destroys the allocations and the context; the application still releases its
     * retain afterwards (documented as safe), and a new retain gives a working context. */
    CHECK(cuDevicePrimaryCtxSetFlags(dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&p1, dev));
    CHECK(cuCtxPushCurrent(p1));
    CUdeviceptr keep = 0;
    CHECK(cuMemAlloc(&keep, 1 << 16));
    size_t free_before = 0, free_after = 0, total = 0;
    CHECK(cuMemGetInfo(&free_before, &total));
    CUcontext popped = NULL;
    CHECK(cuCtxPopCurrent(&popped));
    EXPECT(popped == p1);
    CHECK(cuDevicePrimaryCtxReset(dev));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 0);
    CHECK(cuDevicePrimaryCtxRelease(dev));
    CHECK(cuDevicePrimaryCtxRetain(&p1, dev));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 1);
    CHECK(cuCtxSetCurrent(p1));
    CHECK(cuMemGetInfo(&free_after, &total));
    EXPECT(free_after >= free_before + (1 << 16)); /* the allocation went with the reset */
    EXPECT_ERR(cuMemFree(keep), CUDA_ERROR_INVALID_VALUE);
    EXPECT(ctx_works());
    CHECK(cuCtxSetCurrent(NULL));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    EXPECT(current() == NULL);
}

static void stack(CUdevice dev) {
    CUcontext a = NULL, b = NULL, c = NULL, out = NULL;
    EXPECT(current() == NULL);
    /* Popping an empty stack fails and writes nothing. */
    out = (CUcontext)(uintptr_t)0x1234;
    EXPECT_ERR(cuCtxPopCurrent(&out), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT(out == (CUcontext)(uintptr_t)0x1234);
    /* No current context: context-bound calls fail with CUDA_ERROR_INVALID_CONTEXT. */
    CUdeviceptr p;
    EXPECT_ERR(cuMemAlloc(&p, 256), CUDA_ERROR_INVALID_CONTEXT);
    size_t fr, tot;
    EXPECT_ERR(cuMemGetInfo(&fr, &tot), CUDA_ERROR_INVALID_CONTEXT);
    CUdevice d;
    EXPECT_ERR(cuCtxGetDevice(&d), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
    CUstream s;
    EXPECT_ERR(cuStreamCreate(&s, 0), CUDA_ERROR_INVALID_CONTEXT);
    CUevent ev;
    EXPECT_ERR(cuEventCreate(&ev, 0), CUDA_ERROR_INVALID_CONTEXT);
    void *host = NULL;
    EXPECT_ERR(cuMemAllocHost(&host, 4096), CUDA_ERROR_INVALID_CONTEXT);
    size_t lim;
    EXPECT_ERR(cuCtxGetLimit(&lim, CU_LIMIT_STACK_SIZE), CUDA_ERROR_INVALID_CONTEXT);
    /* cuCtxSetCurrent(NULL) on an empty stack is a no-op. */
    CHECK(cuCtxSetCurrent(NULL));
    EXPECT(current() == NULL);

    /* cuCtxCreate makes the new context current (pushes it). */
    EXPECT_ERR(cuCtxCreate(&c, NULL, 0, 1000), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuCtxCreate(&c, NULL, 0x7fff0000u, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT(current() == NULL);
    CHECK(cuCtxCreate(&a, NULL, CU_CTX_SCHED_YIELD, dev));
    EXPECT(a != NULL);
    EXPECT(current() == a);
    CHECK(cuCtxCreate(&b, NULL, CU_CTX_SCHED_SPIN, dev));
    EXPECT(b != NULL && b != a);
    EXPECT(current() == b);

    /* Per-context information. */
    unsigned fl = 0, ver = 0;
    CHECK(cuCtxGetFlags(&fl));
    EXPECT((fl & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_SPIN);
    unsigned long long ida = 0, idb = 0, ida2 = 0;
    CHECK(cuCtxGetId(a, &ida));
    CHECK(cuCtxGetId(b, &idb));
    CHECK(cuCtxGetId(a, &ida2));
    EXPECT(ida != idb);
    EXPECT(ida == ida2);
    CHECK(cuCtxGetApiVersion(a, &ver));
    EXPECT(ver >= 3020);
    CHECK(cuCtxGetDevice(&d));
    EXPECT(d == dev);
    d = -1;
    CHECK(cuCtxGetDevice_v2(&d, a));
    EXPECT(d == dev);
    CHECK(cuCtxSetFlags(CU_CTX_SCHED_BLOCKING_SYNC));
    CHECK(cuCtxGetFlags(&fl));
    EXPECT((fl & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_BLOCKING_SYNC);
    EXPECT_ERR(cuCtxSetFlags(0x7fff0000u), CUDA_ERROR_INVALID_VALUE);

    /* Pop returns the top and uncovers the one below. */
    CHECK(cuCtxPopCurrent(&out));
    EXPECT(out == b);
    EXPECT(current() == a);
    CHECK(cuCtxGetFlags(&fl)); /* a's flags are untouched by b's cuCtxSetFlags */
    EXPECT((fl & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_YIELD);
    CHECK(cuCtxPopCurrent(&out));
    EXPECT(out == a);
    EXPECT(current() == NULL);
    EXPECT_ERR(cuCtxPopCurrent(&out), CUDA_ERROR_INVALID_CONTEXT);

    /* Push order a, b, a: pops come back a, b, a. */
    EXPECT_ERR(cuCtxPushCurrent(NULL), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxPushCurrent(a));
    CHECK(cuCtxPushCurrent(b));
    CHECK(cuCtxPushCurrent(a));
    EXPECT(current() == a);
    CHECK(cuCtxPopCurrent(&out));
    EXPECT(out == a);
    EXPECT(current() == b);
    /* cuCtxSetCurrent replaces the top of the stack... */
    CHECK(cuCtxSetCurrent(a));
    EXPECT(current() == a);
    CHECK(cuCtxPopCurrent(&out));
    EXPECT(out == a);
    EXPECT(current() == a); /* the a pushed first */
    /* ...and NULL pops it. */
    CHECK(cuCtxPushCurrent(b));
    CHECK(cuCtxSetCurrent(NULL));
    EXPECT(current() == a);
    CHECK(cuCtxSetCurrent(NULL));
    EXPECT(current() == NULL);
    EXPECT_ERR(cuCtxPopCurrent(NULL), CUDA_ERROR_INVALID_CONTEXT);

    /* Allocations belong to the context that made them. */
    CHECK(cuCtxPushCurrent(a));
    EXPECT(ctx_works());
    CUdeviceptr in_b = 0;
    CHECK(cuCtxPushCurrent(b));
    CHECK(cuMemAlloc(&in_b, 4096));
    CHECK(cuMemsetD8(in_b, 0x5a, 4096));
    EXPECT(ctx_works());
    CHECK(cuCtxSynchronize());
    CHECK(cuCtxSynchronize_v2(a));

    /* Destroying the current context pops it; the one below becomes current. */
    CHECK(cuCtxDestroy(b));
    EXPECT(current() == a);
    /* A destroyed context cannot be used again. */
    EXPECT(cuCtxSetCurrent(b) != CUDA_SUCCESS);
    EXPECT(current() == a);
    EXPECT(cuCtxPushCurrent(b) != CUDA_SUCCESS);
    EXPECT(current() == a);
    EXPECT(cuCtxDestroy(b) != CUDA_SUCCESS);
    EXPECT(cuCtxGetId(b, &idb) != CUDA_SUCCESS);
    EXPECT(cuCtxSynchronize_v2(b) != CUDA_SUCCESS);
    /* Its memory went with it. */
    EXPECT_ERR(cuMemFree(in_b), CUDA_ERROR_INVALID_VALUE);
    EXPECT(ctx_works());

    EXPECT_ERR(cuCtxDestroy(NULL), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxDestroy(a));
    EXPECT(current() == NULL);
    EXPECT_ERR(cuMemAlloc(&p, 256), CUDA_ERROR_INVALID_CONTEXT);
}

static void state(CUdevice dev) {
    CUcontext a = NULL, b = NULL;
    CHECK(cuCtxCreate(&a, NULL, 0, dev));
    size_t v = 0, v2 = 0;
    CHECK(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE));
    EXPECT(v > 0);
    CHECK(cuCtxGetLimit(&v, CU_LIMIT_PRINTF_FIFO_SIZE));
    EXPECT(v > 0);
    CHECK(cuCtxGetLimit(&v, CU_LIMIT_MALLOC_HEAP_SIZE));
    EXPECT(v > 0);
    CHECK(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 4096));
    CHECK(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE));
    EXPECT(v >= 4096);
    CHECK(cuCtxSetLimit(CU_LIMIT_MALLOC_HEAP_SIZE, 32 << 20));
    CHECK(cuCtxGetLimit(&v, CU_LIMIT_MALLOC_HEAP_SIZE));
    EXPECT(v >= (size_t)32 << 20);
    CHECK(cuCtxSetLimit(CU_LIMIT_PRINTF_FIFO_SIZE, 3 << 20));
    CHECK(cuCtxGetLimit(&v, CU_LIMIT_PRINTF_FIFO_SIZE));
    EXPECT(v >= (size_t)3 << 20);
    EXPECT_ERR(cuCtxGetLimit(&v, CU_LIMIT_MAX), CUDA_ERROR_UNSUPPORTED_LIMIT);
    EXPECT_ERR(cuCtxGetLimit(&v, (CUlimit)0x1234), CUDA_ERROR_UNSUPPORTED_LIMIT);
    EXPECT_ERR(cuCtxSetLimit((CUlimit)0x1234, 1), CUDA_ERROR_UNSUPPORTED_LIMIT);
    EXPECT_ERR(cuCtxSetLimit(CU_LIMIT_MAX, 1), CUDA_ERROR_UNSUPPORTED_LIMIT);
    /* A failed call leaves the context as it was. */
    CHECK(cuCtxGetLimit(&v2, CU_LIMIT_MALLOC_HEAP_SIZE));
    EXPECT(v2 == v || v2 >= (size_t)32 << 20);
    EXPECT(current() == a);
    EXPECT(ctx_works());

    /* Cache configuration round trip; bogus configs are refused. */
    CUfunc_cache cc = (CUfunc_cache)99;
    CHECK(cuCtxGetCacheConfig(&cc));
    EXPECT(cc == CU_FUNC_CACHE_PREFER_NONE);
    CHECK(cuCtxSetCacheConfig(CU_FUNC_CACHE_PREFER_SHARED));
    CHECK(cuCtxGetCacheConfig(&cc));
    EXPECT(cc == CU_FUNC_CACHE_PREFER_SHARED);
    EXPECT_ERR(cuCtxSetCacheConfig((CUfunc_cache)99), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxGetCacheConfig(&cc));
    EXPECT(cc == CU_FUNC_CACHE_PREFER_SHARED);

    /* Stream priorities: greatest (numerically lowest) <= least; both outputs optional. */
    int least = 99, greatest = 99;
    CHECK(cuCtxGetStreamPriorityRange(&least, &greatest));
    EXPECT(greatest <= least);
    EXPECT(least == 0);
    int only = 99;
    CHECK(cuCtxGetStreamPriorityRange(&only, NULL));
    EXPECT(only == least);
    CHECK(cuCtxGetStreamPriorityRange(NULL, &only));
    EXPECT(only == greatest);
    CHECK(cuCtxGetStreamPriorityRange(NULL, NULL));

    /* Limits and cache config are per context. */
    CHECK(cuCtxCreate(&b, NULL, 0, dev));
    CHECK(cuCtxGetCacheConfig(&cc));
    EXPECT(cc == CU_FUNC_CACHE_PREFER_NONE);
    CHECK(cuCtxGetLimit(&v2, CU_LIMIT_MALLOC_HEAP_SIZE));
    EXPECT(v2 < (size_t)32 << 20);
    CHECK(cuCtxDestroy(b));
    EXPECT(current() == a);
    CHECK(cuCtxGetCacheConfig(&cc));
    EXPECT(cc == CU_FUNC_CACHE_PREFER_SHARED);

    /* A failed allocation leaves the context usable. */
    CUdeviceptr huge = 0;
    EXPECT_ERR(cuMemAlloc(&huge, 1ULL << 50), CUDA_ERROR_OUT_OF_MEMORY);
    EXPECT(ctx_works());
    CHECK(cuCtxSynchronize());
    CHECK(cuCtxDestroy(a));
    EXPECT(current() == NULL);
}

int main(void) {
    CUdevice dev;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    primary(dev);
    stack(dev);
    state(dev);
    return finish("contexts");
}
