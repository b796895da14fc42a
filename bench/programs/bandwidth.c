/* Host<->device bandwidth and small-copy latency through the CUDA driver API, as a program sees
 * them (run natively on a GPU machine, or through `rgpu run`). Also measures a raw blocking TCP
 * ping-pong in the same process, the floor the held-out acceptance compares against.
 * With `sweep` as second argument, also host<->device bandwidth from 4 KiB to the given size,
 * pageable and page-locked (cuMemAllocHost).
 *   usage: bandwidth [MiB [sweep]]   (default 64) */
#include <cuda.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK(x) do { CUresult r_ = (x); if (r_) { fprintf(stderr, "%s failed: %d\n", #x, r_); exit(1); } } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *echo(void *arg) {
    int l = *(int *)arg, c = accept(l, 0, 0), one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[64];
    while (recv(c, b, 64, MSG_WAITALL) == 64) send(c, b, 64, 0);
    close(c);
    return 0;
}

static double tcp_pingpong_us(int iters) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &n);
    pthread_t t;
    pthread_create(&t, 0, echo, &l);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, sizeof a);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double *v = malloc(iters * sizeof(double));
    char b[64] = {0};
    for (int i = 0; i < iters; i++) {
        double t0 = now();
        send(c, b, 64, 0);
        recv(c, b, 64, MSG_WAITALL);
        v[i] = (now() - t0) * 1e6;
    }
    close(c);
    pthread_join(t, 0);
    close(l);
    qsort(v, iters, sizeof(double), cmpd);
    double m = v[iters / 2];
    free(v);
    return m;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 64, n = mib << 20;
    CUdevice dev;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, n));
    char *h = malloc(n);
    memset(h, 7, n);
    int iters = 2000;
    double *v = malloc(iters * sizeof(double));
    int x;
    for (int i = 0; i < iters; i++) {
        double t0 = now();
        CHECK(cuMemcpyDtoH(&x, d, 4));
        v[i] = (now() - t0) * 1e6;
    }
    qsort(v, iters, sizeof(double), cmpd);
    double tcp = tcp_pingpong_us(iters);
    printf("4-byte DtoH p50 %.1f us, p99 %.1f us; TCP ping-pong p50 %.1f us; ratio %.2f\n", v[iters / 2],
           v[iters * 99 / 100], tcp, v[iters / 2] / tcp);
    double best_h2d = 1e9, best_d2h = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        CHECK(cuMemcpyHtoD(d, h, n));
        CHECK(cuCtxSynchronize());
        double t1 = now();
        CHECK(cuMemcpyDtoH(h, d, n));
        double t2 = now();
        if (t1 - t0 < best_h2d) best_h2d = t1 - t0;
        if (t2 - t1 < best_d2h) best_d2h = t2 - t1;
    }
    printf("%zu MiB pageable HtoD %.2f GB/s, DtoH %.2f GB/s\n", mib, n / best_h2d / 1e9, n / best_d2h / 1e9);
    /* Stream work a program issues without waiting: async memsets and event records. */
    CUstream s;
    CUevent e;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CHECK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
    int ops = 20000;
    double t0 = now();
    for (int i = 0; i < ops / 2; i++) {
        CHECK(cuMemsetD32Async(d, (unsigned)i, 1, s));
        CHECK(cuEventRecord(e, s));
    }
    CHECK(cuStreamSynchronize(s));
    double t1 = now();
    printf("async memset + event record: %.0f calls/s (%d calls)\n", ops / (t1 - t0), ops);
    if (argc > 2 && strcmp(argv[2], "sweep") == 0) {
        void *pinned;
        CHECK(cuMemAllocHost(&pinned, n));
        memset(pinned, 7, n);
        printf("size | pageable HtoD GB/s | pageable DtoH GB/s | pinned HtoD GB/s | pinned DtoH GB/s\n");
        for (size_t sz = 4096; sz <= n; sz *= 4) {
            double bw[4];
            for (int k = 0; k < 4; k++) {
                char *host = k < 2 ? h : (char *)pinned;
                int reps = sz < (1 << 20) ? 200 : sz < (16 << 20) ? 20 : 3;
                double best = 1e9;
                for (int r = 0; r < reps; r++) {
                    double a = now();
                    if (k % 2 == 0) {
                        CHECK(cuMemcpyHtoD(d, host, sz));
                        CHECK(cuCtxSynchronize());
                    } else {
                        CHECK(cuMemcpyDtoH(host, d, sz));
                    }
                    double b = now() - a;
                    if (b < best) best = b;
                }
                bw[k] = sz / best / 1e9;
            }
            printf("%zu KiB | %.2f | %.2f | %.2f | %.2f\n", sz >> 10, bw[0], bw[1], bw[2], bw[3]);
        }
        CHECK(cuMemFreeHost(pinned));
    }
    return 0;
}
