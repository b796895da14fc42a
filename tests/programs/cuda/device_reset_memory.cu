// cudaDeviceReset then reuse, without kernels (kernels after a reset: device_reset.cu):
// allocations, pinned memory, memsets, copies, streams and events work again after each reset,
// memory leaked on purpose before a reset comes back, and stale handles are not reused wrongly.
#include "check.h"
#include <vector>

static void round_trip(int round, bool leak) {
    const int n = 100000;
    std::vector<int> h(n), back(n);
    for (int i = 0; i < n; i++) h[i] = i * 7 - round;
    int *d1, *d2, *pinned;
    CHECK(cudaMalloc(&d1, n * sizeof(int)));
    CHECK(cudaMalloc(&d2, n * sizeof(int)));
    CHECK(cudaMallocHost(&pinned, n * sizeof(int)));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    CHECK(cudaEventRecord(a, s));
    CHECK(cudaMemcpyAsync(d1, h.data(), n * sizeof(int), cudaMemcpyHostToDevice, s));
    CHECK(cudaMemsetAsync(d2, 0x11, n * sizeof(int), s));
    CHECK(cudaMemcpyAsync(d2 + 10, d1 + 10, 100 * sizeof(int), cudaMemcpyDeviceToDevice, s));
    CHECK(cudaMemcpyAsync(pinned, d2, n * sizeof(int), cudaMemcpyDeviceToHost, s));
    CHECK(cudaEventRecord(b, s));
    CHECK(cudaEventSynchronize(b));
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    EXPECT(ms >= 0, "round %d elapsed %f", round, ms);
    for (int i = 0; i < n; i++) {
        int want = (i >= 10 && i < 110) ? h[i] : 0x11111111;
        EXPECT(pinned[i] == want, "round %d [%d]=%x want %x", round, i, pinned[i], want);
    }
    CHECK(cudaMemcpy(back.data(), d1, n * sizeof(int), cudaMemcpyDeviceToHost));
    EXPECT(back == h, "round %d: d1 round trip differs", round);
    if (!leak) {
        CHECK(cudaEventDestroy(a));
        CHECK(cudaEventDestroy(b));
        CHECK(cudaStreamDestroy(s));
        CHECK(cudaFree(d1));
        CHECK(cudaFree(d2));
        CHECK(cudaFreeHost(pinned));
    }
}

int main() {
    size_t free0 = 0, total = 0, f = 0;
    CHECK(cudaMemGetInfo(&free0, &total));
    for (int round = 0; round < 3; round++) {
        round_trip(round, round != 1);
        int* big;
        CHECK(cudaMalloc(&big, 64 << 20));  // leaked: released by the reset
        CHECK(cudaMemGetInfo(&f, &total));
        EXPECT(f < free0, "round %d: 64 MB allocated but free memory %zu (before %zu)", round, f, free0);
        CHECK(cudaDeviceReset());
        CHECK(cudaMemGetInfo(&f, &total));
        EXPECT(f == free0, "round %d: free memory after reset %zu, at start %zu", round, f, free0);
    }
    round_trip(3, false);
    CHECK(cudaDeviceSynchronize());
    return finish("device_reset_memory");
}
