/* Shared memory and barriers (tests/kernels/shared_mem.cu): tiled matrix multiplies with static
 * and dynamic shared memory (small-integer matrices, so every sum is exact in any order), a
 * tree reduction, barrier rounds in 1D/2D/3D blocks, __syncthreads_count/_and/_or, a block
 * whose last warp exits before the barriers, and named barriers with thread counts (a producer
 * and a consumer warp, and an independent pair of warps). */
#include "kernel_common.h"

static void ref_matmul(const float *A, const float *B, float *C, int M, int N, int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
            C[i * N + j] = (float)s;
        }
}

static void test_matmul(CUmodule mod, const char *kernel, int M, int N, int K, int T, int dyn) {
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4);
    float *C = malloc((size_t)M * N * 4), *R = malloc((size_t)M * N * 4);
    for (int i = 0; i < M * K; i++) A[i] = (float)((int)(rng32() % 17) - 8);
    for (int i = 0; i < K * N; i++) B[i] = (float)((int)(rng32() % 17) - 8);
    CUdeviceptr dA = dev_upload(A, (size_t)M * K * 4), dB = dev_upload(B, (size_t)K * N * 4);
    CUdeviceptr dC = dev_alloc((size_t)M * N * 4);
    void *p[] = {&dA, &dB, &dC, &M, &N, &K};
    unsigned smem = dyn ? 2u * T * T * 4 : 0;
    launch3(get_fn(mod, kernel), (N + T - 1) / T, (M + T - 1) / T, 1, T, T, 1, smem, p);
    dev_download(C, dC, (size_t)M * N * 4);
    ref_matmul(A, B, R, M, N, K);
    char what[96];
    snprintf(what, sizeof what, "%s %dx%dx%d tile %d", kernel, M, N, K, T);
    for (int i = 0; i < M * N; i++) check_f32_exact(what, i, C[i], R[i]);
    CHECK(cuMemFree(dA));
    CHECK(cuMemFree(dB));
    CHECK(cuMemFree(dC));
    free(A); free(B); free(C); free(R);
}

static void test_block_sum(CUmodule mod, int n, int threads) {
    int *x = malloc(n * 4);
    long long total = 0;
    for (int i = 0; i < n; i++) total += x[i] = (int)(rng32() % 2001) - 1000;
    int blocks = (n + 2 * threads - 1) / (2 * threads);
    CUdeviceptr dx = dev_upload(x, n * 4), dp = dev_alloc(blocks * 4);
    void *p[] = {&dx, &dp, &n};
    launch1(get_fn(mod, "block_sum"), blocks, threads, threads * 4, p);
    int *part = malloc(blocks * 4);
    dev_download(part, dp, blocks * 4);
    long long got = 0;
    for (int b = 0; b < blocks; b++) {
        int want = 0;
        for (int i = b * 2 * threads; i < (b + 1) * 2 * threads && i < n; i++) want += x[i];
        check_u32("block_sum partial", b, part[b], want);
        got += part[b];
    }
    check_u64("block_sum total", n, got, total);
    CHECK(cuMemFree(dx));
    CHECK(cuMemFree(dp));
    free(x); free(part);
}

static void test_barrier_rounds(CUmodule mod, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, int rounds) {
    int nt = bx * by * bz, nb = gx * gy * gz;
    CUdeviceptr d = dev_alloc((size_t)nt * nb * 4);
    void *p[] = {&d, &rounds};
    launch3(get_fn(mod, "barrier_rounds"), gx, gy, gz, bx, by, bz, 0, p);
    unsigned *got = malloc((size_t)nt * nb * 4), *s = malloc(nt * 4), *v = malloc(nt * 4);
    dev_download(got, d, (size_t)nt * nb * 4);
    char what[96];
    snprintf(what, sizeof what, "barrier_rounds grid (%u,%u,%u) block (%u,%u,%u)", gx, gy, gz, bx, by, bz);
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < nt; t++) s[t] = t * 7u + b;
        for (int r = 1; r <= rounds; r++) {
            for (int t = 0; t < nt; t++) v[t] = s[(t + r) % nt] * 3u + s[(t * 5 + r) % nt];
            for (int t = 0; t < nt; t++) s[t] = v[t] ^ (unsigned)r;
        }
        for (int t = 0; t < nt; t++) check_u32(what, b * nt + t, got[b * nt + t], s[t]);
    }
    CHECK(cuMemFree(d));
    free(got); free(s); free(v);
}

