// Runtime-API vector add: cudaMalloc, cudaMemcpy, a <<<>>> launch, checked on the host.
#include <cstdio>
#include <cstdlib>

__global__ void add(const float* a, const float* b, float* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main() {
    const int n = 1 << 16;
    float *a = (float*)malloc(n * 4), *b = (float*)malloc(n * 4), *c = (float*)malloc(n * 4);
    for (int i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i; }
    float *da, *db, *dc;
    cudaMalloc(&da, n * 4);
    cudaMalloc(&db, n * 4);
    cudaMalloc(&dc, n * 4);
    cudaMemcpy(da, a, n * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b, n * 4, cudaMemcpyHostToDevice);
    add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) { printf("launch: %s\n", cudaGetErrorString(e)); return 1; }
    cudaMemcpy(c, dc, n * 4, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += c[i] != 3.0f * i;
    cudaFree(da); cudaFree(db); cudaFree(dc);
    printf("vector_add: %s\n", bad ? "FAILED" : "PASSED");
    return bad != 0;
}
