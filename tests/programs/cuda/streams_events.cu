// Several streams: cudaMemcpyAsync from pinned memory (cudaMallocHost, cudaHostAlloc,
// cudaHostRegister), kernels per stream, events (record/synchronize/query/elapsed time),
// cudaStreamWaitEvent to order a consumer stream after producer streams, cudaStreamQuery.
#include "check.h"
#include <vector>
#include <cstring>

__global__ void scale_add(float* x, int n, float a, float b) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = x[i] * a + b;
}

// Slow-ish kernel so that ordering bugs would be visible: every element loops `iters` times.
__global__ void busy_inc(int* x, int n, int iters) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        int v = x[i];
        for (int k = 0; k < iters; k++) v = (v * 3 + 1) % 1000003;
        x[i] = v;
    }
}

__global__ void combine(const float* a, const float* b, const float* c, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i] + c[i];
}

int main() {
    const int n = 1 << 14;
    const size_t bytes = n * sizeof(float);

    // Three kinds of pinned host memory.
    float *h0, *h1, *h2, *hout;
    CHECK(cudaMallocHost(&h0, bytes));
    CHECK(cudaHostAlloc(&h1, bytes, cudaHostAllocDefault));
    CHECK(cudaHostAlloc(&hout, bytes, cudaHostAllocPortable));
    h2 = (float*)malloc(bytes);
    CHECK(cudaHostRegister(h2, bytes, cudaHostRegisterDefault));
    for (int i = 0; i < n; i++) { h0[i] = i; h1[i] = 2 * i; h2[i] = 3 * i; }

    cudaStream_t s[4];
    for (int k = 0; k < 3; k++) CHECK(cudaStreamCreate(&s[k]));
    CHECK(cudaStreamCreateWithFlags(&s[3], cudaStreamNonBlocking));

    float* d[3];
    float* dout;
    for (int k = 0; k < 3; k++) CHECK(cudaMalloc(&d[k], bytes));
    CHECK(cudaMalloc(&dout, bytes));
    float* hs[3] = {h0, h1, h2};

    cudaEvent_t start, stop, done[3];
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    for (int k = 0; k < 3; k++) CHECK(cudaEventCreateWithFlags(&done[k], cudaEventDisableTiming));

    CHECK(cudaEventRecord(start, s[3]));
    // Producers: copy in, transform, each on its own stream.
    for (int k = 0; k < 3; k++) {
        CHECK(cudaMemcpyAsync(d[k], hs[k], bytes, cudaMemcpyHostToDevice, s[k]));
        scale_add<<<(n + 255) / 256, 256, 0, s[k]>>>(d[k], n, (float)(k + 1), (float)k);
        CHECK_LAUNCH();
        CHECK(cudaEventRecord(done[k], s[k]));
    }
    // Consumer on the non-blocking stream waits for all producers.
    for (int k = 0; k < 3; k++) CHECK(cudaStreamWaitEvent(s[3], done[k], 0));
    combine<<<(n + 255) / 256, 256, 0, s[3]>>>(d[0], d[1], d[2], dout, n);
    CHECK_LAUNCH();
    CHECK(cudaMemcpyAsync(hout, dout, bytes, cudaMemcpyDeviceToHost, s[3]));
    CHECK(cudaEventRecord(stop, s[3]));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaEventQuery(stop));
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    EXPECT(ms >= 0.0f && ms < 60000.0f, "elapsed %f ms", ms);
    // Timing on an event created with cudaEventDisableTiming is an error.
    float ms2;
    cudaError_t e = cudaEventElapsedTime(&ms2, done[0], stop);
    EXPECT(e == cudaErrorInvalidResourceHandle, "elapsed with a no-timing event: %s", cudaGetErrorName(e));
    e = cudaGetLastError();  // the failed call set the (non-sticky) last error; this clears it
    EXPECT(e == cudaErrorInvalidResourceHandle, "last error: %s", cudaGetErrorName(e));
    CHECK(cudaGetLastError());

    for (int i = 0; i < n; i++) {
        float want = (i * 1.0f + 0) + (2.0f * i * 2 + 1) + (3.0f * i * 3 + 2);
        EXPECT(hout[i] == want, "out[%d]=%f want %f", i, hout[i], want);
    }

    // Stream ordering on one stream: a long kernel then an async copy back must see its result;
    // cudaStreamQuery reports cudaErrorNotReady or cudaSuccess, then success after sync.
    const int m = 4096, iters = 200;
    int* hi;
    CHECK(cudaMallocHost(&hi, m * sizeof(int)));
    for (int i = 0; i < m; i++) hi[i] = i;
    int* di;
    CHECK(cudaMalloc(&di, m * sizeof(int)));
    CHECK(cudaMemcpyAsync(di, hi, m * sizeof(int), cudaMemcpyHostToDevice, s[1]));
    busy_inc<<<m / 128, 128, 0, s[1]>>>(di, m, iters);
    CHECK_LAUNCH();
    CHECK(cudaMemcpyAsync(hi, di, m * sizeof(int), cudaMemcpyDeviceToHost, s[1]));
    e = cudaStreamQuery(s[1]);
    EXPECT(e == cudaSuccess || e == cudaErrorNotReady, "stream query: %s", cudaGetErrorName(e));
    CHECK(cudaStreamSynchronize(s[1]));
    CHECK(cudaStreamQuery(s[1]));
    for (int i = 0; i < m; i++) {
        int v = i;
        for (int k = 0; k < iters; k++) v = (v * 3 + 1) % 1000003;
        EXPECT(hi[i] == v, "busy[%d]=%d want %d", i, hi[i], v);
    }

    // An event recorded on the legacy default stream orders later work on a created stream.
    cudaEvent_t ev;
    CHECK(cudaEventCreate(&ev));
    CHECK(cudaMemset(di, 0, m * sizeof(int)));
    CHECK(cudaEventRecord(ev, 0));
    CHECK(cudaStreamWaitEvent(s[2], ev, 0));
    CHECK(cudaMemcpyAsync(hi, di, m * sizeof(int), cudaMemcpyDeviceToHost, s[2]));
    CHECK(cudaStreamSynchronize(s[2]));
    for (int i = 0; i < m; i++) EXPECT(hi[i] == 0, "after memset [%d]=%d", i, hi[i]);

    CHECK(cudaEventDestroy(ev));
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
    for (int k = 0; k < 3; k++) CHECK(cudaEventDestroy(done[k]));
    for (int k = 0; k < 4; k++) CHECK(cudaStreamDestroy(s[k]));
    for (int k = 0; k < 3; k++) CHECK(cudaFree(d[k]));
    CHECK(cudaFree(dout));
    CHECK(cudaFree(di));
    CHECK(cudaFreeHost(hi));
    CHECK(cudaFreeHost(h0));
    CHECK(cudaFreeHost(h1));
    CHECK(cudaFreeHost(hout));
    CHECK(cudaHostUnregister(h2));
    free(h2);
    return finish("streams_events");
}
