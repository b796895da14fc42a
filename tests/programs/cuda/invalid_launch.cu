// Invalid launch configurations are reported by cudaGetLastError (and are not sticky): too many
// threads per block, a zero-sized grid/block, too much dynamic shared memory, a block dimension
// over its limit; after each, a valid launch still works.
#include "check.h"

__global__ void inc(int* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1;
}

__global__ void dyn(int* x) {
    extern __shared__ int s[];
    s[threadIdx.x] = threadIdx.x;
    __syncthreads();
    x[threadIdx.x] += s[(threadIdx.x + 1) % blockDim.x] - (int)((threadIdx.x + 1) % blockDim.x) + 1;
}

static int* d;
static const int n = 256;
static int expected = 0;

static void valid_launch(const char* after) {
    inc<<<n / 128, 128>>>(d, n);
    cudaError_t e = cudaGetLastError();
    EXPECT(e == cudaSuccess, "valid launch after %s: %s", after, cudaGetErrorString(e));
    expected++;
    int h[n];
    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++) bad += h[i] != expected;
    EXPECT(bad == 0, "after %s: %d wrong elements (h[0]=%d want %d)", after, bad, h[0], expected);
}

static void expect_config_error(const char* what, cudaError_t want1, cudaError_t want2) {
    cudaError_t e = cudaGetLastError();
    EXPECT(e == want1 || e == want2, "%s: got %s (%d)", what, cudaGetErrorName(e), (int)e);
    // Not sticky: the error was consumed.
    e = cudaGetLastError();
    EXPECT(e == cudaSuccess, "%s: second cudaGetLastError %s", what, cudaGetErrorName(e));
    e = cudaDeviceSynchronize();
    EXPECT(e == cudaSuccess, "%s: cudaDeviceSynchronize %s", what, cudaGetErrorName(e));
}

int main() {
    CHECK(cudaMalloc(&d, n * sizeof(int)));
    CHECK(cudaMemset(d, 0, n * sizeof(int)));
    valid_launch("start");

    inc<<<1, 2048>>>(d, n);
    expect_config_error("2048 threads per block", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("2048 threads");

    inc<<<1, dim3(32, 32, 2)>>>(d, n);
    expect_config_error("32x32x2 threads", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("32x32x2 threads");

    inc<<<1, dim3(1, 1, 128)>>>(d, n);
    expect_config_error("blockDim.z 128", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("blockDim.z 128");

    inc<<<0, 128>>>(d, n);
    expect_config_error("empty grid", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("empty grid");

    inc<<<1, 0>>>(d, n);
    expect_config_error("empty block", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("empty block");

    inc<<<dim3(1, 70000), 1>>>(d, n);
    expect_config_error("gridDim.y 70000", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("gridDim.y 70000");

    int optin = 0;
    CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    dyn<<<1, 32, (size_t)optin + 1024>>>(d);
    expect_config_error("too much dynamic shared memory", cudaErrorInvalidConfiguration, cudaErrorInvalidValue);
    valid_launch("too much shared memory");
    // (Above 48 KB but within the opt-in limit, without cudaFuncSetAttribute: see
    // shared_optin_launch.cu.)

    // A small dynamic allocation works.
    dyn<<<1, n, n * sizeof(int)>>>(d);
    CHECK_LAUNCH();
    expected++;
    valid_launch("dyn");

    CHECK(cudaFree(d));
    return finish("invalid_launch");
}
