// Cache and shared-memory configuration hints: cudaFuncSetCacheConfig (cudart 13 calls
// cuKernelSetCacheConfig, cudart 12 cuFuncSetCacheConfig), cudaDeviceSetCacheConfig /
// cudaDeviceGetCacheConfig; kernels still run afterwards.
#include "check.h"

__global__ void scale(float* x, int n, float a) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a;
}

int main() {
    const int n = 1000;
    float* d;
    CHECK(cudaMalloc(&d, n * sizeof(float)));
    float h[n];
    for (int i = 0; i < n; i++) h[i] = i;
    CHECK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));

    CHECK(cudaFuncSetCacheConfig(scale, cudaFuncCachePreferShared));
    scale<<<(n + 127) / 128, 128>>>(d, n, 2.0f);
    CHECK_LAUNCH();
    CHECK(cudaFuncSetCacheConfig(scale, cudaFuncCachePreferL1));
    scale<<<(n + 127) / 128, 128>>>(d, n, 3.0f);
    CHECK_LAUNCH();

    CHECK(cudaDeviceSetCacheConfig(cudaFuncCachePreferEqual));
    cudaFuncCache cfg;
    CHECK(cudaDeviceGetCacheConfig(&cfg));
    EXPECT(cfg == cudaFuncCachePreferEqual || cfg == cudaFuncCachePreferNone, "device cache config %d", (int)cfg);
    scale<<<(n + 127) / 128, 128>>>(d, n, 0.5f);
    CHECK_LAUNCH();

    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(h[i] == i * 3.0f, "h[%d]=%f", i, h[i]);
    CHECK(cudaFree(d));
    return finish("func_cache_config");
}
