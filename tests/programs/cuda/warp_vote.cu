// Warp-level primitives and block-wide votes: __ballot_sync, __any_sync, __all_sync,
// __activemask inside a divergent branch, __popc of ballots, __shfl_sync with width < 32,
// __match_any_sync, __syncthreads_count/_and/_or, __syncwarp; a partial last warp.
#include "check.h"
#include <vector>

struct Out {
    unsigned ballot, any, all, active, match;
    int shfl_w8;
    int cnt, band, bor;
};

__global__ void votes(const int* in, Out* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = i < n ? in[i] : -1;
    unsigned full = __activemask();  // all lanes of the (possibly partial) warp present here
    unsigned b = __ballot_sync(full, v > 50);
    int any = __any_sync(full, v > 95);
    int all = __all_sync(full, v >= 0);
    unsigned active = 0;
    if (v % 3 == 0) active = __activemask();  // lanes whose value is divisible by 3
    __syncwarp(full);
    unsigned match = __match_any_sync(full, v % 4);
    // Broadcast within groups of 8 lanes from lane 2 of each group.
    int w8 = __shfl_sync(full, v, 2, 8);
    int cnt = __syncthreads_count(v > 50);
    int band = __syncthreads_and(v >= 0);
    int bor = __syncthreads_or(v > 98);
    if (i < n) {
        Out o = {b, (unsigned)any, (unsigned)all, active, match, w8, cnt, band, bor};
        out[i] = o;
    }
}

int main() {
    const int n = 200, threads = 96;  // 3 warps per block; the last block is partial
    const int blocks = (n + threads - 1) / threads;
    std::vector<int> h(n);
    for (int i = 0; i < n; i++) h[i] = (i * 37) % 101;
    int* din;
    Out* dout;
    CHECK(cudaMalloc(&din, n * sizeof(int)));
    CHECK(cudaMalloc(&dout, n * sizeof(Out)));
    CHECK(cudaMemcpy(din, h.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    votes<<<blocks, threads>>>(din, dout, n);
    CHECK_LAUNCH();
    std::vector<Out> o(n);
    CHECK(cudaMemcpy(o.data(), dout, n * sizeof(Out), cudaMemcpyDeviceToHost));

    auto val = [&](int i) { return i < n ? h[i] : -1; };
    for (int i = 0; i < n; i++) {
        int blk = i / threads, warp_base = blk * threads + ((i % threads) / 32) * 32;
        int lane = (i % threads) % 32;
        unsigned ballot = 0, active = 0, match = 0;
        bool any = false, all = true;
        for (int l = 0; l < 32; l++) {
            int v = val(warp_base + l);  // threads past n still run (v == -1): full warps
            if (v > 50) ballot |= 1u << l;
            any |= v > 95;
            all &= v >= 0;
            if (v % 3 == 0) active |= 1u << l;
            if (v % 4 == val(i) % 4) match |= 1u << l;
        }
        int blk_base = blk * threads;
        int cnt = 0, band = 1, bor = 0;
        for (int t = 0; t < threads; t++) {
            int v = val(blk_base + t);
            cnt += v > 50;
            band &= v >= 0;
            bor |= v > 98;
        }
        int w8 = val(warp_base + (lane / 8) * 8 + 2);
        const Out& g = o[i];
        EXPECT(g.ballot == ballot, "ballot[%d] %08x want %08x", i, g.ballot, ballot);
        EXPECT((g.any != 0) == any && (g.all != 0) == all, "any/all[%d] %u %u want %d %d", i, g.any, g.all, any, all);
        if (val(i) % 3 == 0)
            EXPECT(g.active == active, "activemask[%d] %08x want %08x", i, g.active, active);
        EXPECT(g.match == match, "match_any[%d] %08x want %08x", i, g.match, match);
        EXPECT(g.shfl_w8 == w8, "shfl width 8 [%d] %d want %d", i, g.shfl_w8, w8);
        EXPECT(g.cnt == cnt && (g.band != 0) == (band != 0) && (g.bor != 0) == (bor != 0),
               "syncthreads votes[%d] %d %d %d want %d %d %d", i, g.cnt, g.band, g.bor, cnt, band, bor);
    }
    CHECK(cudaFree(din));
    CHECK(cudaFree(dout));
    return finish("warp_vote");
}
