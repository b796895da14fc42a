/* Helpers shared by the driver-API test programs. */
#ifndef RGPU_TEST_COMMON_H
#define RGPU_TEST_COMMON_H
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static int g_failures __attribute__((unused)) = 0;

#define CHECK(call)                                                                  \
    do {                                                                             \
        CUresult r_ = (call);                                                        \
        if (r_ != CUDA_SUCCESS) {                                                    \
            const char *n_ = 0;                                                      \
            cuGetErrorName(r_, &n_);                                                 \
            fprintf(stderr, "%s:%d: %s failed: %d (%s)\n", __FILE__, __LINE__, #call, \
                    (int)r_, n_ ? n_ : "?");                                         \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#define EXPECT_ERR(call, want)                                                         \
    do {                                                                               \
        CUresult r_ = (call);                                                          \
        if (r_ != (want)) {                                                            \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d (%s)\n", __FILE__,      \
                    __LINE__, #call, (int)r_, (int)(want), #want);                     \
            g_failures++;                                                              \
        }                                                                              \
    } while (0)

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
            g_failures++;                                                              \
        }                                                                              \
    } while (0)

static inline int finish(const char *name) {
    if (g_failures) {
        printf("%s: FAILED (%d)\n", name, g_failures);
        return 1;
    }
    printf("%s: PASSED\n", name);
    return 0;
}

static inline CUcontext setup(void) {
    CUdevice dev;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    return ctx;
}
#endif
