// Recovery from a sticky error: a kernel writes through a bogus pointer, cudaDeviceSynchronize
// reports cudaErrorIllegalAddress, then cudaDeviceReset clears it and the program goes on with
// new allocations and a working kernel.
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

int main() {
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

    int h = 0;
    e = cudaMemcpy(&h, keep, sizeof h, cudaMemcpyDeviceToHost);
    EXPECT(e == cudaErrorIllegalAddress, "cudaMemcpy after the fault: %s", cudaGetErrorName(e));

    // Reset: the error is gone, fresh allocations and kernels work.
    CHECK(cudaDeviceReset());
    (void)cudaGetLastError();  // whatever the failed calls above left
    EXPECT(works("after reset"), "%s", "kernel after cudaDeviceReset");
    return finish("illegal_address_reset");
}
