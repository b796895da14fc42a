// A templated kernel instantiated for int, float and double (plus a functor template parameter
// and a non-type template parameter), checked against the same template run on the host.
#include "check.h"
#include <vector>
#include <cmath>
#include <typeinfo>

template <typename T>
struct Axpy {
    T a;
    __host__ __device__ T operator()(T x, T y) const { return a * x + y; }
};

template <typename T>
struct MaxOp {
    __host__ __device__ T operator()(T x, T y) const { return x > y ? x : y; }
};

template <typename T, typename Op, int UNROLL>
__global__ void apply(const T* x, const T* y, T* out, int n, Op op) {
    int base = (blockIdx.x * blockDim.x + threadIdx.x) * UNROLL;
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
        int i = base + u;
        if (i < n) out[i] = op(x[i], y[i]);
    }
}

template <typename T>
__global__ void block_sum(const T* x, T* out, int n) {
    __shared__ T buf[128];
    T v = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[i];
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = buf[0];
}

template <typename T>
bool close(T a, T b) {
    return fabs((double)a - (double)b) <= 1e-5 * (1 + fabs((double)b));
}

template <typename T, int UNROLL, typename Op>
void run(const char* tname, Op op, int n) {
    std::vector<T> x(n), y(n), out(n);
    for (int i = 0; i < n; i++) { x[i] = (T)(i % 37) - (T)9; y[i] = (T)((i * 7) % 23); }
    T *dx, *dy, *dout, *dsum;
    CHECK(cudaMalloc(&dx, n * sizeof(T)));
    CHECK(cudaMalloc(&dy, n * sizeof(T)));
    CHECK(cudaMalloc(&dout, n * sizeof(T)));
    CHECK(cudaMalloc(&dsum, sizeof(T)));
    CHECK(cudaMemcpy(dx, x.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dy, y.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    int threads = 128, per_block = threads * UNROLL;
    apply<T, Op, UNROLL><<<(n + per_block - 1) / per_block, threads>>>(dx, dy, dout, n, op);
    CHECK_LAUNCH();
    block_sum<T><<<1, 128>>>(dout, dsum, n);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(out.data(), dout, n * sizeof(T), cudaMemcpyDeviceToHost));
    T sum;
    CHECK(cudaMemcpy(&sum, dsum, sizeof(T), cudaMemcpyDeviceToHost));
    T ref_sum = 0;
    for (int i = 0; i < n; i++) {
        T want = op(x[i], y[i]);
        ref_sum += want;
        EXPECT(out[i] == want, "%s UNROLL=%d out[%d]=%f want %f", tname, UNROLL, i, (double)out[i], (double)want);
    }
    EXPECT(close(sum, ref_sum), "%s sum %f want %f", tname, (double)sum, (double)ref_sum);
    CHECK(cudaFree(dx));
    CHECK(cudaFree(dy));
    CHECK(cudaFree(dout));
    CHECK(cudaFree(dsum));
}

int main() {
    run<int, 1>("int", Axpy<int>{3}, 1000);
    run<int, 4>("int", MaxOp<int>(), 1001);
    run<float, 2>("float", Axpy<float>{0.5f}, 999);
    run<float, 1>("float", MaxOp<float>(), 500);
    run<double, 4>("double", Axpy<double>{-1.25}, 1003);
    run<double, 1>("double", MaxOp<double>(), 257);
    run<long long, 2>("long long", Axpy<long long>{1ll << 33}, 300);
    return finish("templates");
}
