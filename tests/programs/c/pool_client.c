/* A client of a GPU pool: checks it sees exactly argv[1] devices, allocates argv[3] MiB (default
 * 1) on each, prints READY, then works on every device (memset, read back, check) for argv[2]
 * seconds and prints DONE. A call that fails prints LOST <code> and exits 3 (the pool ended the
 * session). */
#include "common.h"
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int want = argc > 1 ? atoi(argv[1]) : 1;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    size_t bytes = (size_t)(argc > 3 ? atoi(argv[3]) : 1) << 20;
    CHECK(cuInit(0));
    int n = 0;
    CHECK(cuDeviceGetCount(&n));
    if (n != want || n > 8) {
        printf("DEVICES %d (expected %d)\n", n, want);
        return 2;
    }
    CUcontext ctx[8];
    CUdeviceptr p[8];
    for (int d = 0; d < n; d++) {
        CUdevice dev;
        CHECK(cuDeviceGet(&dev, d));
        CHECK(cuDevicePrimaryCtxRetain(&ctx[d], dev));
        CHECK(cuCtxSetCurrent(ctx[d]));
        CHECK(cuMemAlloc(&p[d], bytes));
    }
    printf("READY %d\n", n);
    fflush(stdout);
    double end = now() + secs;
    for (unsigned i = 0; now() < end; i++) {
        for (int d = 0; d < n; d++) {
            unsigned v = i * 16 + (unsigned)d, got = 0;
            CUresult r = cuCtxSetCurrent(ctx[d]);
            if (!r) r = cuMemsetD32(p[d], v, bytes / 4);
            if (!r) r = cuMemcpyDtoH(&got, p[d] + 4096, 4);
            if (r) {
                printf("LOST %d\n", (int)r);
                fflush(stdout);
                return 3;
            }
            if (got != v) {
                printf("WRONG %u != %u on device %d\n", got, v, d);
                return 4;
            }
        }
        usleep(20000);
    }
    printf("DONE\n");
    return 0;
}
