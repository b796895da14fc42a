// cudaLaunchHostFunc and cudaStreamAddCallback run in stream order: after all earlier work of
// their stream (they see the results of a kernel + async copy into pinned memory) and before any
// later work (a copy issued after them uploads what the callback wrote). Several streams.
#include "check.h"
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

__global__ void fill(int* x, int n, int base) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = base + i;
}

__global__ void add_from(int* x, const int* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

const int N = 2048;

struct Ctx {
    int id;
    int* pinned;      // D2H destination read by the callback, then rewritten by it for an H2D copy
    int base;
    std::atomic<int>* order;  // global sequence counter
    int seen_seq[4];          // order in which this stream's callbacks ran
    int nseen;
    int errors;
};

static void CUDART_CB host_func(void* p) {
    Ctx* c = (Ctx*)p;
    // Slow callback: later work in the stream must still wait for it.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    for (int i = 0; i < N; i++)
        if (c->pinned[i] != c->base + i) c->errors++;
    for (int i = 0; i < N; i++) c->pinned[i] = 1000 * c->id + 1;  // uploaded by the next copy
    c->seen_seq[c->nseen++] = c->order->fetch_add(1);
}

static void CUDART_CB stream_cb(cudaStream_t s, cudaError_t status, void* p) {
    Ctx* c = (Ctx*)p;
    if (status != cudaSuccess) c->errors += 1000;
    // After the host func's upload and add_from: the D2H copy before this callback brought back
    // base + i + 1000*id + 1.
    for (int i = 0; i < N; i++)
        if (c->pinned[i] != c->base + i + 1000 * c->id + 1) c->errors++;
    c->seen_seq[c->nseen++] = c->order->fetch_add(1);
}

int main() {
    const int S = 3;
    std::atomic<int> order(0);
    cudaStream_t s[S];
    int *dx[S], *dy[S], *pinned[S];
    Ctx ctx[S];
    for (int k = 0; k < S; k++) {
        CHECK(cudaStreamCreate(&s[k]));
        CHECK(cudaMalloc(&dx[k], N * sizeof(int)));
        CHECK(cudaMalloc(&dy[k], N * sizeof(int)));
        CHECK(cudaMallocHost(&pinned[k], N * sizeof(int)));
        for (int i = 0; i < N; i++) pinned[k][i] = -1;
        ctx[k] = Ctx{k, pinned[k], 100 * (k + 1), &order, {0, 0, 0, 0}, 0, 0};
    }
    for (int k = 0; k < S; k++) {
        fill<<<N / 256, 256, 0, s[k]>>>(dx[k], N, ctx[k].base);
        CHECK_LAUNCH();
        CHECK(cudaMemcpyAsync(pinned[k], dx[k], N * sizeof(int), cudaMemcpyDeviceToHost, s[k]));
        CHECK(cudaLaunchHostFunc(s[k], host_func, &ctx[k]));
        CHECK(cudaMemcpyAsync(dy[k], pinned[k], N * sizeof(int), cudaMemcpyHostToDevice, s[k]));
        add_from<<<N / 256, 256, 0, s[k]>>>(dx[k], dy[k], N);
        CHECK_LAUNCH();
        CHECK(cudaMemcpyAsync(pinned[k], dx[k], N * sizeof(int), cudaMemcpyDeviceToHost, s[k]));
        CHECK(cudaStreamAddCallback(s[k], stream_cb, &ctx[k], 0));
    }
    // An event recorded after the callbacks completes only after them.
    cudaEvent_t ev[S];
    for (int k = 0; k < S; k++) {
        CHECK(cudaEventCreate(&ev[k]));
        CHECK(cudaEventRecord(ev[k], s[k]));
    }
    for (int k = 0; k < S; k++) {
        CHECK(cudaEventSynchronize(ev[k]));
        EXPECT(ctx[k].nseen == 2, "stream %d: %d callbacks ran by its event", k, ctx[k].nseen);
    }
    for (int k = 0; k < S; k++) CHECK(cudaStreamSynchronize(s[k]));
    for (int k = 0; k < S; k++) {
        EXPECT(ctx[k].errors == 0, "stream %d: %d wrong values seen by callbacks", k, ctx[k].errors);
        EXPECT(ctx[k].nseen == 2, "stream %d: %d callbacks ran", k, ctx[k].nseen);
        EXPECT(ctx[k].seen_seq[0] < ctx[k].seen_seq[1], "stream %d: callbacks out of order", k);
        for (int i = 0; i < N; i++) {
            int want = ctx[k].base + i + 1000 * k + 1;
            EXPECT(pinned[k][i] == want, "stream %d [%d]=%d want %d", k, i, pinned[k][i], want);
        }
    }
    EXPECT(order.load() == 2 * S, "%d callbacks ran in all", order.load());

    // A host func on the legacy default stream runs before a later synchronous cudaMemcpy returns.
    std::atomic<int> flag(0);
    CHECK(cudaLaunchHostFunc(0, [](void* p) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ((std::atomic<int>*)p)->store(7);
    }, &flag));
    int tmp;
    CHECK(cudaMemcpy(&tmp, dx[0], sizeof(int), cudaMemcpyDeviceToHost));
    EXPECT(flag.load() == 7, "legacy-stream host func not done before a later cudaMemcpy (%d)", flag.load());

    for (int k = 0; k < S; k++) {
        CHECK(cudaEventDestroy(ev[k]));
        CHECK(cudaStreamDestroy(s[k]));
        CHECK(cudaFree(dx[k]));
        CHECK(cudaFree(dy[k]));
        CHECK(cudaFreeHost(pinned[k]));
    }
    return finish("host_callbacks");
}
