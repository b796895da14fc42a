// cudaDeviceReset then reuse, three times: allocate, copy, launch (also a kernel using a
// __device__ global and a __constant__, which must be re-initialised after the reset), check;
// streams/events created after a reset work; cudaMemGetInfo shows memory coming back.
#include "check.h"
#include <vector>

__device__ int dev_counter = 5;
__constant__ int cmul = 3;

__global__ void kern(int* x, int n, int add) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        x[i] = x[i] * cmul + add;
        atomicAdd(&dev_counter, 1);
    }
}

static void round_trip(int round) {
    const int n = 5000;
    std::vector<int> h(n);
    for (int i = 0; i < n; i++) h[i] = i - round;
    int* d;
    CHECK(cudaMalloc(&d, n * sizeof(int)));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    cudaEvent_t ev;
    CHECK(cudaEventCreate(&ev));
    CHECK(cudaMemcpyAsync(d, h.data(), n * sizeof(int), cudaMemcpyHostToDevice, s));
    kern<<<(n + 255) / 256, 256, 0, s>>>(d, n, round);
    CHECK_LAUNCH();
    CHECK(cudaEventRecord(ev, s));
    CHECK(cudaEventSynchronize(ev));
    CHECK(cudaMemcpy(h.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++)
        EXPECT(h[i] == (i - round) * 3 + round, "round %d h[%d]=%d", round, i, h[i]);
    int cnt = -1;
    CHECK(cudaMemcpyFromSymbol(&cnt, dev_counter, sizeof cnt));
    // Globals start from their initialisers in every new context.
    EXPECT(cnt == 5 + n, "round %d counter %d want %d", round, cnt, 5 + n);
    // Change the constant: the next reset must restore its initial value.
    int nine = 9;
    CHECK(cudaMemcpyToSymbol(cmul, &nine, sizeof nine));
    // Leak d, s and ev on purpose: cudaDeviceReset releases them.
}

int main() {
    size_t free0 = 0, total = 0;
    for (int round = 0; round < 3; round++) {
        round_trip(round);
        int* big;
        CHECK(cudaMalloc(&big, 64 << 20));
        size_t f = 0;
        CHECK(cudaMemGetInfo(&f, &total));
        if (round == 0) free0 = f;
        else EXPECT(f == free0, "round %d: free memory %zu, first round %zu (leak across reset?)", round, f, free0);
        CHECK(cudaDeviceReset());
    }
    // After the last reset a first call re-creates the context implicitly.
    round_trip(3);
    CHECK(cudaDeviceReset());
    return finish("device_reset");
}
