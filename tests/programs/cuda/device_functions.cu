// Device-side code structure: __noinline__ functions (real PTX calls) with many and struct
// arguments and struct return values, recursion, local-memory arrays indexed at run time, device
// function pointers, and C++ classes with virtual functions constructed inside a kernel (the
// indirect call targets are uniform per warp here; per-lane targets: indirect_call_divergent.cu).
#include "check.h"
#include <vector>

struct Pair { long long a; double b; };

__device__ __noinline__ Pair combine(Pair p, int x, float y, double z, char c, short s, long long w,
                                     unsigned u, Pair q) {
    Pair r;
    r.a = p.a + x + c + s + w + u + q.a;
    r.b = p.b * y + z + q.b;
    return r;
}

__device__ __noinline__ int fib(int n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__device__ __noinline__ int gcd(int a, int b) {
    return b == 0 ? a : gcd(b, a % b);
}

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

__global__ void k(int n, long long* out_a, double* out_b, int* out_i, float* out_f) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    Pair p = {i, 0.5 * i}, q = {-7, 1.25};
    Pair r = combine(p, i * 3, 2.0f, 0.125, (char)(i & 0x7f), (short)-i, 1ll << 40, 7u, q);
    out_a[i] = r.a;
    out_b[i] = r.b;

    // Local array with run-time indices (local memory).
    int local[40];
    for (int j = 0; j < 40; j++) local[j] = (j * i) % 13;
    int acc = 0;
    for (int j = 0; j < 40; j++) acc += local[(j * 7 + i) % 40] * j;

    int f = fib(i % 15);
    int g = gcd(i * 12 + 36, 84);
    int h = ops[(i / 32) % 3](i, 3);
    out_i[i * 4 + 0] = acc;
    out_i[i * 4 + 1] = f;
    out_i[i * 4 + 2] = g;
    out_i[i * 4 + 3] = h;

    Rect rect(i * 0.5f, 2.0f);
    Tri tri(i * 1.0f, 3.0f);
    Shape* s = ((i / 32) & 1) ? (Shape*)&rect : (Shape*)&tri;
    out_f[i] = s->area() + s->sides();
}

static int fib_h(int n) { return n < 2 ? n : fib_h(n - 1) + fib_h(n - 2); }
static int gcd_h(int a, int b) { return b == 0 ? a : gcd_h(b, a % b); }

int main() {
    const int n = 300;
    long long* da;
    double* db;
    int* di;
    float* df;
    CHECK(cudaMalloc(&da, n * sizeof(long long)));
    CHECK(cudaMalloc(&db, n * sizeof(double)));
    CHECK(cudaMalloc(&di, n * 4 * sizeof(int)));
    CHECK(cudaMalloc(&df, n * sizeof(float)));
    k<<<(n + 63) / 64, 64>>>(n, da, db, di, df);
    CHECK_LAUNCH();
    std::vector<long long> ha(n);
    std::vector<double> hb(n);
    std::vector<int> hi(n * 4);
    std::vector<float> hf(n);
    CHECK(cudaMemcpy(ha.data(), da, n * sizeof(long long), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hb.data(), db, n * sizeof(double), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hi.data(), di, n * 4 * sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hf.data(), df, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        long long a = (long long)i + i * 3 + (char)(i & 0x7f) + (short)-i + (1ll << 40) + 7u + -7;
        double b = 0.5 * i * 2.0f + 0.125 + 1.25;
        EXPECT(ha[i] == a && hb[i] == b, "combine[%d] %lld %f want %lld %f", i, ha[i], hb[i], a, b);
        int local[40];
        for (int j = 0; j < 40; j++) local[j] = (j * i) % 13;
        int acc = 0;
        for (int j = 0; j < 40; j++) acc += local[(j * 7 + i) % 40] * j;
        int sel = (i / 32) % 3;
        int want_h = sel == 0 ? i + 3 : sel == 1 ? i * 3 : i - 3;
        EXPECT(hi[i * 4] == acc, "local[%d] %d want %d", i, hi[i * 4], acc);
        EXPECT(hi[i * 4 + 1] == fib_h(i % 15), "fib[%d] %d", i, hi[i * 4 + 1]);
        EXPECT(hi[i * 4 + 2] == gcd_h(i * 12 + 36, 84), "gcd[%d] %d", i, hi[i * 4 + 2]);
        EXPECT(hi[i * 4 + 3] == want_h, "fnptr[%d] %d want %d", i, hi[i * 4 + 3], want_h);
        float want_f = ((i / 32) & 1) ? i * 0.5f * 2.0f + 4 : 0.5f * i * 3.0f + 3;
        EXPECT(hf[i] == want_f, "virtual[%d] %f want %f", i, hf[i], want_f);
    }
    CHECK(cudaFree(da));
    CHECK(cudaFree(db));
    CHECK(cudaFree(di));
    CHECK(cudaFree(df));
    return finish("device_functions");
}
