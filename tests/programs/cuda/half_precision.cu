// Half and bfloat16 arithmetic (inline-asm PTX from cuda_fp16.h / cuda_bf16.h) checked against
// the same operations done on the host with float rounding to half.
#include "check.h"
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cmath>

__global__ void halves(const float* a, const float* b, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    __half x = __float2half(a[i]), y = __float2half(b[i]);
    out[6 * i + 0] = __half2float(__hadd(x, y));
    out[6 * i + 1] = __half2float(__hmul(x, y));
    out[6 * i + 2] = __half2float(__hfma(x, y, x));
    __half2 p = __halves2half2(x, y);
    __half2 q = __hmul2(p, p);
    out[6 * i + 3] = __half2float(__low2half(q)) + __half2float(__high2half(q));
    out[6 * i + 4] = __hlt(x, y) ? 1.0f : 0.0f;
    __nv_bfloat16 bx = __float2bfloat16(a[i]);
    out[6 * i + 5] = __bfloat162float(__hadd(bx, bx));
}

static float h(float v) { return __half2float(__float2half(v)); }
static float bf(float v) { return __bfloat162float(__float2bfloat16(v)); }

int main() {
    const int n = 1000;
    float a[n], b[n], out[6 * n];
    for (int i = 0; i < n; i++) {
        a[i] = (i % 97) * 0.37f - 11.0f;
        b[i] = (i % 31) * -0.61f + 4.5f;
    }
    float *da, *db, *dout;
    CHECK(cudaMalloc(&da, sizeof a));
    CHECK(cudaMalloc(&db, sizeof b));
    CHECK(cudaMalloc(&dout, sizeof out));
    CHECK(cudaMemcpy(da, a, sizeof a, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b, sizeof b, cudaMemcpyHostToDevice));
    halves<<<(n + 127) / 128, 128>>>(da, db, dout, n);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        float x = h(a[i]), y = h(b[i]);
        EXPECT(out[6 * i + 0] == h(x + y), "hadd %d: %g vs %g", i, out[6 * i], h(x + y));
        EXPECT(out[6 * i + 1] == h(x * y), "hmul %d", i);
        EXPECT(out[6 * i + 2] == h((float)((double)x * y + x)), "hfma %d: %g vs %g", i, out[6 * i + 2], h(x * y + x));
        EXPECT(out[6 * i + 3] == h(x * x) + h(y * y), "hmul2 %d", i);
        EXPECT(out[6 * i + 4] == (x < y ? 1.0f : 0.0f), "hlt %d", i);
        EXPECT(out[6 * i + 5] == bf(bf(a[i]) + bf(a[i])), "bf16 add %d: %g vs %g", i, out[6 * i + 5], bf(bf(a[i]) * 2));
    }
    return finish("half_precision");
}
