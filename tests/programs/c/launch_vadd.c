/* Loads tests/kernels/vadd.cu compiled by nvcc (argv[1]: PTX, fatbin or cubin path) and launches
 * it with kernelParams and with `extra`, checked against a CPU reference; also the launch-
 * configuration errors and module-lookup errors the driver reports. */
#include "common.h"
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE_FILE\n", argv[0]);
        return 2;
    }
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    CUfunction vadd, scale, none;
    CHECK(cuModuleGetFunction(&vadd, mod, "vadd"));
    CHECK(cuModuleGetFunction(&scale, mod, "scale"));
    EXPECT_ERR(cuModuleGetFunction(&none, mod, "no_such_kernel"), CUDA_ERROR_NOT_FOUND);

    size_t off = 0, size = 0;
    CHECK(cuFuncGetParamInfo(vadd, 3, &off, &size));
    EXPECT(off == 24 && size == 4);
    EXPECT_ERR(cuFuncGetParamInfo(vadd, 4, &off, &size), CUDA_ERROR_INVALID_VALUE);

    const int n = 100000;
    float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
    for (int i = 0; i < n; i++) { a[i] = (float)i; b[i] = 0.25f * i - 7.0f; }
    CUdeviceptr da, db, dc;
    CHECK(cuMemAlloc(&da, n * 4));
    CHECK(cuMemAlloc(&db, n * 4));
    CHECK(cuMemAlloc(&dc, n * 4));
    CHECK(cuMemcpyHtoD(da, a, n * 4));
    CHECK(cuMemcpyHtoD(db, b, n * 4));
    int nn = n;
    void *params[] = {&da, &db, &dc, &nn};
    int threads = 256, blocks = (n + threads - 1) / threads;
    CHECK(cuLaunchKernel(vadd, blocks, 1, 1, threads, 1, 1, 0, NULL, params, NULL));
    CHECK(cuCtxSynchronize());
    CHECK(cuMemcpyDtoH(c, dc, n * 4));
    for (int i = 0; i < n; i++) EXPECT(c[i] == a[i] + b[i]);

    /* The same launch through `extra` (a packed parameter buffer). */
    struct { CUdeviceptr x; float s; int n; } __attribute__((aligned(8))) buf = {dc, 2.0f, n};
    size_t bufsize = sizeof buf;
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &bufsize, CU_LAUNCH_PARAM_END};
    CHECK(cuLaunchKernel(scale, 20, 1, 1, 128, 1, 1, 0, NULL, NULL, extra));
    CHECK(cuMemcpyDtoH(c, dc, n * 4));
    int bad = 0;
    for (int i = 0; i < n; i++) bad += c[i] != 2.0f * (a[i] + b[i]);
    EXPECT(bad == 0);

    /* Bad configurations fail immediately and leave the context usable. */
    EXPECT_ERR(cuLaunchKernel(vadd, blocks, 1, 1, 2048, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(vadd, 0, 1, 1, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(vadd, 1, 1, 1, 32, 32, 2, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(vadd, 1, 1, 1, 32, 1, 1, 1 << 20, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuLaunchKernel(vadd, blocks, 1, 1, threads, 1, 1, 0, NULL, params, NULL));
    CHECK(cuCtxSynchronize());
    EXPECT_ERR(cuLaunchKernel(vadd, 1, 1, 1, 32, 1, 1, 0, (CUstream)(uintptr_t)0xbad0, params, NULL),
               CUDA_ERROR_INVALID_HANDLE);
    CUstream st;
    CHECK(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
    CHECK(cuLaunchKernel(vadd, blocks, 1, 1, threads, 1, 1, 0, st, params, NULL));
    CHECK(cuLaunchKernel(vadd, blocks, 1, 1, threads, 1, 1, 0, st, params, NULL));
    CHECK(cuStreamSynchronize(st));
    CHECK(cuStreamDestroy(st));

    int min_grid = 0, best_block = 0;
    CHECK(cuOccupancyMaxPotentialBlockSize(&min_grid, &best_block, vadd, NULL, 0, 0));
    EXPECT(best_block >= 32 && best_block <= 1024 && best_block % 32 == 0 && min_grid > 0);
    CHECK(cuOccupancyMaxPotentialBlockSize(&min_grid, &best_block, vadd, NULL, 0, 96));
    EXPECT(best_block <= 96 && best_block % 32 == 0);

    CHECK(cuModuleUnload(mod));
    EXPECT_ERR(cuModuleGetFunction(&none, mod, "vadd"), CUDA_ERROR_INVALID_HANDLE);
    free(a); free(b); free(c);
    return finish("launch_vadd");
}
