// A kernel launch as the program's very first CUDA runtime call: cudart initialises lazily
// inside the launch (loads the module, then makes the primary context current).
#include "check.h"

__global__ void count(int* out) {
    if (out) atomicAdd(out, 1);
}

int main() {
    count<<<2, 32>>>(nullptr);  // the very first runtime call
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());
    int* d;
    CHECK(cudaMalloc(&d, sizeof(int)));
    CHECK(cudaMemset(d, 0, sizeof(int)));
    count<<<2, 32>>>(d);
    CHECK_LAUNCH();
    int h = 0;
    CHECK(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost));
    EXPECT(h == 64, "count %d", h);
    CHECK(cudaFree(d));
    return finish("launch_first");
}
