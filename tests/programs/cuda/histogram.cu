// Histogram: per-block privatised bins in shared memory (atomicAdd on __shared__), merged into the
// global histogram with global atomicAdd; also a direct global-atomics version; 256 and 1000 bins.
#include "check.h"
#include <vector>

__global__ void hist_shared(const unsigned char* data, int n, unsigned* bins) {
    __shared__ unsigned local[256];
    for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[data[i]], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x)
        if (local[b]) atomicAdd(&bins[b], local[b]);
}

// Dynamic number of bins in dynamic shared memory.
__global__ void hist_dyn(const int* data, int n, int nbins, unsigned* bins) {
    extern __shared__ unsigned sbins[];
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) sbins[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&sbins[data[i] % nbins], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) atomicAdd(&bins[b], sbins[b]);
}

__global__ void hist_global(const unsigned char* data, int n, unsigned* bins) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(&bins[data[i]], 1u);
}

int main() {
    const int n = 200000;
    std::vector<unsigned char> h(n);
    unsigned x = 12345;
    for (int i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        // Skewed distribution: many hits on a few bins (contention).
        h[i] = (x >> 16) % 5 == 0 ? 7 : (unsigned char)(x >> 20);
    }
    std::vector<unsigned> ref(256, 0);
    for (int i = 0; i < n; i++) ref[h[i]]++;

    unsigned char* dd;
    unsigned* dbins;
    CHECK(cudaMalloc(&dd, n));
    CHECK(cudaMalloc(&dbins, 1000 * sizeof(unsigned)));
    CHECK(cudaMemcpy(dd, h.data(), n, cudaMemcpyHostToDevice));

    std::vector<unsigned> got(256);
    CHECK(cudaMemset(dbins, 0, 256 * sizeof(unsigned)));
    hist_shared<<<16, 256>>>(dd, n, dbins);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(got.data(), dbins, 256 * sizeof(unsigned), cudaMemcpyDeviceToHost));
    for (int b = 0; b < 256; b++) EXPECT(got[b] == ref[b], "shared bin %d: %u want %u", b, got[b], ref[b]);

    CHECK(cudaMemset(dbins, 0, 256 * sizeof(unsigned)));
    hist_global<<<(n + 255) / 256, 256>>>(dd, n, dbins);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(got.data(), dbins, 256 * sizeof(unsigned), cudaMemcpyDeviceToHost));
    for (int b = 0; b < 256; b++) EXPECT(got[b] == ref[b], "global bin %d: %u want %u", b, got[b], ref[b]);

    const int m = 50000, nb = 1000;
    std::vector<int> hi(m);
    for (int i = 0; i < m; i++) hi[i] = (i * 7919) ^ (i >> 3);
    std::vector<unsigned> ref2(nb, 0), got2(nb);
    for (int i = 0; i < m; i++) ref2[hi[i] % nb]++;
    int* di;
    CHECK(cudaMalloc(&di, m * sizeof(int)));
    CHECK(cudaMemcpy(di, hi.data(), m * sizeof(int), cudaMemcpyHostToDevice));
    CHECK(cudaMemset(dbins, 0, nb * sizeof(unsigned)));
    hist_dyn<<<8, 128, nb * sizeof(unsigned)>>>(di, m, nb, dbins);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(got2.data(), dbins, nb * sizeof(unsigned), cudaMemcpyDeviceToHost));
    for (int b = 0; b < nb; b++) EXPECT(got2[b] == ref2[b], "dyn bin %d: %u want %u", b, got2[b], ref2[b]);

    CHECK(cudaFree(dd));
    CHECK(cudaFree(di));
    CHECK(cudaFree(dbins));
    return finish("histogram");
}
