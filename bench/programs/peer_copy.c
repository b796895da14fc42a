/* Device-to-device copies between device 1 and device 0 (cuMemcpyPeer), as a program sees them:
 * on one machine's GPUs, on two devices of one rgpu server, or on devices of two rgpu servers
 * (then staged through the client). Checks the copied bytes once per size, then prints one line
 * per size: `peer <KiB> KiB | <GB/s>`.
 *   usage: peer_copy [MiB]   (largest copy, default 64) */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x) do { CUresult r_ = (x); if (r_) { fprintf(stderr, "%s failed: %d\n", #x, r_); exit(1); } } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t max = (size_t)(argc > 1 ? atoi(argv[1]) : 64) << 20;
    if (max < 4096) max = 4096;
    CHECK(cuInit(0));
    int n = 0;
    CHECK(cuDeviceGetCount(&n));
    if (n < 2) {
        fprintf(stderr, "peer_copy needs two devices, found %d\n", n);
        return 2;
    }
    CUdevice d0, d1;
    CUcontext c0, c1;
    CHECK(cuDeviceGet(&d0, 0));
    CHECK(cuDeviceGet(&d1, 1));
    CHECK(cuDevicePrimaryCtxRetain(&c0, d0));
    CHECK(cuDevicePrimaryCtxRetain(&c1, d1));
    CUdeviceptr dst, src;
    CHECK(cuCtxSetCurrent(c0));
    CHECK(cuMemAlloc(&dst, max));
    CHECK(cuCtxSetCurrent(c1));
    CHECK(cuMemAlloc(&src, max));
    unsigned char *host = malloc(max), *back = malloc(max);
    for (size_t i = 0; i < max; i++) host[i] = (unsigned char)(i * 7 + (i >> 12));
    CHECK(cuMemcpyHtoD(src, host, max));
    CHECK(cuCtxSetCurrent(c0));
    for (size_t size = 4096; size <= max; size *= 4) {
        CHECK(cuMemsetD8(dst, 0, size));
        CHECK(cuMemcpyPeer(dst, c0, src, c1, size));
        CHECK(cuMemcpyDtoH(back, dst, size));
        if (memcmp(back, host, size) != 0) {
            fprintf(stderr, "peer copy of %zu bytes gave wrong data\n", size);
            return 1;
        }
        int reps = size >= (16 << 20) ? 4 : size >= (1 << 20) ? 16 : 64;
        double t0 = now();
        for (int r = 0; r < reps; r++) CHECK(cuMemcpyPeer(dst, c0, src, c1, size));
        CHECK(cuCtxSynchronize());
        double secs = (now() - t0) / reps;
        printf("peer %zu KiB | %.3f\n", size >> 10, size / secs / 1e9);
        if (size > max / 4) break;
    }
    free(host);
    free(back);
    return 0;
}
