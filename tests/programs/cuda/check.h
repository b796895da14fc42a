// Shared helpers of the runtime-API test programs: CHECK every CUDA runtime call.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#define CHECK(call)                                                                      \
    do {                                                                                 \
        cudaError_t err_ = (call);                                                       \
        if (err_ != cudaSuccess) {                                                       \
            printf("%s:%d: %s failed: %s (%d)\n", __FILE__, __LINE__, #call,             \
                   cudaGetErrorString(err_), (int)err_);                                 \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

// Checks the launch just made (configuration errors) without synchronising.
#define CHECK_LAUNCH() CHECK(cudaGetLastError())

// Records a failed expectation; the program prints FAILED at the end if any.
static int g_failures = 0;
#define EXPECT(cond, ...)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            if (g_failures < 20) {                                                       \
                printf("%s:%d: expected %s: ", __FILE__, __LINE__, #cond);               \
                printf(__VA_ARGS__);                                                     \
                printf("\n");                                                            \
            }                                                                            \
            g_failures++;                                                                \
        }                                                                                \
    } while (0)

static int finish(const char* name) {
    if (g_failures) {
        printf("%s: FAILED (%d failed checks)\n", name, g_failures);
        return 1;
    }
    printf("%s: PASSED\n", name);
    return 0;
}
