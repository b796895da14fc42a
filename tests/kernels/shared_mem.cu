// Shared memory and barriers: tiled matrix multiply with static and with dynamic shared memory,
// a tree reduction, barriers in 1D/2D/3D blocks (partial warps included), the counting/voting
// barriers, a block whose last warp exits before the others synchronise, and named barriers
// with thread counts (bar.arrive / bar.sync id, count) between producer and consumer warps.

#define TILE 16

// C[M x N] = A[M x K] * B[K x N], row major, any sizes (edges padded with zeros).
extern "C" __global__ void matmul_static(const float* A, const float* B, float* C, int M, int N, int K) {
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float sum = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        As[ty][tx] = (row < M && t + tx < K) ? A[row * K + t + tx] : 0.0f;
        Bs[ty][tx] = (col < N && t + ty < K) ? B[(t + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; k++) sum += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = sum;
}

// The same with the tile size taken from blockDim and both tiles in dynamic shared memory.
extern "C" __global__ void matmul_dynamic(const float* A, const float* B, float* C, int M, int N, int K) {
    extern __shared__ float smem[];
    int T = blockDim.x;
    float* As = smem;
    float* Bs = smem + T * T;
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * T + ty, col = blockIdx.x * T + tx;
    float sum = 0.0f;
    for (int t = 0; t < K; t += T) {
        As[ty * T + tx] = (row < M && t + tx < K) ? A[row * K + t + tx] : 0.0f;
        Bs[ty * T + tx] = (col < N && t + ty < K) ? B[(t + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < T; k++) sum += As[ty * T + k] * Bs[k * T + tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = sum;
}

// Per-block sums of x (blockDim.x a power of two, dynamic shared memory of blockDim.x ints).
extern "C" __global__ void block_sum(const int* x, int* partial, int n) {
    extern __shared__ int buf[];
    int tid = threadIdx.x;
    int i = blockIdx.x * blockDim.x * 2 + tid;
    int v = 0;
    if (i < n) v += x[i];
    if (i + blockDim.x < n) v += x[i + blockDim.x];
    buf[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) buf[tid] += buf[tid + s];
        __syncthreads();
    }
    if (tid == 0) partial[blockIdx.x] = buf[0];
}

// Rounds of "read a neighbour's slot, barrier, write my slot, barrier" in a block of any shape:
// every thread's final value depends on every round having been separated by barriers.
extern "C" __global__ void barrier_rounds(unsigned* out, int rounds) {
    __shared__ unsigned slots[1024];
    int nt = blockDim.x * blockDim.y * blockDim.z;
    int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    int b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    slots[t] = t * 7u + b;
    __syncthreads();
    for (int r = 1; r <= rounds; r++) {
        unsigned v = slots[(t + r) % nt] * 3u + slots[(t * 5 + r) % nt];
        __syncthreads();
        slots[t] = v ^ (unsigned)r;
        __syncthreads();
    }
    out[b * nt + t] = slots[t];
}

// __syncthreads_count/_and/_or over a predicate that depends on the thread and the block.
extern "C" __global__ void barrier_votes(const int* mod, int* out) {
    int t = threadIdx.x;
    int m = mod[blockIdx.x];
    int pred = (t % m) == 0;
    int count = __syncthreads_count(pred);
    int all = __syncthreads_and(pred);
    int any = __syncthreads_or(t * m > 5000);
    int none = __syncthreads_or(0);
    if (t == blockDim.x - 1) {
        out[4 * blockIdx.x + 0] = count;
        out[4 * blockIdx.x + 1] = all;
        out[4 * blockIdx.x + 2] = any;
        out[4 * blockIdx.x + 3] = none;
    }
}

// The last warp leaves before the barriers: the others must still get through them.
extern "C" __global__ void early_exit(int* out) {
    __shared__ int s[128];
    int t = threadIdx.x;
    if (t >= 96) return;
    s[t] = t + 1;
    __syncthreads();
    int v = s[95 - t];
    __syncthreads();
    s[t] = v * 2;
    __syncthreads();
    out[blockIdx.x * 96 + t] = s[(t + 1) % 96];
}

// Producer/consumer warps synchronised with named barriers (bar.arrive / bar.sync with a thread
// count): warp 0 fills a buffer, warp 1 consumes it, for several rounds; warps 2-3 meanwhile
// use barrier 3 among themselves only.
extern "C" __global__ void named_barriers(const int* in, int* out, int rounds) {
    __shared__ int buf[32];
    __shared__ int other[64];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int acc = 0;
    if (warp == 0) {
        for (int r = 0; r < rounds; r++) {
            buf[lane] = in[r * 32 + lane] * (r + 1);
            asm volatile("bar.arrive 1, 64;" ::: "memory");  // buffer full
            asm volatile("bar.sync 2, 64;" ::: "memory");    // wait until consumed
        }
    } else if (warp == 1) {
        for (int r = 0; r < rounds; r++) {
            asm volatile("bar.sync 1, 64;" ::: "memory");    // wait until full
            acc += buf[(lane + r) % 32];
            asm volatile("bar.arrive 2, 64;" ::: "memory");  // buffer consumed
        }
        out[lane] = acc;
    } else {
        int t = threadIdx.x - 64;
        for (int r = 0; r < rounds; r++) {
            other[t] = t * (r + 3);
            asm volatile("bar.sync 3, 64;" ::: "memory");
            acc += other[63 - t];
            asm volatile("bar.sync 3, 64;" ::: "memory");
        }
        out[32 + t] = acc;
    }
}
