// Launch APIs besides <<<>>>: cudaLaunchKernel with an argument array, cudaLaunchKernelEx with a
// cudaLaunchConfig_t (C++ template), launches on cudaStreamPerThread and cudaStreamLegacy,
// streams with priorities (cudaDeviceGetStreamPriorityRange, cudaStreamCreateWithPriority,
// cudaStreamGetPriority, cudaStreamGetFlags), and kernels with many mixed-size parameters.
#include "check.h"
#include <vector>

__global__ void axpb(float* y, const float* x, float a, float b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + b;
}

__global__ void many(long long* out, char c, short s, int i, long long l, float f, double d,
                     unsigned char uc, unsigned short us, unsigned u, unsigned long long ul, bool flag,
                     const int* p) {
    *out = c + s + i + l + (long long)f + (long long)d + uc + us + u + (long long)ul + flag + p[0];
}

int main() {
    const int n = 4096;
    std::vector<float> hx(n), hy(n);
    for (int i = 0; i < n; i++) hx[i] = i * 0.25f;
    float *x, *y;
    CHECK(cudaMalloc(&x, n * sizeof(float)));
    CHECK(cudaMalloc(&y, n * sizeof(float)));
    CHECK(cudaMemcpy(x, hx.data(), n * sizeof(float), cudaMemcpyHostToDevice));

    // cudaLaunchKernel.
    float a = 2.0f, b = -1.0f;
    int nn = n;
    void* args[] = {&y, &x, &a, &b, &nn};
    CHECK(cudaLaunchKernel((const void*)axpb, dim3(n / 256), dim3(256), args, 0, 0));
    CHECK(cudaMemcpy(hy.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(hy[i] == 2.0f * hx[i] - 1.0f, "cudaLaunchKernel y[%d]=%f", i, hy[i]);

    // cudaLaunchKernelEx on a created stream.
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(n / 128);
    cfg.blockDim = dim3(128);
    cfg.dynamicSmemBytes = 0;
    cfg.stream = s;
    cfg.attrs = nullptr;
    cfg.numAttrs = 0;
    CHECK(cudaLaunchKernelEx(&cfg, axpb, y, (const float*)x, 3.0f, 0.5f, n));
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaMemcpy(hy.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(hy[i] == 3.0f * hx[i] + 0.5f, "cudaLaunchKernelEx y[%d]=%f", i, hy[i]);

    // Per-thread default stream and the legacy stream handles.
    axpb<<<n / 256, 256, 0, cudaStreamPerThread>>>(y, x, 1.0f, 1.0f, n);
    CHECK_LAUNCH();
    CHECK(cudaStreamSynchronize(cudaStreamPerThread));
    axpb<<<n / 256, 256, 0, cudaStreamLegacy>>>(x, y, 1.0f, 1.0f, n);  // x = old x + 2
    CHECK_LAUNCH();
    CHECK(cudaStreamSynchronize(cudaStreamLegacy));
    std::vector<float> hx2(n);
    CHECK(cudaMemcpy(hx2.data(), x, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(hx2[i] == hx[i] + 2.0f, "per-thread/legacy x[%d]=%f", i, hx2[i]);

    // Priorities.
    int least = 0, greatest = 0;
    CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    EXPECT(greatest <= least, "priority range %d..%d", least, greatest);
    cudaStream_t hi_s;
    CHECK(cudaStreamCreateWithPriority(&hi_s, cudaStreamNonBlocking, greatest));
    int prio = 12345;
    unsigned flags = 0;
    CHECK(cudaStreamGetPriority(hi_s, &prio));
    CHECK(cudaStreamGetFlags(hi_s, &flags));
    EXPECT(prio == greatest, "stream priority %d want %d", prio, greatest);
    EXPECT(flags == cudaStreamNonBlocking, "stream flags %u", flags);
    CHECK(cudaStreamGetFlags(s, &flags));
    EXPECT(flags == cudaStreamDefault, "default stream flags %u", flags);
    axpb<<<n / 256, 256, 0, hi_s>>>(y, x, 0.0f, 7.0f, n);
    CHECK_LAUNCH();
    CHECK(cudaStreamSynchronize(hi_s));
    CHECK(cudaMemcpy(hy.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(hy[i] == 7.0f, "priority stream y[%d]=%f", i, hy[i]);

    // Many parameters of mixed sizes and alignments.
    long long* dout;
    int* dp;
    CHECK(cudaMalloc(&dout, sizeof(long long)));
    CHECK(cudaMalloc(&dp, sizeof(int)));
    int pv = 1000;
    CHECK(cudaMemcpy(dp, &pv, sizeof pv, cudaMemcpyHostToDevice));
    many<<<1, 1>>>(dout, (char)-5, (short)-300, -70000, -(1ll << 40), 2.5f, -3.75, (unsigned char)250,
                   (unsigned short)65000, 4000000000u, 1ull << 50, true, dp);
    CHECK_LAUNCH();
    long long got = 0;
    CHECK(cudaMemcpy(&got, dout, sizeof got, cudaMemcpyDeviceToHost));
    long long want = -5 - 300 - 70000 - (1ll << 40) + 2 - 3 + 250 + 65000 + 4000000000ll + (1ll << 50) + 1 + 1000;
    EXPECT(got == want, "many params %lld want %lld", got, want);

    CHECK(cudaStreamDestroy(s));
    CHECK(cudaStreamDestroy(hi_s));
    CHECK(cudaFree(x));
    CHECK(cudaFree(y));
    CHECK(cudaFree(dout));
    CHECK(cudaFree(dp));
    return finish("launch_api");
}
