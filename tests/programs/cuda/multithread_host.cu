// One device driven from 6 host threads (std::thread), each with its own stream, pinned and
// device buffers, kernels and async copies, for several rounds; plus threads sharing one
// device buffer through the legacy default stream with per-thread disjoint slices.
#include "check.h"
#include <thread>
#include <vector>
#include <atomic>

__global__ void affine(int* x, int n, int a, int b) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = x[i] * a + b;
}

__global__ void slice_fill(int* x, int off, int n, int v) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[off + i] = v + i;
}

static std::atomic<int> failures(0);

static void worker(int id) {
    const int n = 3000 + 17 * id;
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    int* h;
    CHECK(cudaMallocHost(&h, n * sizeof(int)));
    int* d;
    CHECK(cudaMalloc(&d, n * sizeof(int)));
    std::vector<int> ref(n);
    for (int i = 0; i < n; i++) ref[i] = h[i] = i * (id + 1);
    for (int round = 0; round < 5; round++) {
        int a = (id + round) % 3 + 1, b = id * 10 + round;
        CHECK(cudaMemcpyAsync(d, h, n * sizeof(int), cudaMemcpyHostToDevice, s));
        affine<<<(n + 127) / 128, 128, 0, s>>>(d, n, a, b);
        CHECK(cudaGetLastError());
        affine<<<(n + 255) / 256, 256, 0, s>>>(d, n, 1, -id);
        CHECK(cudaGetLastError());
        CHECK(cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
        CHECK(cudaStreamSynchronize(s));
        int bad = 0;
        for (int i = 0; i < n; i++) {
            ref[i] = ref[i] * a + b - id;
            bad += h[i] != ref[i];
        }
        if (bad) {
            printf("thread %d round %d: %d wrong (h[0]=%d want %d)\n", id, round, bad, h[0], ref[0]);
            failures++;
        }
    }
    CHECK(cudaFree(d));
    CHECK(cudaFreeHost(h));
    CHECK(cudaStreamDestroy(s));
}

int main() {
    CHECK(cudaSetDevice(0));
    const int T = 6;
    std::vector<std::thread> th;
    for (int t = 0; t < T; t++) th.emplace_back(worker, t);
    for (auto& t : th) t.join();
    EXPECT(failures.load() == 0, "%d thread rounds failed", failures.load());

    // Shared buffer, legacy stream, synchronous copies from every thread.
    const int per = 1000;
    int* shared;
    CHECK(cudaMalloc(&shared, T * per * sizeof(int)));
    CHECK(cudaMemset(shared, 0xff, T * per * sizeof(int)));
    th.clear();
    for (int t = 0; t < T; t++)
        th.emplace_back([=]() {
            CHECK(cudaSetDevice(0));
            slice_fill<<<(per + 127) / 128, 128>>>(shared, t * per, per, t * 100000);
            CHECK(cudaGetLastError());
            std::vector<int> back(per);
            CHECK(cudaMemcpy(back.data(), shared + t * per, per * sizeof(int), cudaMemcpyDeviceToHost));
            for (int i = 0; i < per; i++)
                if (back[i] != t * 100000 + i) {
                    printf("shared slice %d [%d]=%d\n", t, i, back[i]);
                    failures++;
                    break;
                }
        });
    for (auto& t : th) t.join();
    std::vector<int> all(T * per);
    CHECK(cudaMemcpy(all.data(), shared, all.size() * sizeof(int), cudaMemcpyDeviceToHost));
    for (int t = 0; t < T; t++)
        for (int i = 0; i < per; i++)
            EXPECT(all[t * per + i] == t * 100000 + i, "all[%d]=%d", t * per + i, all[t * per + i]);
    EXPECT(failures.load() == 0, "%d shared-slice failures", failures.load());
    CHECK(cudaFree(shared));
    return finish("multithread_host");
}
