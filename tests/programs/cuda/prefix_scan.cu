// Exclusive prefix sum of a large array in three passes: per-block Blelloch scan in shared memory
// (up-sweep / down-sweep with __syncthreads), a scan of the block sums, then adding the block
// offsets; plus an inclusive warp-level scan with __shfl_up_sync.
#include "check.h"
#include <vector>

#define B 256  // threads per block; each block scans 2*B elements

__global__ void block_scan(const int* in, int* out, int* block_sums, int n) {
    __shared__ int t[2 * B];
    int base = blockIdx.x * 2 * B;
    int a = threadIdx.x, b = threadIdx.x + B;
    t[a] = base + a < n ? in[base + a] : 0;
    t[b] = base + b < n ? in[base + b] : 0;
    int off = 1;
    for (int d = B; d > 0; d >>= 1) {
        __syncthreads();
        if (threadIdx.x < d) {
            int ai = off * (2 * threadIdx.x + 1) - 1, bi = off * (2 * threadIdx.x + 2) - 1;
            t[bi] += t[ai];
        }
        off <<= 1;
    }
    if (threadIdx.x == 0) {
        if (block_sums) block_sums[blockIdx.x] = t[2 * B - 1];
        t[2 * B - 1] = 0;
    }
    for (int d = 1; d <= B; d <<= 1) {
        off >>= 1;
        __syncthreads();
        if (threadIdx.x < d) {
            int ai = off * (2 * threadIdx.x + 1) - 1, bi = off * (2 * threadIdx.x + 2) - 1;
            int v = t[ai];
            t[ai] = t[bi];
            t[bi] += v;
        }
    }
    __syncthreads();
    if (base + a < n) out[base + a] = t[a];
    if (base + b < n) out[base + b] = t[b];
}

__global__ void add_offsets(int* out, const int* offsets, int n) {
    int i = blockIdx.x * 2 * B + threadIdx.x;
    int o = offsets[blockIdx.x];
    if (i < n) out[i] += o;
    if (i + B < n) out[i + B] += o;
}

__global__ void warp_scan(const int* in, int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = i < n ? in[i] : 0;
    for (int d = 1; d < 32; d <<= 1) {
        int u = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += u;
    }
    if (i < n) out[i] = v;
}

int main() {
    const int n = 100003;  // not a multiple of the block size
    const int per = 2 * B;
    const int nblocks = (n + per - 1) / per;  // 196 <= 2*B, so one block scans the block sums
    std::vector<int> h(n), out(n), ref(n);
    for (int i = 0; i < n; i++) h[i] = (i * 37) % 11 - 3;
    int s = 0;
    for (int i = 0; i < n; i++) { ref[i] = s; s += h[i]; }

    int *din, *dout, *dsums, *doffs;
    CHECK(cudaMalloc(&din, n * sizeof(int)));
    CHECK(cudaMalloc(&dout, n * sizeof(int)));
    CHECK(cudaMalloc(&dsums, nblocks * sizeof(int)));
    CHECK(cudaMalloc(&doffs, nblocks * sizeof(int)));
    CHECK(cudaMemcpy(din, h.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    block_scan<<<nblocks, B>>>(din, dout, dsums, n);
    CHECK_LAUNCH();
    block_scan<<<1, B>>>(dsums, doffs, nullptr, nblocks);
    CHECK_LAUNCH();
    add_offsets<<<nblocks, B>>>(dout, doffs, n);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(out.data(), dout, n * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) EXPECT(out[i] == ref[i], "scan[%d]=%d want %d", i, out[i], ref[i]);

    const int m = 1000;
    warp_scan<<<(m + 127) / 128, 128>>>(din, dout, m);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(out.data(), dout, m * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < m; i++) {
        int w = i & ~31, acc = 0;
        for (int j = w; j <= i; j++) acc += h[j];
        EXPECT(out[i] == acc, "warp scan[%d]=%d want %d", i, out[i], acc);
    }
    CHECK(cudaFree(din));
    CHECK(cudaFree(dout));
    CHECK(cudaFree(dsums));
    CHECK(cudaFree(doffs));
    return finish("prefix_scan");
}
