// Grid-stride loops (small grid over a large array, several grid shapes including a 3D grid of
// 3D blocks), cudaMemcpy DeviceToDevice (whole and at offsets, sync and async),
// cudaMemGetInfo before/after allocations.
#include "check.h"
#include <vector>

__global__ void saxpy(int n, float a, const float* x, float* y) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

// Every thread of a 3D grid of 3D blocks computes its linear id and strides by the total.
__global__ void ids3d(int n, int* out) {
    int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int nthreads = blockDim.x * blockDim.y * blockDim.z;
    int total = nthreads * gridDim.x * gridDim.y * gridDim.z;
    for (int i = bid * nthreads + tid; i < n; i += total) out[i] = i * 2 + 1;
}

int main() {
    size_t free0 = 0, total = 0;
    CHECK(cudaMemGetInfo(&free0, &total));
    EXPECT(free0 > 0 && free0 <= total, "free %zu total %zu", free0, total);

    const int n = 300007;
    std::vector<float> x(n), y(n), out(n);
    for (int i = 0; i < n; i++) { x[i] = (float)(i % 1000); y[i] = (float)(i % 7); }
    float *dx, *dy, *dy2;
    CHECK(cudaMalloc(&dx, n * sizeof(float)));
    CHECK(cudaMalloc(&dy, n * sizeof(float)));
    CHECK(cudaMalloc(&dy2, n * sizeof(float)));
    size_t free1 = 0;
    CHECK(cudaMemGetInfo(&free1, &total));
    EXPECT(free1 + 3 * n * sizeof(float) <= free0, "free after 3 allocations %zu (before %zu)", free1, free0);

    CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    // Device-to-device copy of y, then both go through saxpy with different grids.
    CHECK(cudaMemcpy(dy2, dy, n * sizeof(float), cudaMemcpyDeviceToDevice));
    saxpy<<<7, 96>>>(n, 2.0f, dx, dy);
    CHECK_LAUNCH();
    saxpy<<<1, 1024>>>(n, 2.0f, dx, dy2);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(out.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(out[i] == 2.0f * x[i] + y[i], "y[%d]=%f", i, out[i]);
    CHECK(cudaMemcpy(out.data(), dy2, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(out[i] == 2.0f * x[i] + y[i], "y2[%d]=%f", i, out[i]);

    // D2D at offsets (overlap-free), async on a stream, and cudaMemcpyDefault.
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaMemcpyAsync(dy2 + 1000, dx + 5, 2000 * sizeof(float), cudaMemcpyDeviceToDevice, s));
    CHECK(cudaMemcpyAsync(dy2 + 50000, dx + 100, 10 * sizeof(float), cudaMemcpyDefault, s));
    CHECK(cudaMemcpyAsync(out.data(), dy2, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    CHECK(cudaStreamSynchronize(s));
    for (int i = 0; i < n; i++) {
        float want = 2.0f * x[i] + y[i];
        if (i >= 1000 && i < 3000) want = x[i - 1000 + 5];
        if (i >= 50000 && i < 50010) want = x[i - 50000 + 100];
        EXPECT(out[i] == want, "d2d y2[%d]=%f want %f", i, out[i], want);
    }

    const int m = 100000;
    int* di;
    CHECK(cudaMalloc(&di, m * sizeof(int)));
    CHECK(cudaMemset(di, 0, m * sizeof(int)));
    ids3d<<<dim3(3, 2, 2), dim3(8, 4, 2)>>>(m, di);
    CHECK_LAUNCH();
    std::vector<int> hi(m);
    CHECK(cudaMemcpy(hi.data(), di, m * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < m; i++) EXPECT(hi[i] == 2 * i + 1, "ids3d[%d]=%d", i, hi[i]);

    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFree(dx));
    CHECK(cudaFree(dy));
    CHECK(cudaFree(dy2));
    CHECK(cudaFree(di));
    size_t free2 = 0;
    CHECK(cudaMemGetInfo(&free2, &total));
    EXPECT(free2 == free0, "free after cudaFree %zu, at start %zu", free2, free0);
    return finish("grid_stride");
}