static void test_votes(CUmodule mod, int threads) {
    static const int mods[] = {1, 2, 3, 7, 32, 256, 1000, 5};
    const int nb = sizeof mods / sizeof mods[0];
    CUdeviceptr dm = dev_upload(mods, sizeof mods), dout = dev_alloc(nb * 16);
    void *p[] = {&dm, &dout};
    launch1(get_fn(mod, "barrier_votes"), nb, threads, 0, p);
    int out[4 * 8];
    dev_download(out, dout, nb * 16);
    for (int b = 0; b < nb; b++) {
        int count = 0, all = 1, any = 0;
        for (int t = 0; t < threads; t++) {
            int pred = t % mods[b] == 0;
            count += pred;
            all &= pred;
            any |= t * mods[b] > 5000;
        }
        check_u32("__syncthreads_count", b, out[4 * b], count);
        check_u32("__syncthreads_and", b, out[4 * b + 1] != 0, all);
        check_u32("__syncthreads_or", b, out[4 * b + 2] != 0, any);
        check_u32("__syncthreads_or(0)", b, out[4 * b + 3], 0);
    }
    CHECK(cuMemFree(dm));
    CHECK(cuMemFree(dout));
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));

    test_matmul(mod, "matmul_static", 70, 45, 50, 16, 0);
    test_matmul(mod, "matmul_static", 64, 64, 64, 16, 0);
    test_matmul(mod, "matmul_dynamic", 37, 29, 41, 8, 1);
    test_matmul(mod, "matmul_dynamic", 48, 48, 33, 16, 1);
    test_matmul(mod, "matmul_dynamic", 64, 40, 64, 32, 1);

    test_block_sum(mod, 100000, 256);
    test_block_sum(mod, 777, 64);
    test_block_sum(mod, 5000, 1024);

    test_barrier_rounds(mod, 4, 1, 1, 256, 1, 1, 5);
    test_barrier_rounds(mod, 3, 2, 1, 8, 4, 2, 5);
    test_barrier_rounds(mod, 2, 1, 2, 3, 5, 7, 4);
    test_barrier_rounds(mod, 1, 1, 1, 32, 32, 1, 3);
    test_barrier_rounds(mod, 2, 2, 2, 4, 4, 4, 6);
    test_barrier_rounds(mod, 3, 1, 1, 33, 1, 1, 5);
    test_barrier_rounds(mod, 1, 2, 1, 1, 1, 64, 5);

    test_votes(mod, 256);
    test_votes(mod, 100);

    CUdeviceptr d = dev_alloc(4 * 96 * 4);
    void *p[] = {&d};
    launch1(get_fn(mod, "early_exit"), 4, 128, 0, p);
    int out[4 * 96];
    dev_download(out, d, sizeof out);
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < 96; t++) check_u32("early_exit", b * 96 + t, out[b * 96 + t], 2 * (96 - (t + 1) % 96));

    /* Named barriers: producer/consumer warps and an independent pair of warps. */
    {
        const int rounds = 20;
        int in[20 * 32], got[96];
        for (int i = 0; i < rounds * 32; i++) in[i] = (int)(rng32() % 1000);
        CUdeviceptr din = dev_upload(in, sizeof in), dout = dev_alloc(sizeof got);
        int rr = rounds;
        void *pn[] = {&din, &dout, &rr};
        launch1(get_fn(mod, "named_barriers"), 3, 128, 0, pn);
        dev_download(got, dout, sizeof got);
        for (int lane = 0; lane < 32; lane++) {
            int acc = 0;
            for (int r = 0; r < rounds; r++) acc += in[r * 32 + (lane + r) % 32] * (r + 1);
            check_u32("named barriers: consumer", lane, got[lane], acc);
        }
        for (int t = 0; t < 64; t++) {
            int acc = 0;
            for (int r = 0; r < rounds; r++) acc += (63 - t) * (r + 3);
            check_u32("named barriers: independent pair", t, got[32 + t], acc);
        }
    }

    /* More dynamic shared memory than the device allows is refused at launch. */
    int M = 16, N = 16, K = 16;
    CUdeviceptr dA = dev_alloc(16 * 16 * 4);
    void *pm[] = {&dA, &dA, &dA, &M, &N, &K};
    EXPECT_ERR(cuLaunchKernel(get_fn(mod, "matmul_dynamic"), 1, 1, 1, 16, 16, 1, 1 << 20, NULL, pm, NULL),
               CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxSynchronize());

    CHECK(cuModuleUnload(mod));
    return finish("shared_mem");
}
