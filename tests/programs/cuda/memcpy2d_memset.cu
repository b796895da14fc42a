// Pitched memory: cudaMallocPitch, cudaMemcpy2D (H2D, D2D, D2H, sub-rectangles, Async),
// cudaMemset, cudaMemset2D, cudaMemsetAsync, cudaMemcpy2DAsync; a kernel that walks pitched rows.
#include "check.h"
#include <vector>
#include <cstring>

__global__ void add_rows(float* p, size_t pitch, int w, int h) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y;
    if (x < w) {
        float* row = (float*)((char*)p + y * pitch);
        row[x] += 1000.0f * y;
    }
}

int main() {
    const int W = 75, H = 33;  // floats per row, rows
    size_t pitch = 0;
    float* d;
    CHECK(cudaMallocPitch((void**)&d, &pitch, W * sizeof(float), H));
    EXPECT(pitch >= W * sizeof(float), "pitch %zu", pitch);
    EXPECT(pitch % 32 == 0, "pitch %zu not aligned", pitch);

    std::vector<float> h(W * H), back(W * H);
    for (int i = 0; i < W * H; i++) h[i] = i * 0.5f;

    // Whole matrix in, kernel, whole matrix out.
    CHECK(cudaMemset2D(d, pitch, 0, pitch, H));
    CHECK(cudaMemcpy2D(d, pitch, h.data(), W * sizeof(float), W * sizeof(float), H, cudaMemcpyHostToDevice));
    add_rows<<<dim3((W + 31) / 32, H), 32>>>(d, pitch, W, H);
    CHECK_LAUNCH();
    CHECK(cudaMemcpy2D(back.data(), W * sizeof(float), d, pitch, W * sizeof(float), H, cudaMemcpyDeviceToHost));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            EXPECT(back[y * W + x] == h[y * W + x] + 1000.0f * y, "(%d,%d)=%f", x, y, back[y * W + x]);

    // Sub-rectangle D2D into a second pitched buffer (different pitch), 2D memset of a window.
    size_t pitch2 = 0;
    float* d2;
    CHECK(cudaMallocPitch((void**)&d2, &pitch2, 40 * sizeof(float), 20));
    CHECK(cudaMemset(d2, 0, pitch2 * 20));
    // Copy the 30x10 window starting at (5, 7) of d to (3, 2) of d2.
    CHECK(cudaMemcpy2D((char*)d2 + 2 * pitch2 + 3 * sizeof(float), pitch2,
                       (char*)d + 7 * pitch + 5 * sizeof(float), pitch, 30 * sizeof(float), 10,
                       cudaMemcpyDeviceToDevice));
    // Byte memset of a 4x3 window at (0, 15): 0x3f bytes -> 0x3f3f3f3f floats.
    CHECK(cudaMemset2D((char*)d2 + 15 * pitch2, pitch2, 0x3f, 4 * sizeof(float), 3));
    std::vector<float> b2(40 * 20);
    CHECK(cudaMemcpy2D(b2.data(), 40 * sizeof(float), d2, pitch2, 40 * sizeof(float), 20, cudaMemcpyDeviceToHost));
    float f3f;
    unsigned u3f = 0x3f3f3f3fu;
    memcpy(&f3f, &u3f, 4);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 40; x++) {
            float want = 0.0f;
            if (y >= 2 && y < 12 && x >= 3 && x < 33) {
                int sx = x - 3 + 5, sy = y - 2 + 7;
                want = h[sy * W + sx] + 1000.0f * sy;
            }
            if (y >= 15 && y < 18 && x < 4) want = f3f;
            EXPECT(b2[y * 40 + x] == want, "d2 (%d,%d)=%f want %f", x, y, b2[y * 40 + x], want);
        }

    // Async variants on a stream with pinned memory.
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    unsigned char* ph;
    const int BW = 100, BH = 9;
    CHECK(cudaMallocHost(&ph, BW * BH));
    unsigned char* db;
    size_t bp = 0;
    CHECK(cudaMallocPitch((void**)&db, &bp, BW, BH));
    CHECK(cudaMemsetAsync(db, 0xab, bp * BH, s));
    CHECK(cudaMemset2DAsync(db + 10, bp, 0x01, 20, BH, s));
    CHECK(cudaMemcpy2DAsync(ph, BW, db, bp, BW, BH, cudaMemcpyDeviceToHost, s));
    CHECK(cudaStreamSynchronize(s));
    for (int y = 0; y < BH; y++)
        for (int x = 0; x < BW; x++) {
            unsigned char want = (x >= 10 && x < 30) ? 0x01 : 0xab;
            EXPECT(ph[y * BW + x] == want, "bytes (%d,%d)=%02x", x, y, ph[y * BW + x]);
        }
    // Host-to-host and host-to-device with cudaMemcpyDefault (unified addressing).
    std::vector<unsigned char> src(BW * BH), dst(BW * BH, 0);
    for (int i = 0; i < BW * BH; i++) src[i] = (unsigned char)(i * 13);
    CHECK(cudaMemcpy2D(db, bp, src.data(), BW, BW, BH, cudaMemcpyDefault));
    CHECK(cudaMemcpy2D(dst.data(), BW, db, bp, BW, BH, cudaMemcpyDefault));
    EXPECT(dst == src, "cudaMemcpyDefault 2D round trip differs%s", "");

    // Plain 1D memset of an odd byte range inside a buffer.
    CHECK(cudaMemset(db + 3, 0x5a, 7));
    unsigned char row0[16];
    CHECK(cudaMemcpy(row0, db, 16, cudaMemcpyDeviceToHost));
    for (int x = 0; x < 16; x++) {
        unsigned char want = (x >= 3 && x < 10) ? 0x5a : src[x];
        EXPECT(row0[x] == want, "memset [%d]=%02x want %02x", x, row0[x], want);
    }

    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFreeHost(ph));
    CHECK(cudaFree(db));
    CHECK(cudaFree(d));
    CHECK(cudaFree(d2));
    return finish("memcpy2d_memset");
}
