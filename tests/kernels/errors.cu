// Kernels that fault: an out-of-bounds global write, a misaligned access, an out-of-bounds
// shared-memory read, a failed device-side assert and __trap(); plus a well-behaved kernel to
// show the context works again after cuDevicePrimaryCtxReset.
#include <cassert>

extern "C" __global__ void fill(int* p, int v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = v + i;
}

extern "C" __global__ void oob_write(int* p, long long off) {
    if (threadIdx.x == 3) p[off] = 1;
}

extern "C" __global__ void misaligned(char* p, int off) {
    *(int*)(p + off) = 5;
}

extern "C" __global__ void shared_oob(int* out, int idx) {
    __shared__ int s[64];
    s[threadIdx.x] = (int)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[idx];
}

extern "C" __global__ void check_values(const int* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) assert(x[i] < 100);
}

extern "C" __global__ void trap_kernel(int* out, int when) {
    if ((int)threadIdx.x == when) __trap();
    out[threadIdx.x] = 1;
}
