// Structs as kernel parameters: mixed-alignment members, nested structs, arrays inside structs,
// a struct passed by value next to scalars, and large by-value structs (4 KB and 8 KB; kernel
// parameters above 4 KB need CUDA 12.1+ and Volta or newer) read at a few constant offsets.
// (Indexing a by-value array parameter with a runtime index is struct_params_indexed.cu.)
#include "check.h"
#include <cstring>

struct Small {
    char c;
    double d;
    short s;
    int i;
};
struct Vec3 { float x, y, z; };
struct Nested {
    Vec3 a, b;
    unsigned char flags[5];
    long long big;
    Small sm;
};
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

__global__ void k_small(Small s, int extra, Nested nst, double* out) {
    out[0] = s.c + s.d + s.s + s.i + extra;
    out[1] = nst.a.x * nst.b.x + nst.a.y * nst.b.y + nst.a.z * nst.b.z;
    out[2] = nst.flags[0] + nst.flags[1] + nst.flags[2] + nst.flags[3] + nst.flags[4];
    out[3] = (double)nst.big;
    out[4] = nst.sm.c + nst.sm.d + nst.sm.s + nst.sm.i;
}

// Constant indices only: every element is read at a fixed parameter offset.
__global__ void k_big4k(char tag, Big4K b, float* out) {
    out[0] = b.n;
    out[1] = b.w[0] + tag;
    out[2] = b.w[1021] + tag;
    out[3] = b.w[511] + b.w[700];
}

__global__ void k_big8k(Big8K b, int after, double* out) {
    out[0] = b.v[0] * b.scale + b.off + after;
    out[1] = b.v[1023] + b.v[600];
}

int main() {
    double* dsmall;
    CHECK(cudaMalloc(&dsmall, 5 * sizeof(double)));
    Small s = {7, 1.5, -3, 100000};
    Nested nst;
    memset(&nst, 0, sizeof nst);
    nst.a = {1, 2, 3};
    nst.b = {4, 5, 6};
    for (int k = 0; k < 5; k++) nst.flags[k] = (unsigned char)(250 + k);
    nst.big = 1ll << 40;
    nst.sm = {-2, 0.25, 1000, -7};
    k_small<<<1, 1>>>(s, 42, nst, dsmall);
    CHECK_LAUNCH();
    double r[5];
    CHECK(cudaMemcpy(r, dsmall, sizeof r, cudaMemcpyDeviceToHost));
    EXPECT(r[0] == 7 + 1.5 - 3 + 100000 + 42, "small %f", r[0]);
    EXPECT(r[1] == 32.0, "dot %f", r[1]);
    EXPECT(r[2] == 250 + 251 + 252 + 253 + 254, "flags %f", r[2]);
    EXPECT(r[3] == (double)(1ll << 40), "big %f", r[3]);
    EXPECT(r[4] == -2 + 0.25 + 1000 - 7, "nested small %f", r[4]);

    Big4K* b4 = new Big4K;
    b4->n = 1022;
    b4->pad = 0;
    for (int i = 0; i < 1022; i++) b4->w[i] = i * 0.5f - 100;
    float s4 = b4->w[511] + b4->w[700];
    float* d4;
    CHECK(cudaMalloc(&d4, 4 * sizeof(float)));
    k_big4k<<<1, 1>>>(3, *b4, d4);
    CHECK_LAUNCH();
    float h4[4];
    CHECK(cudaMemcpy(h4, d4, sizeof h4, cudaMemcpyDeviceToHost));
    EXPECT(h4[0] == 1022, "big4k n %f", h4[0]);
    EXPECT(h4[1] == b4->w[0] + 3, "big4k w[0] %f", h4[1]);
    EXPECT(h4[2] == b4->w[1021] + 3, "big4k w[1021] %f", h4[2]);
    EXPECT(h4[3] == s4, "big4k sum %f want %f", h4[3], s4);

    Big8K* b8 = new Big8K;
    for (int i = 0; i < 1024; i++) b8->v[i] = i * 0.25;
    b8->scale = 3;
    b8->off = -11;
    double* d8;
    CHECK(cudaMalloc(&d8, 2 * sizeof(double)));
    k_big8k<<<1, 1>>>(*b8, 1000, d8);
    CHECK_LAUNCH();
    double h8[2];
    CHECK(cudaMemcpy(h8, d8, sizeof h8, cudaMemcpyDeviceToHost));
    EXPECT(h8[0] == b8->v[0] * 3 - 11 + 1000, "big8k %f", h8[0]);
    EXPECT(h8[1] == b8->v[1023] + b8->v[600], "big8k v[1023]+v[600] %f", h8[1]);

    // The struct is captured at launch: changing it afterwards does not affect a queued launch.
    cudaStream_t st;
    CHECK(cudaStreamCreate(&st));
    k_big4k<<<1, 1, 0, st>>>(1, *b4, d4);
    CHECK_LAUNCH();
    for (int i = 0; i < 1022; i++) b4->w[i] = -1;
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaMemcpy(h4, d4, sizeof h4, cudaMemcpyDeviceToHost));
    EXPECT(h4[1] == -100 + 1 && h4[3] == s4, "big4k after change %f %f", h4[1], h4[3]);

    CHECK(cudaStreamDestroy(st));
    CHECK(cudaFree(dsmall));
    CHECK(cudaFree(d4));
    CHECK(cudaFree(d8));
    delete b4;
    delete b8;
    return finish("struct_params");
}
