// Reductions: warp shuffles (__shfl_down_sync, __shfl_xor_sync, __shfl_sync) within a warp, shared
// memory across warps, then atomicAdd of each block's partial into a global result (int, float,
// unsigned long long); also atomicMax/atomicMin and a per-warp broadcast check.
#include "check.h"
#include <vector>
#include <cmath>

__inline__ __device__ int warp_sum(int v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

__inline__ __device__ float warp_sum_xor(float v) {
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

__global__ void reduce(const int* in, int n, int* isum, float* fsum, unsigned long long* usum,
                       int* imax, int* imin, int* bcast_bad) {
    __shared__ int warp_part[32];
    int tid = threadIdx.x;
    int lane = tid & 31, warp = tid >> 5;
    int local = 0;
    float flocal = 0.0f;
    int lmax = -2147483647 - 1, lmin = 2147483647;
    for (int i = blockIdx.x * blockDim.x + tid; i < n; i += gridDim.x * blockDim.x) {
        int v = in[i];
        local += v;
        flocal += (float)(v & 7);
        lmax = max(lmax, v);
        lmin = min(lmin, v);
    }
    // Broadcast from lane 0 of each warp must reach every lane.
    int b = __shfl_sync(0xffffffffu, tid * 3 + 1, 0);
    if (b != (warp * 32) * 3 + 1) atomicAdd(bcast_bad, 1);

    int ws = warp_sum(local);
    float fs = warp_sum_xor(flocal);  // every lane holds the warp total
    if (lane == 0) warp_part[warp] = ws;
    if (lane == 5) atomicAdd(fsum, fs);
    atomicMax(imax, lmax);
    atomicMin(imin, lmin);
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x / 32;
        int v = lane < nw ? warp_part[lane] : 0;
        v = warp_sum(v);
        if (lane == 0) {
            atomicAdd(isum, v);
            atomicAdd(usum, (unsigned long long)(unsigned)v + 0x100000000ull);
        }
    }
}

int main() {
    const int n = 100000;
    std::vector<int> h(n);
    long long ref = 0;
    double fref = 0;
    int rmax = -1000000, rmin = 1000000;
    for (int i = 0; i < n; i++) {
        h[i] = (int)((i * 2654435761u) % 2001) - 1000;
        ref += h[i];
        fref += h[i] & 7;
        rmax = h[i] > rmax ? h[i] : rmax;
        rmin = h[i] < rmin ? h[i] : rmin;
    }
    int* din;
    int *disum, *dimax, *dimin, *dbad;
    float* dfsum;
    unsigned long long* dusum;
    CHECK(cudaMalloc(&din, n * sizeof(int)));
    CHECK(cudaMalloc(&disum, sizeof(int)));
    CHECK(cudaMalloc(&dimax, sizeof(int)));
    CHECK(cudaMalloc(&dimin, sizeof(int)));
    CHECK(cudaMalloc(&dbad, sizeof(int)));
    CHECK(cudaMalloc(&dfsum, sizeof(float)));
    CHECK(cudaMalloc(&dusum, sizeof(unsigned long long)));
    CHECK(cudaMemcpy(din, h.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    CHECK(cudaMemset(disum, 0, sizeof(int)));
    CHECK(cudaMemset(dbad, 0, sizeof(int)));
    CHECK(cudaMemset(dfsum, 0, sizeof(float)));
    CHECK(cudaMemset(dusum, 0, sizeof(unsigned long long)));
    int init_max = -2147483647 - 1, init_min = 2147483647;
    CHECK(cudaMemcpy(dimax, &init_max, sizeof(int), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dimin, &init_min, sizeof(int), cudaMemcpyHostToDevice));

    const int blocks = 24, threads = 256;
    reduce<<<blocks, threads>>>(din, n, disum, dfsum, dusum, dimax, dimin, dbad);
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());

    int isum, imax, imin, bad;
    float fsum;
    unsigned long long usum;
    CHECK(cudaMemcpy(&isum, disum, sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&fsum, dfsum, sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&usum, dusum, sizeof(usum), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&imax, dimax, sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&imin, dimin, sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&bad, dbad, sizeof(int), cudaMemcpyDeviceToHost));

    EXPECT(isum == (int)ref, "int sum %d want %lld", isum, ref);
    EXPECT(fabs(fsum - fref) < 1.0, "float sum %f want %f", fsum, fref);
    unsigned long long uref = 0;
    // Each block adds its (unsigned) partial plus 2^32; the low 32 bits wrap like the int sum.
    // Recompute per-block partials exactly as the kernel's grid-stride loop assigns elements.
    for (int blk = 0; blk < blocks; blk++) {
        unsigned part = 0;
        for (int t = 0; t < threads; t++)
            for (int i = blk * threads + t; i < n; i += blocks * threads) part += (unsigned)h[i];
        uref += (unsigned long long)part + 0x100000000ull;
    }
    EXPECT(usum == uref, "u64 sum %llu want %llu", usum, uref);
    EXPECT(imax == rmax, "max %d want %d", imax, rmax);
    EXPECT(imin == rmin, "min %d want %d", imin, rmin);
    EXPECT(bad == 0, "%d lanes got a wrong __shfl_sync broadcast", bad);
    CHECK(cudaFree(din));
    CHECK(cudaFree(disum));
    CHECK(cudaFree(dfsum));
    CHECK(cudaFree(dusum));
    CHECK(cudaFree(dimax));
    CHECK(cudaFree(dimin));
    CHECK(cudaFree(dbad));
    return finish("reduce_shuffle");
}
