// Indirect calls whose target differs between the lanes of a warp: a device function pointer
// picked per thread (i % 3) and a virtual call on objects whose dynamic type alternates per lane.
#include "check.h"
#include <vector>

typedef int (*binop)(int, int);
__device__ int op_add(int a, int b) { return a + b; }
__device__ int op_mul(int a, int b) { return a * b; }
__device__ int op_sub(int a, int b) { return a - b; }
__device__ binop ops[3] = {op_add, op_mul, op_sub};

struct Shape {
    __device__ virtual float area() const = 0;
    __device__ virtual int sides() const { return 0; }
    __device__ virtual ~Shape() {}
};
struct Rect : Shape {
    float w, h;
    __device__ Rect(float w_, float h_) : w(w_), h(h_) {}
    __device__ float area() const override { return w * h; }
    __device__ int sides() const override { return 4; }
};
struct Tri : Shape {
    float b, h;
    __device__ Tri(float b_, float h_) : b(b_), h(h_) {}
    __device__ float area() const override { return 0.5f * b * h; }
    __device__ int sides() const override { return 3; }
};

__global__ void k(int n, int* out_i, float* out_f) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out_i[i] = ops[i % 3](i, 3);
    Rect rect(i * 0.5f, 2.0f);
    Tri tri(i * 1.0f, 3.0f);
    Shape* s = (i & 1) ? (Shape*)&rect : (Shape*)&tri;
    out_f[i] = s->area() + s->sides();
}

int main() {
    const int n = 100;
    int* di;
    float* df;
    CHECK(cudaMalloc(&di, n * sizeof(int)));
    CHECK(cudaMalloc(&df, n * sizeof(float)));
    k<<<(n + 63) / 64, 64>>>(n, di, df);
    CHECK_LAUNCH();
    std::vector<int> hi(n);
    std::vector<float> hf(n);
    CHECK(cudaMemcpy(hi.data(), di, n * sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hf.data(), df, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        int want_h = i % 3 == 0 ? i + 3 : i % 3 == 1 ? i * 3 : i - 3;
        EXPECT(hi[i] == want_h, "fnptr[%d] %d want %d", i, hi[i], want_h);
        float want_f = (i & 1) ? i * 0.5f * 2.0f + 4 : 0.5f * i * 3.0f + 3;
        EXPECT(hf[i] == want_f, "virtual[%d] %f want %f", i, hf[i], want_f);
    }
    CHECK(cudaFree(di));
    CHECK(cudaFree(df));
    return finish("indirect_call_divergent");
}
