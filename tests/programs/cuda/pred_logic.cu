// Compound conditions: nvcc emits or.pred / and.pred / xor.pred / not.pred for these.
#include "check.h"

__global__ void k(const int* a, const int* b, int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int x = a[i], y = b[i];
    int r = 0;
    if (x > 3 || y < 2) r |= 1;
    if (x > 1 && y > 1) r |= 2;
    if ((x & 1) != (y & 1)) r |= 4;
    out[i] = r;
}

int main() {
    const int n = 64;
    int ha[n], hb[n], ho[n];
    for (int i = 0; i < n; i++) { ha[i] = i % 7; hb[i] = (i * 3) % 5; }
    int *da, *db, *dout;
    CHECK(cudaMalloc(&da, sizeof ha));
    CHECK(cudaMalloc(&db, sizeof hb));
    CHECK(cudaMalloc(&dout, sizeof ho));
    CHECK(cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice));
    k<<<1, n>>>(da, db, dout, n);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(ho, dout, sizeof ho, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        int x = ha[i], y = hb[i], r = 0;
        if (x > 3 || y < 2) r |= 1;
        if (x > 1 && y > 1) r |= 2;
        if ((x & 1) != (y & 1)) r |= 4;
        EXPECT(ho[i] == r, "out[%d]=%d want %d", i, ho[i], r);
    }
    return finish("pred_logic");
}
