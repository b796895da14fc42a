// Warp-level primitives: shuffles (all four kinds, sub-warp widths, 64-bit values), votes and
// match over the full warp and with per-lane member masks (8-lane groups), __activemask in
// divergent code, warp reductions, divergent branches and loops that must reconverge before a
// full-warp shuffle, and __syncwarp() reached from both sides of a divergent branch.

#define FULL 0xffffffffu
#define NSHFL 17
#define NVOTE 16
#define NDIV 8

extern "C" __global__ void shuffles(int* out) {
    int lane = threadIdx.x & 31;
    int v = blockIdx.x * 1000 + threadIdx.x * 3 + 1;
    int* o = out + (size_t)(blockIdx.x * blockDim.x + threadIdx.x) * NSHFL;
    o[0] = __shfl_sync(FULL, v, (lane * 7 + 3) & 31);
    o[1] = __shfl_sync(FULL, v, lane * 3, 8);
    o[2] = __shfl_up_sync(FULL, v, 1);
    o[3] = __shfl_up_sync(FULL, v, 5);
    o[4] = __shfl_up_sync(FULL, v, 3, 16);
    o[5] = __shfl_down_sync(FULL, v, 1);
    o[6] = __shfl_down_sync(FULL, v, 7);
    o[7] = __shfl_down_sync(FULL, v, 2, 8);
    o[8] = __shfl_xor_sync(FULL, v, 1);
    o[9] = __shfl_xor_sync(FULL, v, 16);
    o[10] = __shfl_xor_sync(FULL, v, 31);
    o[11] = __shfl_xor_sync(FULL, v, 2, 4);
    double d = __shfl_sync(FULL, (double)v * 0.5, 31 - lane);
    o[12] = (int)(d * 2.0);
    long long l = __shfl_down_sync(FULL, ((long long)v << 32) | (unsigned)lane, 4);
    o[13] = (int)(l >> 32) ^ (int)l;
    o[14] = __shfl_sync(FULL, v, v % 32);
    // Warp sum: tree down to lane 0, then broadcast.
    int s = v;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(FULL, s, off);
    o[15] = __shfl_sync(FULL, s, 0);
    // Butterfly all-reduce of the maximum of a scrambled value.
    int m = (v * 2654435761u) >> 7;
    for (int off = 1; off < 32; off <<= 1) m = max(m, __shfl_xor_sync(FULL, m, off));
    o[16] = m;
}

extern "C" __global__ void votes(const int* in, unsigned* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int x = in[i];
    int pred = x & 1;
    unsigned* o = out + (size_t)i * NVOTE;
    o[0] = __ballot_sync(FULL, pred);
    o[1] = __any_sync(FULL, pred);
    o[2] = __all_sync(FULL, pred);
    o[3] = __all_sync(FULL, x >= 0) | (__any_sync(FULL, x > 1000000) << 1);
    unsigned am;
    if (lane % 3 == 0) {
        am = __activemask();
    } else {
        am = __ballot_sync(__activemask(), 1) ^ 0x80000000u;
    }
    o[4] = am;
    unsigned b;
    if (lane < 20) {
        b = __ballot_sync(0x000fffffu, pred);
    } else {
        b = __ballot_sync(0xfff00000u, !pred);
    }
    o[5] = b;
    o[6] = __match_any_sync(FULL, x % 5);
    int p1, p2;
    unsigned m1 = __match_all_sync(FULL, blockIdx.x, &p1);
    unsigned m2 = __match_all_sync(FULL, x, &p2);
    o[7] = (m1 == FULL) | (p1 << 1) | ((m2 == 0) << 2) | (p2 << 3);
    o[8] = __match_any_sync(FULL, (long long)(x % 3) << 40);
    o[9] = __popc(__ballot_sync(FULL, x % 4 == 1));
    // Per-lane member masks: each group of 8 lanes votes and matches among itself.
    unsigned tile = 0xffu << (lane & 24);
    o[10] = __ballot_sync(tile, pred);
    o[11] = __all_sync(tile, pred) | (__any_sync(tile, pred) << 1) | (__uni_sync(tile, pred) << 2);
    o[12] = __match_any_sync(tile, x % 3);
    int pt;
    o[13] = __match_all_sync(tile, x, &pt);
    o[14] = pt;
    o[15] = __match_all_sync(tile, x & 1, &pt) | (pt << 8);
}

