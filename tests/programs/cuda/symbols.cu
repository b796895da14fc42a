// __constant__ and __device__ globals: cudaMemcpyToSymbol / cudaMemcpyFromSymbol (with offsets,
// async variants), cudaGetSymbolAddress, cudaGetSymbolSize, static initialisers.
#include "check.h"
#include <cstring>

__constant__ float coeffs[16];
__constant__ int cscale = 3;               // initialised constant
__device__ int counter;
__device__ double dtable[100];
__device__ int initialised[4] = {10, 20, 30, 40};
struct Params { int a; float b; double c; char tag[8]; };
__constant__ Params cparams;

__global__ void poly(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float acc = 0.0f;
        for (int k = 15; k >= 0; k--) acc = acc * x[i] + coeffs[k];
        y[i] = acc * cscale;
        atomicAdd(&counter, 1);
    }
}

__global__ void table(int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dtable[i] = dtable[i] * 2.0 + initialised[i % 4] + cparams.a + cparams.b + cparams.c;
}

int main() {
    // Symbol sizes and addresses.
    size_t sz = 0;
    CHECK(cudaGetSymbolSize(&sz, coeffs));
    EXPECT(sz == 16 * sizeof(float), "coeffs size %zu", sz);
    CHECK(cudaGetSymbolSize(&sz, counter));
    EXPECT(sz == sizeof(int), "counter size %zu", sz);
    CHECK(cudaGetSymbolSize(&sz, dtable));
    EXPECT(sz == 100 * sizeof(double), "dtable size %zu", sz);
    CHECK(cudaGetSymbolSize(&sz, cparams));
    EXPECT(sz == sizeof(Params), "cparams size %zu", sz);

    // Initial values are visible.
    int init[4] = {0, 0, 0, 0}, cs = 0;
    CHECK(cudaMemcpyFromSymbol(init, initialised, sizeof init));
    EXPECT(init[0] == 10 && init[3] == 40, "initialised = {%d,%d,%d,%d}", init[0], init[1], init[2], init[3]);
    CHECK(cudaMemcpyFromSymbol(&cs, cscale, sizeof cs));
    EXPECT(cs == 3, "cscale = %d", cs);

    // Write coefficients in two parts (offset).
    float hc[16];
    for (int k = 0; k < 16; k++) hc[k] = (k % 3 == 0) ? 0.5f : -0.25f * k / 16.0f;
    CHECK(cudaMemcpyToSymbol(coeffs, hc, 8 * sizeof(float)));
    CHECK(cudaMemcpyToSymbol(coeffs, hc + 8, 8 * sizeof(float), 8 * sizeof(float)));
    int zero = 0;
    CHECK(cudaMemcpyToSymbol(counter, &zero, sizeof zero));

    const int n = 1000;
    float hx[n], hy[n];
    for (int i = 0; i < n; i++) hx[i] = (i - 500) / 500.0f;
    float *dx, *dy;
    CHECK(cudaMalloc(&dx, n * sizeof(float)));
    CHECK(cudaMalloc(&dy, n * sizeof(float)));
    CHECK(cudaMemcpy(dx, hx, sizeof hx, cudaMemcpyHostToDevice));
    poly<<<(n + 127) / 128, 128>>>(dx, dy, n);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(hy, dy, sizeof hy, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        float acc = 0.0f;
        for (int k = 15; k >= 0; k--) acc = acc * hx[i] + hc[k];
        acc *= 3;
        EXPECT(fabsf(hy[i] - acc) <= 1e-5f * (1 + fabsf(acc)), "y[%d]=%f want %f", i, hy[i], acc);
    }
    int cnt = -1;
    CHECK(cudaMemcpyFromSymbol(&cnt, counter, sizeof cnt));
    EXPECT(cnt == n, "counter %d want %d", cnt, n);

    // Read back part of the constant array with an offset.
    float back[4];
    CHECK(cudaMemcpyFromSymbol(back, coeffs, sizeof back, 10 * sizeof(float)));
    for (int k = 0; k < 4; k++) EXPECT(back[k] == hc[10 + k], "coeffs[%d]=%f", 10 + k, back[k]);

    // cudaGetSymbolAddress: the address works with plain cudaMemcpy and as a kernel pointer.
    double* dt = nullptr;
    CHECK(cudaGetSymbolAddress((void**)&dt, dtable));
    EXPECT(dt != nullptr, "null symbol address%s", "");
    double ht[100];
    for (int i = 0; i < 100; i++) ht[i] = i * 0.5;
    CHECK(cudaMemcpy(dt, ht, sizeof ht, cudaMemcpyHostToDevice));
    Params p = {5, 0.25f, 0.125, "abc"};
    CHECK(cudaMemcpyToSymbol(cparams, &p, sizeof p));
    // Async variants on a stream.
    cudaStream_t st;
    CHECK(cudaStreamCreate(&st));
    int init2[4] = {1, 2, 3, 4};
    CHECK(cudaMemcpyToSymbolAsync(initialised, init2, sizeof init2, 0, cudaMemcpyHostToDevice, st));
    CHECK(cudaStreamSynchronize(st));
    table<<<1, 128>>>(100);
    CHECK_LAUNCH();
    double got[100];
    CHECK(cudaMemcpyFromSymbolAsync(got, dtable, sizeof got, 0, cudaMemcpyDeviceToHost, st));
    CHECK(cudaStreamSynchronize(st));
    for (int i = 0; i < 100; i++) {
        double want = ht[i] * 2.0 + init2[i % 4] + 5 + 0.25 + 0.125;
        EXPECT(got[i] == want, "dtable[%d]=%f want %f", i, got[i], want);
    }
    Params pb;
    memset(&pb, 0, sizeof pb);
    CHECK(cudaMemcpyFromSymbol(&pb, cparams, sizeof pb));
    EXPECT(pb.a == 5 && pb.b == 0.25f && pb.c == 0.125 && strcmp(pb.tag, "abc") == 0, "cparams back %d %f %f", pb.a, pb.b, pb.c);

    // Device-to-device copy into a symbol.
    CHECK(cudaMemcpyToSymbol(dtable, dt + 50, 10 * sizeof(double), 0, cudaMemcpyDeviceToDevice));
    double g50[10];
    CHECK(cudaMemcpyFromSymbol(g50, dtable, sizeof g50, 0));
    for (int i = 0; i < 10; i++) {
        double want = ht[50 + i] * 2.0 + init2[(50 + i) % 4] + 5 + 0.25 + 0.125;
        EXPECT(g50[i] == want, "d2d dtable[%d]=%f want %f", i, g50[i], want);
    }

    CHECK(cudaStreamDestroy(st));
    CHECK(cudaFree(dx));
    CHECK(cudaFree(dy));
    return finish("symbols");
}
