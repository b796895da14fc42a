// Common GPU algorithms that combine the primitives: bitonic sort and a work-efficient scan in
// shared memory, a padded tiled transpose, a 2D stencil with halos, row softmax with warp
// reductions, and cooperative-groups reductions (tiled partitions, coalesced groups).
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
namespace cg = cooperative_groups;

// Sorts blockDim.x * 2 keys per block (a power of two) in shared memory.
extern "C" __global__ void bitonic_sort(unsigned* keys) {
    extern __shared__ unsigned sk[];
    unsigned n = blockDim.x * 2, t = threadIdx.x;
    unsigned* k = keys + blockIdx.x * n;
    sk[t] = k[t];
    sk[t + blockDim.x] = k[t + blockDim.x];
    __syncthreads();
    for (unsigned size = 2; size <= n; size <<= 1) {
        for (unsigned stride = size / 2; stride > 0; stride >>= 1) {
            unsigned pos = 2 * t - (t & (stride - 1));
            bool up = ((pos & size) == 0);
            unsigned a = sk[pos], b = sk[pos + stride];
            if ((a > b) == up) {
                sk[pos] = b;
                sk[pos + stride] = a;
            }
            __syncthreads();
        }
    }
    k[t] = sk[t];
    k[t + blockDim.x] = sk[t + blockDim.x];
}

// Blelloch exclusive scan of blockDim.x * 2 ints per block; block totals to sums[].
extern "C" __global__ void scan(const int* in, int* out, int* sums) {
    extern __shared__ int tmp[];
    int n = blockDim.x * 2, t = threadIdx.x;
    const int* x = in + blockIdx.x * n;
    tmp[2 * t] = x[2 * t];
    tmp[2 * t + 1] = x[2 * t + 1];
    int offset = 1;
    for (int d = n >> 1; d > 0; d >>= 1) {
        __syncthreads();
        if (t < d) {
            int ai = offset * (2 * t + 1) - 1, bi = offset * (2 * t + 2) - 1;
            tmp[bi] += tmp[ai];
        }
        offset <<= 1;
    }
    if (t == 0) {
        sums[blockIdx.x] = tmp[n - 1];
        tmp[n - 1] = 0;
    }
    for (int d = 1; d < n; d <<= 1) {
        offset >>= 1;
        __syncthreads();
        if (t < d) {
            int ai = offset * (2 * t + 1) - 1, bi = offset * (2 * t + 2) - 1;
            int v = tmp[ai];
            tmp[ai] = tmp[bi];
            tmp[bi] += v;
        }
    }
    __syncthreads();
    out[blockIdx.x * n + 2 * t] = tmp[2 * t];
    out[blockIdx.x * n + 2 * t + 1] = tmp[2 * t + 1];
}

// out[x][y] = in[y][x] for a rows x cols matrix, through a padded 32x33 tile (block 32x8).
extern "C" __global__ void transpose(const float* in, float* out, int rows, int cols) {
    __shared__ float tile[32][33];
    int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += 8)
        if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * cols + x];
    __syncthreads();
    x = blockIdx.y * 32 + threadIdx.x;
    y = blockIdx.x * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += 8)
        if (x < rows && y + j < cols) out[(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}

// 5-point stencil on a W x H grid (edges clamped) with a shared tile plus one-cell halo.
extern "C" __global__ void stencil(const int* in, int* out, int W, int H) {
    __shared__ int s[18][18];
    int tx = threadIdx.x, ty = threadIdx.y;
    int x = blockIdx.x * 16 + tx, y = blockIdx.y * 16 + ty;
    auto at = [&](int xx, int yy) {
        xx = min(max(xx, 0), W - 1);
        yy = min(max(yy, 0), H - 1);
        return in[yy * W + xx];
    };
    s[ty + 1][tx + 1] = at(x, y);
    if (tx == 0) s[ty + 1][0] = at(x - 1, y);
    if (tx == 15) s[ty + 1][17] = at(x + 1, y);
    if (ty == 0) s[0][tx + 1] = at(x, y - 1);
    if (ty == 15) s[17][tx + 1] = at(x, y + 1);
    __syncthreads();
    if (x < W && y < H)
        out[y * W + x] = 4 * s[ty + 1][tx + 1] - s[ty][tx + 1] - s[ty + 2][tx + 1] - s[ty + 1][tx] - s[ty + 1][tx + 2];
}

// One warp per row: max, sum of exponentials and normalisation with shuffles.
extern "C" __global__ void softmax(const float* in, float* out, int cols) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    const float* x = in + (size_t)row * cols;
    float m = -INFINITY;
    for (int c = lane; c < cols; c += 32) m = fmaxf(m, x[c]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) s += expf(x[c] - m);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    for (int c = lane; c < cols; c += 32) out[(size_t)row * cols + c] = expf(x[c] - m) / s;
}

// Cooperative groups: per-tile sums (tiles of 4, 8 and 16), and in a divergent branch the
// coalesced group's size, rank and broadcast of its first lane's value.
extern "C" __global__ void cg_reduce(const int* in, int* out) {
    cg::thread_block block = cg::this_thread_block();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int x = in[i];
    auto t4 = cg::tiled_partition<4>(block);
    auto t8 = cg::tiled_partition<8>(block);
    auto t16 = cg::tiled_partition<16>(block);
    out[6 * i + 0] = cg::reduce(t4, x, cg::plus<int>());
    out[6 * i + 1] = cg::reduce(t8, x, cg::greater<int>());
    out[6 * i + 2] = cg::reduce(t16, x, cg::plus<int>()) + (int)t16.thread_rank() * 1000000;
    out[6 * i + 3] = t8.shfl(x, 7 - (int)t8.thread_rank());
    out[6 * i + 4] = 0;
    if (x % 3 == 0) {
        cg::coalesced_group active = cg::coalesced_threads();
        out[6 * i + 4] = (int)active.size() * 10000 + (int)active.thread_rank() * 100 + (active.shfl(x, 0) % 100);
    }
    block.sync();
    out[6 * i + 5] = t16.any(x > 900) + 2 * t16.all(x >= 0);
}
