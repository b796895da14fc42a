// Shared by illegal_address.cu and illegal_address_reset.cu: kernels, a check that the device
// computes correctly, and a kernel fault through a bogus pointer.
#pragma once
#include "check.h"
#include <cstdint>

__global__ void write_to(int* p, int v) {
    p[threadIdx.x] = v;
}

__global__ void inc(int* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += i;
}

static bool works(const char* when) {
    const int n = 1000;
    int* d;
    cudaError_t e = cudaMalloc(&d, n * sizeof(int));
    if (e != cudaSuccess) {
        printf("%s: cudaMalloc: %s\n", when, cudaGetErrorName(e));
        return false;
    }
    CHECK(cudaMemset(d, 0, n * sizeof(int)));
    inc<<<(n + 127) / 128, 128>>>(d, n);
    CHECK_LAUNCH();
    inc<<<(n + 127) / 128, 128>>>(d, n);
    CHECK_LAUNCH();
    int h[n];
    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    CHECK(cudaFree(d));
    for (int i = 0; i < n; i++)
        if (h[i] != 2 * i) {
            printf("%s: h[%d]=%d\n", when, i, h[i]);
            return false;
        }
    return true;
}

// Checks that the device works, then faults a kernel through a bogus pointer and checks that
// cudaDeviceSynchronize reports it; returns an allocation made before the fault.
static int* fault() {
    EXPECT(works("before"), "%s", "kernel before the fault");
    int* keep;
    CHECK(cudaMalloc(&keep, 64));

    // A pointer far from any allocation.
    int* bogus = (int*)(uintptr_t)0xdead0000ull;
    write_to<<<1, 32>>>(bogus, 7);
    cudaError_t e = cudaGetLastError();
    EXPECT(e == cudaSuccess, "launch itself: %s", cudaGetErrorName(e));
    e = cudaDeviceSynchronize();
    EXPECT(e == cudaErrorIllegalAddress, "cudaDeviceSynchronize: %s", cudaGetErrorName(e));
    return keep;
}
