// Large by-value struct kernel parameters (4 KB and 8 KB) whose arrays are indexed with the
// thread index: nvcc takes the parameter's address (`mov.b64 %rd, kernel_param_1;`) and loads
// through it (`ld.param.f32 [%rd+8]`).
#include "check.h"
#include <cstring>

struct Big4K {  // exactly 4096 bytes
    int n;
    int pad;
    float w[1022];
};
struct Big8K {  // 8 KB + 8 bytes
    double v[1024];
    int scale;
    int off;
};
static_assert(sizeof(Big4K) == 4096, "Big4K size");

__global__ void k_big4k(char tag, Big4K b, float* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < b.n) out[i] = b.w[i] * 2.0f + tag;
}

__global__ void k_big8k(Big8K b, int after, double* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < 1024) out[i] = b.v[i] * b.scale + b.off + after;
}

int main() {
    Big4K* b4 = new Big4K;
    b4->n = 1022;
    b4->pad = 0;
    for (int i = 0; i < 1022; i++) b4->w[i] = i * 0.5f - 100;
    float* d4;
    CHECK(cudaMalloc(&d4, 1022 * sizeof(float)));
    k_big4k<<<8, 128>>>(3, *b4, d4);
    CHECK_LAUNCH();
    float h4[1022];
    CHECK(cudaMemcpy(h4, d4, sizeof h4, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 1022; i++)
        EXPECT(h4[i] == b4->w[i] * 2.0f + 3, "big4k[%d]=%f", i, h4[i]);

    Big8K* b8 = new Big8K;
    for (int i = 0; i < 1024; i++) b8->v[i] = i * 0.25;
    b8->scale = 3;
    b8->off = -11;
    double* d8;
    CHECK(cudaMalloc(&d8, 1024 * sizeof(double)));
    k_big8k<<<8, 128>>>(*b8, 1000, d8);
    CHECK_LAUNCH();
    double h8[1024];
    CHECK(cudaMemcpy(h8, d8, sizeof h8, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 1024; i++)
        EXPECT(h8[i] == b8->v[i] * 3 - 11 + 1000, "big8k[%d]=%f", i, h8[i]);

    // The struct is captured at launch: changing it afterwards does not affect a queued launch.
    cudaStream_t st;
    CHECK(cudaStreamCreate(&st));
    k_big4k<<<8, 128, 0, st>>>(1, *b4, d4);
    CHECK_LAUNCH();
    for (int i = 0; i < 1022; i++) b4->w[i] = -1;
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaMemcpy(h4, d4, sizeof h4, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 1022; i++)
        EXPECT(h4[i] == (i * 0.5f - 100) * 2.0f + 1, "big4k again [%d]=%f", i, h4[i]);

    CHECK(cudaStreamDestroy(st));
    CHECK(cudaFree(d4));
    CHECK(cudaFree(d8));
    delete b4;
    delete b8;
    return finish("struct_params_indexed");
}
