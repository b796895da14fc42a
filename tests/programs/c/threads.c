/* Threads: eight threads share the primary context and hammer it with allocations, copies and
 * memsets on distinct data at the same time, while another thread creates its own context —
 * the current context is per thread, so nobody else may notice. */
#include "common.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define THREADS 8
#define ITERS 50

static CUcontext g_primary;
static pthread_barrier_t g_start;
static int g_thread_failures[THREADS + 2];
static CUdeviceptr g_leftover[THREADS];

#define TEXPECT(id, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "thread %d: %s:%d: expectation failed: %s\n", (id), __FILE__, \
                    __LINE__, #cond);                                                  \
            g_thread_failures[(id)]++;                                                 \
        }                                                                              \
    } while (0)

static CUcontext cur(void) {
    CUcontext c = (CUcontext)(uintptr_t)0xdead;
    CHECK(cuCtxGetCurrent(&c));
    return c;
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    /* A new thread has no current context. */
    TEXPECT(id, cur() == NULL);
    CUdeviceptr none;
    TEXPECT(id, cuMemAlloc(&none, 64) == CUDA_ERROR_INVALID_CONTEXT);
    CHECK(cuCtxSetCurrent(g_primary));
    pthread_barrier_wait(&g_start);

    const size_t maxw = 16384; /* words */
    uint32_t *in = malloc(maxw * 4), *out = malloc(maxw * 4), *ref = malloc(maxw * 4);
    for (int it = 0; it < ITERS; it++) {
        TEXPECT(id, cur() == g_primary);
        size_t n = 1024 + (size_t)((id * 7919 + it * 104729) % (maxw - 1024));
        for (size_t k = 0; k < n; k++) in[k] = ((uint32_t)id << 24) ^ ((uint32_t)it << 16) ^ (uint32_t)(k * 40503u);
        CUdeviceptr a, b;
        CHECK(cuMemAlloc(&a, n * 4));
        CHECK(cuMemAlloc(&b, n * 4));
        CHECK(cuMemcpyHtoD(a, in, n * 4));
        memcpy(ref, in, n * 4);
        /* A memset in the middle, distinct per thread and iteration. */
        size_t off = (size_t)(it * 13) % (n / 2), cnt = n / 4;
        uint32_t v = 0x80000000u | ((uint32_t)id << 20) | (uint32_t)it;
        CHECK(cuMemsetD32(a + 4 * off, v, cnt));
        for (size_t k = 0; k < cnt; k++) ref[off + k] = v;
        CHECK(cuMemcpyDtoD(b, a, n * 4));
        /* Asynchronous work on this thread's own per-thread default stream. */
        CHECK(cuMemsetD8Async(b + 1, (unsigned char)(id * 16 + it % 16), 6, CU_STREAM_PER_THREAD));
        memset((char *)ref + 1, id * 16 + it % 16, 6);
        CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
        memset(out, 0, n * 4);
        CHECK(cuMemcpyDtoH(out, b, n * 4));
        TEXPECT(id, memcmp(out, ref, n * 4) == 0);
        CHECK(cuMemFree(a));
        CHECK(cuMemFree(b));
    }
    /* One allocation outlives the thread; the main thread frees it. */
    CHECK(cuMemAlloc(&g_leftover[id], 4096));
    CHECK(cuMemsetD32(g_leftover[id], 0x1000u + id, 1024));
    TEXPECT(id, cur() == g_primary);
    free(in);
    free(out);
    free(ref);
    return NULL;
}

/* Creates its own context while the workers run: it becomes current here only. */
static void *ctx_thread(void *arg) {
    int id = (int)(intptr_t)arg;
    CUdevice dev;
    CHECK(cuDeviceGet(&dev, 0));
    pthread_barrier_wait(&g_start);
    CUcontext mine = NULL;
    CHECK(cuCtxCreate(&mine, NULL, 0, dev));
    TEXPECT(id, mine != NULL && mine != g_primary);
    TEXPECT(id, cur() == mine);
    CUdeviceptr p;
    uint32_t in[256], out[256];
    for (int i = 0; i < 256; i++) in[i] = 0xc0ffee00u + i;
    for (int it = 0; it < 20; it++) {
        CHECK(cuMemAlloc(&p, sizeof in));
        CHECK(cuMemcpyHtoD(p, in, sizeof in));
        CHECK(cuMemcpyDtoH(out, p, sizeof out));
        TEXPECT(id, memcmp(in, out, sizeof in) == 0);
        CHECK(cuMemFree(p));
        TEXPECT(id, cur() == mine);
    }
    unsigned long long myid = 0, pid = 0;
    CHECK(cuCtxGetId(mine, &myid));
    CHECK(cuCtxGetId(g_primary, &pid));
    TEXPECT(id, myid != pid);
    CHECK(cuCtxDestroy(mine));
    TEXPECT(id, cur() == NULL);
    return NULL;
}

/* A thread that pushes and pops on its own stack while others run. */
static void *stack_thread(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_barrier_wait(&g_start);
    for (int i = 0; i < 50; i++) {
        CHECK(cuCtxPushCurrent(g_primary));
        TEXPECT(id, cur() == g_primary);
        CUcontext out = NULL;
        CHECK(cuCtxPopCurrent(&out));
        TEXPECT(id, out == g_primary);
        TEXPECT(id, cur() == NULL);
    }
    return NULL;
}

int main(void) {
    g_primary = setup();
    pthread_barrier_init(&g_start, NULL, THREADS + 3);
    pthread_t t[THREADS + 2];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i)) exit(1);
    if (pthread_create(&t[THREADS], NULL, ctx_thread, (void *)(intptr_t)THREADS)) exit(1);
    if (pthread_create(&t[THREADS + 1], NULL, stack_thread, (void *)(intptr_t)(THREADS + 1))) exit(1);
    pthread_barrier_wait(&g_start);
    /* The main thread keeps its own current context and works alongside. */
    for (int i = 0; i < 20; i++) {
        EXPECT(cur() == g_primary);
        CUdeviceptr p;
        CHECK(cuMemAlloc(&p, 1 << 16));
        CHECK(cuMemsetD8(p, (unsigned char)i, 1 << 16));
        unsigned char back[64];
        CHECK(cuMemcpyDtoH(back, p + 1000, sizeof back));
        int ok = 1;
        for (int k = 0; k < 64; k++) ok &= back[k] == (unsigned char)i;
        EXPECT(ok);
        CHECK(cuMemFree(p));
    }
    for (int i = 0; i < THREADS + 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS + 2; i++) g_failures += g_thread_failures[i];
    EXPECT(cur() == g_primary);
    /* Allocations made by the workers belong to the shared context. */
    for (int i = 0; i < THREADS; i++) {
        uint32_t w[4];
        CHECK(cuMemcpyDtoH(w, g_leftover[i] + 4 * 1020, sizeof w));
        EXPECT(w[0] == 0x1000u + i && w[3] == 0x1000u + i);
        CHECK(cuMemFree(g_leftover[i]));
    }
    CHECK(cuCtxSynchronize());
    pthread_barrier_destroy(&g_start);
    CHECK(cuDevicePrimaryCtxRelease(0));
    return finish("threads");
}
