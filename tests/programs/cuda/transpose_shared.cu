// Matrix transpose through a padded shared-memory tile (TILE x TILE+1 to avoid bank conflicts),
// 2D grid with 32x8 blocks each moving a 32x32 tile; non-square matrix whose sizes are multiples
// of the tile; also the naive transpose and a round trip (transpose twice = identity).
#include "check.h"
#include <vector>

#define TILE 32
#define ROWS 8

__global__ void transpose_tiled(const float* in, float* out, int w, int h) {
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;
    int y = blockIdx.y * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * w + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;
    y = blockIdx.x * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS) out[(y + j) * h + x] = tile[threadIdx.x][threadIdx.y + j];
}

__global__ void transpose_naive(const float* in, float* out, int w, int h) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    out[x * h + y] = in[y * w + x];
}

int main() {
    const int W = 160, H = 96;
    std::vector<float> a(W * H), t(W * H), back(W * H);
    for (int i = 0; i < W * H; i++) a[i] = (float)i;
    float *da, *dt, *db;
    CHECK(cudaMalloc(&da, W * H * sizeof(float)));
    CHECK(cudaMalloc(&dt, W * H * sizeof(float)));
    CHECK(cudaMalloc(&db, W * H * sizeof(float)));
    CHECK(cudaMemcpy(da, a.data(), W * H * sizeof(float), cudaMemcpyHostToDevice));

    transpose_tiled<<<dim3(W / TILE, H / TILE), dim3(TILE, ROWS)>>>(da, dt, W, H);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(t.data(), dt, W * H * sizeof(float), cudaMemcpyDeviceToHost));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            EXPECT(t[x * H + y] == a[y * W + x], "tiled t[%d][%d]=%f", x, y, t[x * H + y]);

    // Back again: (H x W) -> (W x H).
    transpose_tiled<<<dim3(H / TILE, W / TILE), dim3(TILE, ROWS)>>>(dt, db, H, W);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(back.data(), db, W * H * sizeof(float), cudaMemcpyDeviceToHost));
    EXPECT(back == a, "round trip differs%s", "");

    CHECK(cudaMemset(dt, 0, W * H * sizeof(float)));
    transpose_naive<<<dim3(W / 16, H / 16), dim3(16, 16)>>>(da, dt, W, H);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy(t.data(), dt, W * H * sizeof(float), cudaMemcpyDeviceToHost));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            EXPECT(t[x * H + y] == a[y * W + x], "naive t[%d][%d]=%f", x, y, t[x * H + y]);

    CHECK(cudaFree(da));
    CHECK(cudaFree(dt));
    CHECK(cudaFree(db));
    return finish("transpose_shared");
}
