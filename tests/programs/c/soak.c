/* One soak client: for argv[2] seconds, repeatedly allocates, uploads, launches vadd from the
 * module argv[1] (also on a stream of its own, pipelined), downloads, checks against a CPU
 * reference and frees. Prints "soak: ITERATIONS iterations" and "soak: PASSED". */
#include "common.h"
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODULE_FILE SECONDS\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[2]);
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    CUfunction vadd;
    CHECK(cuModuleGetFunction(&vadd, mod, "vadd"));
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    const int n = 4096 + getpid() % 1024; /* clients differ a little */
    float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
    long iters = 0;
    double end = now() + seconds;
    while (now() < end && g_failures == 0) {
        for (int i = 0; i < n; i++) {
            a[i] = (float)(i + iters);
            b[i] = 0.5f * i - (float)iters;
        }
        CUdeviceptr da, db, dc;
        CHECK(cuMemAlloc(&da, n * 4));
        CHECK(cuMemAlloc(&db, n * 4));
        CHECK(cuMemAlloc(&dc, n * 4));
        CHECK(cuMemcpyHtoDAsync(da, a, n * 4, s));
        CHECK(cuMemcpyHtoDAsync(db, b, n * 4, s));
        int nn = n;
        void *params[] = {&da, &db, &dc, &nn};
        CHECK(cuLaunchKernel(vadd, (n + 255) / 256, 1, 1, 256, 1, 1, 0, s, params, NULL));
        CHECK(cuMemsetD32Async(da, 0, n, s));
        CHECK(cuMemcpyDtoHAsync(c, dc, n * 4, s));
        CHECK(cuStreamSynchronize(s));
        for (int i = 0; i < n; i++)
            if (c[i] != a[i] + b[i]) {
                fprintf(stderr, "iteration %ld: c[%d] = %g, want %g\n", iters, i, c[i], a[i] + b[i]);
                g_failures++;
                break;
            }
        CHECK(cuMemFree(da));
        CHECK(cuMemFree(db));
        CHECK(cuMemFree(dc));
        iters++;
    }
    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(mod));
    printf("soak: %ld iterations\n", iters);
    return finish("soak");
}
