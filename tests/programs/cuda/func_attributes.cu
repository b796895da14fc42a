// cudaFuncGetAttributes: numRegs, sharedSizeBytes of static shared memory, constSizeBytes,
// localSizeBytes, maxThreadsPerBlock, ptxVersion/binaryVersion (the exact per-kernel values of
// sharedSizeBytes and of maxThreadsPerBlock under __launch_bounds__: func_attributes_exact.cu);
// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) then a launch using more
// than 48 KB of dynamic shared memory; cudaFuncSetAttribute carveout (cudaFuncSetCacheConfig:
// func_cache_config.cu).
#include "check.h"

__constant__ float ctab[64];

__global__ void plain(float* x) {
    x[threadIdx.x] *= 2.0f;
}

__global__ void with_static_shared(float* x) {
    __shared__ float a[300];   // 1200 bytes
    __shared__ double b[10];   // 80 bytes
    a[threadIdx.x % 300] = x[threadIdx.x];
    if (threadIdx.x < 10) b[threadIdx.x] = threadIdx.x;
    __syncthreads();
    x[threadIdx.x] = a[(threadIdx.x + 1) % 300] + (float)b[threadIdx.x % 10] + ctab[threadIdx.x % 64];
}

__global__ void __launch_bounds__(256) bounded(float* x) {
    x[threadIdx.x] += 1.0f;
}

__global__ void big_dynamic(int* out, int n) {
    extern __shared__ int s[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = i;
    __syncthreads();
    int acc = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += s[n - 1 - i];
    atomicAdd(out, acc);
}

static cudaFuncAttributes get(const void* f, const char* name) {
    cudaFuncAttributes a;
    CHECK(cudaFuncGetAttributes(&a, f));
    printf("%s: regs %d shared %zu const %zu local %zu maxThreads %d ptx %d bin %d maxDyn %d\n",
           name, a.numRegs, a.sharedSizeBytes, a.constSizeBytes, a.localSizeBytes,
           a.maxThreadsPerBlock, a.ptxVersion, a.binaryVersion, a.maxDynamicSharedSizeBytes);
    EXPECT(a.numRegs >= 0 && a.numRegs <= 255, "%s numRegs %d", name, a.numRegs);
    EXPECT(a.ptxVersion >= 10 && a.ptxVersion < 1000, "%s ptxVersion %d", name, a.ptxVersion);
    EXPECT(a.binaryVersion >= 10 && a.binaryVersion < 1000, "%s binaryVersion %d", name, a.binaryVersion);
    return a;
}

int main() {
    int mtpb = 0, optin = 0, smem = 0;
    CHECK(cudaDeviceGetAttribute(&mtpb, cudaDevAttrMaxThreadsPerBlock, 0));
    CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlock, 0));

    cudaFuncAttributes a = get((const void*)plain, "plain");
    EXPECT(a.maxThreadsPerBlock == mtpb, "plain maxThreadsPerBlock %d", a.maxThreadsPerBlock);
    EXPECT(a.maxDynamicSharedSizeBytes > 0 && a.maxDynamicSharedSizeBytes <= smem, "plain maxDynamicShared %d", a.maxDynamicSharedSizeBytes);

    a = get((const void*)with_static_shared, "with_static_shared");
    // 1200 + 80 bytes (double array 8-aligned after the float array): at least 1280, at most a
    // little alignment padding more.
    EXPECT(a.sharedSizeBytes >= 1280 && a.sharedSizeBytes <= 1280 + 16, "static shared %zu", a.sharedSizeBytes);

    a = get((const void*)bounded, "bounded");
    EXPECT(a.maxThreadsPerBlock >= 256 && a.maxThreadsPerBlock <= mtpb, "__launch_bounds__(256) maxThreadsPerBlock %d", a.maxThreadsPerBlock);

    // More than 48 KB of dynamic shared memory after opting in.
    cudaFuncAttributes bd = get((const void*)big_dynamic, "big_dynamic");
    EXPECT(bd.maxDynamicSharedSizeBytes <= smem, "default max dynamic %d", bd.maxDynamicSharedSizeBytes);
    // Static plus dynamic shared memory may not exceed the opt-in limit.
    int room = optin - (int)bd.sharedSizeBytes;
    int want_bytes = room < 96 * 1024 ? room : 96 * 1024;
    EXPECT(want_bytes > 48 * 1024, "opt-in room %d", want_bytes);
    CHECK(cudaFuncSetAttribute(big_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, want_bytes));
    bd = get((const void*)big_dynamic, "big_dynamic (opted in)");
    EXPECT(bd.maxDynamicSharedSizeBytes == want_bytes, "max dynamic after set %d want %d", bd.maxDynamicSharedSizeBytes, want_bytes);
    // Above the opt-in limit is refused.
    cudaError_t e = cudaFuncSetAttribute(big_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, optin + 1);
    EXPECT(e == cudaErrorInvalidValue, "set above opt-in: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    CHECK(cudaFuncSetAttribute(big_dynamic, cudaFuncAttributePreferredSharedMemoryCarveout, 100));

    int* d;
    CHECK(cudaMalloc(&d, sizeof(int)));
    CHECK(cudaMemset(d, 0, sizeof(int)));
    int n = want_bytes / sizeof(int);
    big_dynamic<<<1, 128, want_bytes>>>(d, n);
    CHECK_LAUNCH();
    int h = 0;
    CHECK(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost));
    long long want = (long long)n * (n - 1) / 2;
    EXPECT(h == (int)want, "sum %d want %lld", h, want);

    // The other kernels launch with their limits.
    float* x;
    CHECK(cudaMalloc(&x, 1024 * sizeof(float)));
    CHECK(cudaMemset(x, 0, 1024 * sizeof(float)));
    bounded<<<1, 256>>>(x);
    CHECK_LAUNCH();
    plain<<<1, 1024>>>(x);
    CHECK_LAUNCH();
    with_static_shared<<<1, 512>>>(x);
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaFree(x));
    CHECK(cudaFree(d));
    return finish("func_attributes");
}
