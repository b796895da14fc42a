// Tiled matrix multiply (double) with dynamic shared memory: extern __shared__ plus the launch's
// third parameter; the tile size is a runtime value, run for two tile sizes; matrix sizes are
// not multiples of either.
#include "check.h"
#include <vector>
#include <cmath>

__global__ void matmul(const double* A, const double* B, double* C, int M, int N, int K) {
    extern __shared__ double smem[];
    int T = blockDim.x;
    double* As = smem;          // T*T
    double* Bs = smem + T * T;  // T*T
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * T + ty;
    int col = blockIdx.x * T + tx;
    double acc = 0.0;
    for (int t = 0; t < (K + T - 1) / T; t++) {
        int ak = t * T + tx, bk = t * T + ty;
        As[ty * T + tx] = (row < M && ak < K) ? A[row * K + ak] : 0.0;
        Bs[ty * T + tx] = (bk < K && col < N) ? B[bk * N + col] : 0.0;
        __syncthreads();
        for (int k = 0; k < T; k++) acc += As[ty * T + k] * Bs[k * T + tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

int main() {
    const int M = 40, N = 37, K = 50;
    std::vector<double> A(M * K), B(K * N), C(M * N), ref(M * N);
    for (int i = 0; i < M * K; i++) A[i] = sin(0.1 * i);
    for (int i = 0; i < K * N; i++) B[i] = cos(0.07 * i);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
            ref[i * N + j] = s;
        }
    double *dA, *dB, *dC;
    CHECK(cudaMalloc(&dA, A.size() * sizeof(double)));
    CHECK(cudaMalloc(&dB, B.size() * sizeof(double)));
    CHECK(cudaMalloc(&dC, C.size() * sizeof(double)));
    CHECK(cudaMemcpy(dA, A.data(), A.size() * sizeof(double), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dB, B.data(), B.size() * sizeof(double), cudaMemcpyHostToDevice));
    int tiles[] = {8, 16};
    for (int T : tiles) {
        CHECK(cudaMemset(dC, 0, C.size() * sizeof(double)));
        dim3 block(T, T), grid((N + T - 1) / T, (M + T - 1) / T);
        size_t shmem = 2 * T * T * sizeof(double);
        matmul<<<grid, block, shmem>>>(dA, dB, dC, M, N, K);
        CHECK_LAUNCH();
        CHECK(cudaMemcpy(C.data(), dC, C.size() * sizeof(double), cudaMemcpyDeviceToHost));
        for (int i = 0; i < M * N; i++)
            EXPECT(fabs(C[i] - ref[i]) <= 1e-9 * (1 + fabs(ref[i])), "T=%d C[%d]=%f ref=%f", T, i, C[i], ref[i]);
    }
    CHECK(cudaFree(dA));
    CHECK(cudaFree(dB));
    CHECK(cudaFree(dC));
    return finish("matmul_dynamic_shared");
}
