// A launch asking for more than 48 KB of dynamic shared memory (but no more than the opt-in
// limit) without cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) must fail at
// the launch (cudaGetLastError: cudaErrorInvalidValue) and leave later synchronisation clean;
// after raising the attribute the same launch works.
#include "check.h"

__global__ void dyn(int* x, int n) {
    extern __shared__ int s[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = i;
    __syncthreads();
    int acc = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += s[n - 1 - i];
    atomicAdd(x, acc);
}

int main() {
    int optin = 0;
    CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    int* d;
    CHECK(cudaMalloc(&d, sizeof(int)));
    CHECK(cudaMemset(d, 0, sizeof(int)));
    const size_t bytes = 64 * 1024;
    const int n = bytes / sizeof(int);
    if ((size_t)optin < bytes) {
        printf("opt-in limit %d below 64 KB: nothing to test\n", optin);
        return finish("shared_optin_launch");
    }
    dyn<<<1, 64, bytes>>>(d, n);
    cudaError_t e = cudaGetLastError();
    EXPECT(e == cudaErrorInvalidValue, "launch with 64 KB, no opt-in: %s", cudaGetErrorName(e));
    e = cudaDeviceSynchronize();
    EXPECT(e == cudaSuccess, "cudaDeviceSynchronize after the refused launch: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();  // clear whatever the failed checks above left

    CHECK(cudaFuncSetAttribute(dyn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    dyn<<<1, 64, bytes>>>(d, n);
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());
    int h = 0;
    CHECK(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost));
    int want = n * (n - 1) / 2;
    EXPECT(h == want, "sum %d want %d", h, want);
    CHECK(cudaFree(d));
    return finish("shared_optin_launch");
}
