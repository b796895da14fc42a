// A kernel writing through a bogus pointer: cudaDeviceSynchronize reports
// cudaErrorIllegalAddress and the error is sticky (later synchronisation, copies, allocations and
// launches keep failing with it). Recovery with cudaDeviceReset is illegal_address_reset.cu.
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

    // Sticky: every later call keeps failing with it.
    e = cudaPeekAtLastError();
    EXPECT(e == cudaErrorIllegalAddress, "cudaPeekAtLastError: %s", cudaGetErrorName(e));
    e = cudaGetLastError();
    EXPECT(e == cudaErrorIllegalAddress, "cudaGetLastError: %s", cudaGetErrorName(e));
    e = cudaDeviceSynchronize();
    EXPECT(e == cudaErrorIllegalAddress, "second cudaDeviceSynchronize: %s", cudaGetErrorName(e));
    int h = 0;
    e = cudaMemcpy(&h, keep, sizeof h, cudaMemcpyDeviceToHost);
    EXPECT(e == cudaErrorIllegalAddress, "cudaMemcpy: %s", cudaGetErrorName(e));
    int* more = nullptr;
    e = cudaMalloc(&more, 64);
    EXPECT(e == cudaErrorIllegalAddress, "cudaMalloc: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    inc<<<1, 32>>>(keep, 16);
    // The launch reports the error itself or (rgpu queues launches) by the next synchronisation.
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    EXPECT(e == cudaErrorIllegalAddress, "launch after the fault: %s", cudaGetErrorName(e));
    e = cudaStreamSynchronize(0);
    EXPECT(e == cudaErrorIllegalAddress, "cudaStreamSynchronize: %s", cudaGetErrorName(e));

    return finish("illegal_address");
}
