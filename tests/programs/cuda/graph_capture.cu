// CUDA graphs from stream capture: capture a memcpy + two kernels + memcpy on a stream,
// instantiate, launch the graph several times, check the results.
#include "check.h"
#include <vector>

__global__ void inc(int* x, int n, int by) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += by;
}

int main() {
    const int n = 1000;
    int* h;
    CHECK(cudaMallocHost(&h, n * sizeof(int)));
    for (int i = 0; i < n; i++) h[i] = i;
    int* d;
    CHECK(cudaMalloc(&d, n * sizeof(int)));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CHECK(cudaMemcpyAsync(d, h, n * sizeof(int), cudaMemcpyHostToDevice, s));
    inc<<<(n + 127) / 128, 128, 0, s>>>(d, n, 1);
    inc<<<(n + 127) / 128, 128, 0, s>>>(d, n, 10);
    CHECK(cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
    cudaGraph_t g;
    CHECK(cudaStreamEndCapture(s, &g));
    size_t nodes = 0;
    CHECK(cudaGraphGetNodes(g, nullptr, &nodes));
    EXPECT(nodes == 4, "graph nodes %zu", nodes);
    cudaGraphExec_t ge;
    CHECK(cudaGraphInstantiate(&ge, g, 0));
    for (int r = 0; r < 3; r++) CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaStreamSynchronize(s));
    for (int i = 0; i < n; i++) EXPECT(h[i] == i + 33, "h[%d]=%d", i, h[i]);
    CHECK(cudaGraphExecDestroy(ge));
    CHECK(cudaGraphDestroy(g));
    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFree(d));
    CHECK(cudaFreeHost(h));
    return finish("graph_capture");
}