// Blocks whose size is not a multiple of 32: the last warp is partial.
extern "C" __global__ void partial_warp(const int* in, unsigned* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned mask = __activemask();
    int x = in[i];
    out[4 * i + 0] = mask;
    out[4 * i + 1] = __ballot_sync(mask, x & 1);
    out[4 * i + 2] = __shfl_down_sync(mask, x, 1);
    int s = x;
    for (int off = 1; off < 32; off <<= 1) {
        int o = __shfl_xor_sync(mask, s, off);
        // Partners outside the partial warp return the caller's own value; skip those.
        if (((threadIdx.x & 31) ^ off) < 32 && (threadIdx.x ^ off) < blockDim.x) s += o;
    }
    out[4 * i + 3] = s;
}

__device__ __noinline__ int slow_path(int v, int k) {
    for (int j = 0; j < k; j++) v = v * 31 + j;
    return v;
}

extern "C" __global__ void divergence(const int* in, int* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int x = in[i];
    int* o = out + (size_t)i * NDIV;
    // if/else per lane, then a full-warp shuffle.
    int a;
    if (lane & 1) {
        a = x * 3;
        if (x % 7 == 0) a += slow_path(x, lane);
    } else {
        a = x - 7;
    }
    o[0] = a + __shfl_xor_sync(FULL, a, 1);
    // A loop with a lane-dependent trip count, then a ballot and a reduction.
    int acc = 0;
    for (int k = 0; k < lane % 7 + (x & 3); k++) acc += k * x + lane;
    o[1] = __ballot_sync(FULL, acc & 1);
    int s = acc;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(FULL, s, off);
    o[2] = __shfl_sync(FULL, s, 0);
    // A four-way switch.
    int c;
    switch (lane & 3) {
    case 0: c = x + 1; break;
    case 1: c = slow_path(x, 3); break;
    case 2: c = x << 2; break;
    default: c = -x; break;
    }
    __syncwarp();
    o[3] = __shfl_sync(FULL, c, (lane + 1) & 31);
    // A data-dependent while loop with break and continue.
    int w = x, steps = 0;
    while (true) {
        steps++;
        if (w & 1) {
            w = 3 * w + 1;
            continue;
        }
        w >>= 1;
        if (w <= 1 || steps > 200) break;
    }
    o[4] = steps;
    int t = steps;
    for (int off = 1; off < 32; off <<= 1) t += __shfl_xor_sync(FULL, t, off);
    o[5] = t;
    // Lanes 28..31 leave; the rest shuffle among themselves.
    o[6] = 0;
    o[7] = 0;
    if (lane >= 28) return;
    o[6] = __shfl_sync(0x0fffffffu, x, 27 - lane);
    o[7] = __ballot_sync(0x0fffffffu, x > 0);
}

// __syncwarp() reached from both sides of a divergent branch: the lanes of each side publish a
// value in shared memory and read the other side's after the warp barrier.
extern "C" __global__ void divergent_syncwarp(const int* in, int* out) {
    __shared__ int s[128];
    int t = threadIdx.x, lane = t & 31;
    int x = in[blockIdx.x * blockDim.x + t];
    int r;
    if (lane < 16) {
        s[t] = x * 2;
        __syncwarp();
        r = s[t + 16] * 3 + s[t + 17 - (lane == 15) * 16];
    } else {
        s[t] = x + 7;
        __syncwarp();
        r = s[t - 16] ^ 5;
    }
    // The same with a loop: odd lanes iterate once more than even lanes before the barrier.
    int v = x;
    for (int k = 0; k < 2 + (lane & 1); k++) v = v * 3 + k;
    s[t] = v;
    __syncwarp();
    out[blockIdx.x * blockDim.x + t] = r + s[t ^ 1];
}
