// Exact per-kernel function attributes: sharedSizeBytes counts only the kernel's own static
// __shared__ variables (0 for a kernel without any, even if another kernel of the same module
// has some), and __launch_bounds__(256) gives maxThreadsPerBlock == 256 (PTX .maxntid); a launch
// above that bound is refused.
#include "check.h"

__global__ void plain(float* x) {
    x[threadIdx.x] *= 2.0f;
}

__global__ void with_static_shared(float* x) {
    __shared__ float a[300];   // 1200 bytes
    __shared__ double b[10];   // 80 bytes
    a[threadIdx.x % 300] = x[threadIdx.x];
    if (threadIdx.x < 10) b[threadIdx.x] = threadIdx.x;
    __syncthreads();
    x[threadIdx.x] = a[(threadIdx.x + 1) % 300] + (float)b[threadIdx.x % 10];
}

__global__ void __launch_bounds__(256) bounded(float* x) {
    x[threadIdx.x] += 1.0f;
}

int main() {
    cudaFuncAttributes a;
    CHECK(cudaFuncGetAttributes(&a, plain));
    EXPECT(a.sharedSizeBytes == 0, "plain: sharedSizeBytes %zu, want 0", a.sharedSizeBytes);
    CHECK(cudaFuncGetAttributes(&a, with_static_shared));
    EXPECT(a.sharedSizeBytes == 1280, "with_static_shared: sharedSizeBytes %zu, want 1280", a.sharedSizeBytes);
    CHECK(cudaFuncGetAttributes(&a, bounded));
    EXPECT(a.sharedSizeBytes == 0, "bounded: sharedSizeBytes %zu, want 0", a.sharedSizeBytes);
    EXPECT(a.maxThreadsPerBlock == 256, "bounded: maxThreadsPerBlock %d, want 256", a.maxThreadsPerBlock);

    float* x;
    CHECK(cudaMalloc(&x, 1024 * sizeof(float)));
    bounded<<<1, 512>>>(x);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    EXPECT(e != cudaSuccess, "launching bounded (launch bounds 256) with 512 threads: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    CHECK(cudaFree(x));
    return finish("func_attributes_exact");
}
