/* Streams and events: creation flags and priorities, asynchronous copies and memsets on several
 * streams, stream/event queries, cross-stream ordering with cuStreamWaitEvent, the legacy and
 * per-thread default streams, timing, and the error paths. */
#include "common.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BIG_WORDS ((size_t)4 << 20) /* 16 MiB of 32-bit words: slow enough to be pending */

static int all_words(const uint32_t *p, size_t n, uint32_t v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

/* Whether a BIG_WORDS buffer holds v everywhere: checks its head, its tail and every 1024th
 * word in between (a strided 2D copy), without moving the whole buffer. */
static int big_is(CUdeviceptr d, uint32_t v) {
    enum { STRIDE = 4096, ROWS = BIG_WORDS * 4 / STRIDE };
    static uint32_t samples[ROWS], edge[256];
    CUDA_MEMCPY2D c;
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    c.srcDevice = d + STRIDE - 4; /* last word of each 4 KiB row */
    c.srcPitch = STRIDE;
    c.dstMemoryType = CU_MEMORYTYPE_HOST;
    c.dstHost = samples;
    c.dstPitch = 4;
    c.WidthInBytes = 4;
    c.Height = ROWS;
    CHECK(cuMemcpy2D(&c));
    int ok = all_words(samples, ROWS, v);
    CHECK(cuMemcpyDtoH(edge, d, sizeof edge));
    ok = ok && all_words(edge, 256, v);
    CHECK(cuMemcpyDtoH(edge, d + 4 * (BIG_WORDS - 256), sizeof edge));
    return ok && all_words(edge, 256, v);
}

static void stream_props(CUcontext ctx, CUdevice dev) {
    int least = 0, greatest = 0;
    CHECK(cuCtxGetStreamPriorityRange(&least, &greatest));
    CUstream s0, s1, s2, s3, bad;
    CHECK(cuStreamCreate(&s0, CU_STREAM_DEFAULT));
    CHECK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamCreateWithPriority(&s2, CU_STREAM_NON_BLOCKING, greatest));
    CHECK(cuStreamCreateWithPriority(&s3, 0, greatest - 100)); /* clamped into the range */
    EXPECT_ERR(cuStreamCreate(&bad, 0x80), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuStreamCreateWithPriority(&bad, 0x80, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT(s0 && s1 && s2 && s3 && s0 != s1 && s1 != s2 && s2 != s3);

    unsigned f = 99;
    CHECK(cuStreamGetFlags(s0, &f));
    EXPECT(f == CU_STREAM_DEFAULT);
    CHECK(cuStreamGetFlags(s1, &f));
    EXPECT(f == CU_STREAM_NON_BLOCKING);
    CHECK(cuStreamGetFlags(s2, &f));
    EXPECT(f == CU_STREAM_NON_BLOCKING);
    int prio = 99;
    CHECK(cuStreamGetPriority(s0, &prio));
    EXPECT(prio == least);
    CHECK(cuStreamGetPriority(s2, &prio));
    EXPECT(prio == greatest);
    CHECK(cuStreamGetPriority(s3, &prio));
    EXPECT(prio == greatest);
    CUstream s4;
    CHECK(cuStreamCreateWithPriority(&s4, 0, least + 100));
    CHECK(cuStreamGetPriority(s4, &prio));
    EXPECT(prio == least);

    CUcontext c = NULL;
    CHECK(cuStreamGetCtx(s1, &c));
    EXPECT(c == ctx);
    CHECK(cuStreamGetCtx(NULL, &c)); /* special handles: the current context */
    EXPECT(c == ctx);
    CHECK(cuStreamGetCtx(CU_STREAM_PER_THREAD, &c));
    EXPECT(c == ctx);
    CUdevice d = -1;
    CHECK(cuStreamGetDevice(s2, &d));
    EXPECT(d == dev);
    unsigned long long id0 = 0, id1 = 0, id0b = 0;
    CHECK(cuStreamGetId(s0, &id0));
    CHECK(cuStreamGetId(s1, &id1));
    CHECK(cuStreamGetId(s0, &id0b));
    EXPECT(id0 != id1 && id0 == id0b);

    /* A stream remembers its context even when another one is current. */
    CUcontext other;
    CHECK(cuCtxCreate(&other, NULL, 0, dev));
    CUstream so;
    CHECK(cuStreamCreate(&so, 0));
    CHECK(cuCtxPopCurrent(NULL));
    CHECK(cuStreamGetCtx(so, &c));
    EXPECT(c == other);
    CHECK(cuStreamGetCtx(s0, &c));
    EXPECT(c == ctx);
    CHECK(cuStreamDestroy(so));
    CHECK(cuCtxDestroy(other));

    /* Bogus and destroyed handles. */
    CUstream bogus = (CUstream)(uintptr_t)0xdeadbee0;
    EXPECT_ERR(cuStreamQuery(bogus), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuStreamSynchronize(bogus), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuStreamGetFlags(bogus, &f), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuStreamDestroy(bogus), CUDA_ERROR_INVALID_HANDLE);
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, 64));
    EXPECT_ERR(cuMemsetD8Async(p, 0, 64, bogus), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuMemcpyHtoDAsync(p, &f, sizeof f, bogus), CUDA_ERROR_INVALID_HANDLE);
    CHECK(cuMemFree(p));
    CHECK(cuStreamDestroy(s4));
    EXPECT_ERR(cuStreamQuery(s4), CUDA_ERROR_INVALID_HANDLE);

    CHECK(cuStreamDestroy(s0));
    CHECK(cuStreamDestroy(s1));
    CHECK(cuStreamDestroy(s2));
    CHECK(cuStreamDestroy(s3));
}

/* Each of several streams runs its own pipeline from pinned memory. */
static void async_pipelines(void) {
    enum { S = 4 };
    const size_t N = 256 * 1024; /* words per stream */
    CUstream st[S];
    uint32_t *in[S], *out[S];
    CUdeviceptr a[S], b[S];
    for (int i = 0; i < S; i++) {
        CHECK(cuStreamCreate(&st[i], i % 2 ? CU_STREAM_NON_BLOCKING : 0));
        CHECK(cuMemAllocHost((void **)&in[i], N * 4));
        CHECK(cuMemHostAlloc((void **)&out[i], N * 4, CU_MEMHOSTALLOC_PORTABLE));
        CHECK(cuMemAlloc(&a[i], N * 4));
        CHECK(cuMemAlloc(&b[i], N * 4));
        for (size_t k = 0; k < N; k++) in[i][k] = (uint32_t)(k * 2654435761u) ^ (uint32_t)i;
        memset(out[i], 0, N * 4);
    }
    for (int i = 0; i < S; i++) {
        CHECK(cuMemcpyHtoDAsync(a[i], in[i], N * 4, st[i]));
        CHECK(cuMemsetD32Async(a[i] + 4 * 1000, 0xabc00000u + i, 500, st[i]));
        CHECK(cuMemsetD16Async(a[i] + 4 * 3000, (unsigned short)(0x1100 + i), 20, st[i]));
        CHECK(cuMemsetD8Async(a[i] + 4 * 5000 + 1, (unsigned char)(0x40 + i), 7, st[i]));
        CHECK(cuMemcpyDtoDAsync(b[i], a[i], N * 4, st[i]));
        CHECK(cuMemsetD2D32Async(b[i] + 4 * 100000, 4 * 1000, 0x77000000u + i, 10, 30, st[i]));
        CHECK(cuMemcpyDtoHAsync(out[i], b[i], N * 4, st[i]));
    }
    for (int i = S - 1; i >= 0; i--) {
        CHECK(cuStreamSynchronize(st[i]));
        CHECK(cuStreamQuery(st[i]));
        /* Host reference of the same pipeline. */
        uint32_t *ref = malloc(N * 4);
        memcpy(ref, in[i], N * 4);
        for (int k = 0; k < 500; k++) ref[1000 + k] = 0xabc00000u + i;
        for (int k = 0; k < 20; k++) {
            uint16_t v = (uint16_t)(0x1100 + i);
            memcpy((char *)ref + 4 * 3000 + 2 * k, &v, 2);
        }
        memset((char *)ref + 4 * 5000 + 1, 0x40 + i, 7);
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 10; x++) ref[100000 + y * 1000 + x] = 0x77000000u + i;
        EXPECT(memcmp(ref, out[i], N * 4) == 0);
        free(ref);
    }
    for (int i = 0; i < S; i++) {
        CHECK(cuStreamDestroy(st[i]));
        CHECK(cuMemFreeHost(in[i]));
        CHECK(cuMemFreeHost(out[i]));
        CHECK(cuMemFree(a[i]));
        CHECK(cuMemFree(b[i]));
    }
}

static void events(void) {
    CUevent e0, e1, nt, never, bad;
    CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CHECK(cuEventCreate(&e1, CU_EVENT_BLOCKING_SYNC));
    CHECK(cuEventCreate(&nt, CU_EVENT_DISABLE_TIMING));
    CHECK(cuEventCreate(&never, CU_EVENT_DEFAULT));
    EXPECT_ERR(cuEventCreate(&bad, 0x100), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuEventCreate(&bad, CU_EVENT_INTERPROCESS), CUDA_ERROR_INVALID_VALUE);

    /* A never-recorded event is complete. */
    CHECK(cuEventQuery(never));
    CHECK(cuEventSynchronize(never));
    float ms = -1;
    EXPECT_ERR(cuEventElapsedTime(&ms, never, never), CUDA_ERROR_INVALID_HANDLE);

    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, BIG_WORDS * 4));
    CHECK(cuEventRecord(e0, s));
    for (int i = 0; i < 2; i++) CHECK(cuMemsetD32Async(d, 0x01010101u * (i + 1), BIG_WORDS, s));
    CHECK(cuEventRecord(e1, s));
    CHECK(cuEventRecord(nt, s));
    CUresult q = cuEventQuery(e1);
    EXPECT(q == CUDA_SUCCESS || q == CUDA_ERROR_NOT_READY);
    CHECK(cuEventSynchronize(e1));
    CHECK(cuEventQuery(e1));
    CHECK(cuEventQuery(e0));
    CHECK(cuEventSynchronize(nt));
    /* Completion of e1 implies the work before it is done. */
    CHECK(cuStreamQuery(s));
    EXPECT(big_is(d, 0x02020202u));

    CHECK(cuEventElapsedTime(&ms, e0, e1));
    EXPECT(ms >= 0.0f && ms < 60000.0f && !isnan(ms));
    float back = 1;
    CHECK(cuEventElapsedTime(&back, e1, e0));
    EXPECT(back <= 0.0f);
    float zero = -1;
    CHECK(cuEventElapsedTime(&zero, e0, e0));
    EXPECT(zero == 0.0f);
    EXPECT_ERR(cuEventElapsedTime(&ms, e0, nt), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventElapsedTime(&ms, nt, e1), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventElapsedTime(&ms, e0, never), CUDA_ERROR_INVALID_HANDLE);

    /* Events on the NULL stream, re-recording, record with flags. */
    CHECK(cuEventRecord(e0, NULL));
    CHECK(cuMemsetD32Async(d, 7, 1024, NULL));
    CHECK(cuEventRecordWithFlags(e1, NULL, CU_EVENT_RECORD_DEFAULT));
    CHECK(cuEventSynchronize(e1));
    CHECK(cuEventElapsedTime(&ms, e0, e1));
    EXPECT(ms >= 0.0f);
    EXPECT_ERR(cuEventRecordWithFlags(e1, NULL, 0x80), CUDA_ERROR_INVALID_VALUE);

    /* Bogus event handles. */
    CUevent bogus = (CUevent)(uintptr_t)0xdeadbee0;
    EXPECT_ERR(cuEventQuery(bogus), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventSynchronize(bogus), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventRecord(bogus, s), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventDestroy(bogus), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuStreamWaitEvent(s, bogus, 0), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventElapsedTime(&ms, bogus, e1), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventRecord(e0, (CUstream)(uintptr_t)0xdeadbee0), CUDA_ERROR_INVALID_HANDLE);

    CHECK(cuEventDestroy(never));
    EXPECT_ERR(cuEventQuery(never), CUDA_ERROR_INVALID_HANDLE);
    CHECK(cuEventDestroy(e0));
    CHECK(cuEventDestroy(e1));
    CHECK(cuEventDestroy(nt));
    CHECK(cuStreamDestroy(s));
    CHECK(cuMemFree(d));
}

/* Stream B waits for an event recorded after stream A's (slow) memsets. */
static void wait_event(void) {
    CUstream a, b;
    CHECK(cuStreamCreate(&a, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
    CUevent ev, never;
    CHECK(cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING));
    CHECK(cuEventCreate(&never, CU_EVENT_DEFAULT));
    CUdeviceptr src, dst;
    CHECK(cuMemAlloc(&src, BIG_WORDS * 4));
    CHECK(cuMemAlloc(&dst, BIG_WORDS * 4));
    CHECK(cuMemsetD32(src, 0xffffffffu, BIG_WORDS));
    for (int round = 0; round < 2; round++) {
        /* src holds the previous round's value (or all ones) until stream a is done. */
        uint32_t want = 0x5eed0000u + 16 * round;
        for (int i = 0; i < 2; i++) CHECK(cuMemsetD32Async(src, want - 1 + i, BIG_WORDS, a));
        CHECK(cuEventRecord(ev, a));
        CHECK(cuStreamWaitEvent(b, ev, 0));
        CHECK(cuStreamWaitEvent(b, never, 0)); /* never recorded: no-op */
        CHECK(cuMemcpyDtoDAsync(dst, src, BIG_WORDS * 4, b));
        CHECK(cuStreamSynchronize(b));
        EXPECT(big_is(dst, want));
    }
    EXPECT_ERR(cuStreamWaitEvent(b, ev, 0x80), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuEventDestroy(ev));
    CHECK(cuEventDestroy(never));
    CHECK(cuStreamDestroy(a));
    CHECK(cuStreamDestroy(b));
    CHECK(cuMemFree(src));
    CHECK(cuMemFree(dst));
}

/* The legacy default stream waits for blocking streams; the per-thread stream is usable. */
static void default_streams(void) {
    CUstream blocking;
    CHECK(cuStreamCreate(&blocking, CU_STREAM_DEFAULT));
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, BIG_WORDS * 4));
    CHECK(cuMemsetD32(d, 0, BIG_WORDS));
    for (int i = 0; i < 2; i++) CHECK(cuMemsetD32Async(d, 0x600d0000u + i, BIG_WORDS, blocking));
    uint32_t tail[64];
    /* A synchronous copy runs on the legacy stream, which waits for the blocking stream. */
    CHECK(cuMemcpyDtoH(tail, d + 4 * (BIG_WORDS - 64), sizeof tail));
    EXPECT(all_words(tail, 64, 0x600d0001u));

    /* CU_STREAM_LEGACY and CU_STREAM_PER_THREAD as stream arguments. */
    CHECK(cuMemsetD32Async(d, 0x1e6ac7u, 4096, CU_STREAM_LEGACY));
    CHECK(cuStreamSynchronize(CU_STREAM_LEGACY));
    CHECK(cuStreamQuery(CU_STREAM_LEGACY));
    CHECK(cuMemcpyDtoH(tail, d + 4 * 4000, sizeof tail));
    EXPECT(all_words(tail, 64, 0x1e6ac7u));
    uint32_t *pin;
    CHECK(cuMemAllocHost((void **)&pin, 4096 * 4));
    for (int i = 0; i < 4096; i++) pin[i] = 0x9e3779b9u * i;
    CHECK(cuMemcpyHtoDAsync(d, pin, 4096 * 4, CU_STREAM_PER_THREAD));
    CHECK(cuMemsetD32Async(d + 4 * 10, 0xabababab, 5, CU_STREAM_PER_THREAD));
    CUevent ev;
    CHECK(cuEventCreate(&ev, 0));
    CHECK(cuEventRecord(ev, CU_STREAM_PER_THREAD));
    CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
    CHECK(cuStreamQuery(CU_STREAM_PER_THREAD));
    CHECK(cuEventQuery(ev));
    uint32_t *back;
    CHECK(cuMemAllocHost((void **)&back, 4096 * 4));
    CHECK(cuMemcpyDtoHAsync(back, d, 4096 * 4, CU_STREAM_PER_THREAD));
    CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
    for (int i = 10; i < 15; i++) pin[i] = 0xabababab;
    EXPECT(memcmp(back, pin, 4096 * 4) == 0);
    unsigned f = 99;
    CHECK(cuStreamGetFlags(CU_STREAM_LEGACY, &f));
    EXPECT(f == 0);
    CHECK(cuStreamWaitEvent(CU_STREAM_LEGACY, ev, 0));
    CHECK(cuCtxSynchronize());
    CHECK(cuEventDestroy(ev));
    CHECK(cuMemFreeHost(pin));
    CHECK(cuMemFreeHost(back));
    CHECK(cuStreamDestroy(blocking));
    CHECK(cuMemFree(d));
}

/* The unified and 2D copies and the 2D memsets in their asynchronous forms. */
static void async_unified_2d(void) {
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    const size_t W = 96, H = 40, P = 128; /* bytes per row, rows, host pitch */
    unsigned char *host, *back;
    CHECK(cuMemAllocHost((void **)&host, P * H));
    CHECK(cuMemAllocHost((void **)&back, P * H));
    for (size_t i = 0; i < P * H; i++) host[i] = (unsigned char)(i * 7 + 3);
    CUdeviceptr img, flat;
    size_t pitch = 0;
    CHECK(cuMemAllocPitch(&img, &pitch, W, H, 4));
    CHECK(cuMemAlloc(&flat, P * H));
    unsigned char *ref = malloc(pitch * H);
    memset(ref, 0x5c, pitch * H);
    CHECK(cuMemsetD8Async(img, 0x5c, pitch * H, s));

    /* Host image rows 2.. into device rows 1.., 8 bytes in. */
    CUDA_MEMCPY2D c;
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_HOST;
    c.srcHost = host;
    c.srcPitch = P;
    c.srcY = 2;
    c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c.dstDevice = img;
    c.dstPitch = pitch;
    c.dstXInBytes = 8;
    c.dstY = 1;
    c.WidthInBytes = W - 8;
    c.Height = H - 2;
    CHECK(cuMemcpy2DAsync(&c, s));
    for (size_t y = 0; y < H - 2; y++) memcpy(ref + (1 + y) * pitch + 8, host + (2 + y) * P, W - 8);
    CHECK(cuMemsetD2D8Async(img + 3 * pitch + 10, pitch, 0xe1, 5, 4, s));
    for (size_t y = 0; y < 4; y++) memset(ref + (3 + y) * pitch + 10, 0xe1, 5);
    CHECK(cuMemsetD2D16Async(img + 20 * pitch + 20, pitch, 0xbeef, 6, 3, s));
    for (size_t y = 0; y < 3; y++)
        for (size_t x = 0; x < 6; x++) memcpy(ref + (20 + y) * pitch + 20 + 2 * x, &(uint16_t){0xbeef}, 2);
    CHECK(cuMemsetD2D32Async(img + 30 * pitch + 40, pitch, 0x0badf00d, 4, 5, s));
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 4; x++) memcpy(ref + (30 + y) * pitch + 40 + 4 * x, &(uint32_t){0x0badf00d}, 4);
    /* Whole image back through a 2D device->host copy into a tight host layout. */
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    c.srcDevice = img;
    c.srcPitch = pitch;
    c.dstMemoryType = CU_MEMORYTYPE_HOST;
    c.dstHost = back;
    c.dstPitch = W;
    c.WidthInBytes = W;
    c.Height = H;
    CHECK(cuMemcpy2DAsync(&c, s));
    CHECK(cuStreamSynchronize(s));
    int bad = 0;
    for (size_t y = 0; y < H; y++) bad += memcmp(back + y * W, ref + y * pitch, W) != 0;
    EXPECT(bad == 0);

    /* cuMemcpyAsync with unified pointers: host -> device -> device -> host. */
    CHECK(cuMemcpyAsync(flat, (CUdeviceptr)(uintptr_t)host, P * H, s));
    CHECK(cuMemcpyAsync(img, flat + 5, W, s));
    memset(back, 0, P * H);
    CHECK(cuMemcpyAsync((CUdeviceptr)(uintptr_t)back, img, W, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT(memcmp(back, host + 5, W) == 0);
    CHECK(cuMemcpyAsync((CUdeviceptr)(uintptr_t)back, flat, P * H, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT(memcmp(back, host, P * H) == 0);
    EXPECT_ERR(cuMemcpyAsync(flat + P * H - 4, (CUdeviceptr)(uintptr_t)host, 8, s), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyAsync(flat, (CUdeviceptr)(uintptr_t)host, 8, (CUstream)(uintptr_t)0xdeadbee0),
               CUDA_ERROR_INVALID_HANDLE);

    /* cuCtxSynchronize waits for every stream of the context, non-blocking ones included. */
    CUdeviceptr big;
    CHECK(cuMemAlloc(&big, BIG_WORDS * 4));
    for (int i = 0; i < 2; i++) CHECK(cuMemsetD32Async(big, 0xa11u + i, BIG_WORDS, s));
    CHECK(cuCtxSynchronize());
    CHECK(cuStreamQuery(s));
    EXPECT(big_is(big, 0xa12u));

    free(ref);
    CHECK(cuMemFree(big));
    CHECK(cuMemFree(img));
    CHECK(cuMemFree(flat));
    CHECK(cuMemFreeHost(host));
    CHECK(cuMemFreeHost(back));
    CHECK(cuStreamDestroy(s));
}

/* Destroying a stream with queued work: the work still completes. */
static void destroy_pending(void) {
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, BIG_WORDS * 4));
    CHECK(cuMemsetD32(d, 0, BIG_WORDS));
    for (int kind = 0; kind < 2; kind++) {
        CUstream s;
        CHECK(cuStreamCreate(&s, kind ? CU_STREAM_NON_BLOCKING : CU_STREAM_DEFAULT));
        /* d holds 0 or the previous kind's value until the stream's work is done. */
        for (int i = 0; i < 2; i++) CHECK(cuMemsetD32Async(d, 0xd0d00000u + 16 * kind + i, BIG_WORDS, s));
        CHECK(cuStreamDestroy(s));
        EXPECT_ERR(cuStreamQuery(s), CUDA_ERROR_INVALID_HANDLE);
        CHECK(cuCtxSynchronize());
        EXPECT(big_is(d, 0xd0d00000u + 16 * kind + 1));
    }
    CHECK(cuMemFree(d));
}

int main(void) {
    CUcontext ctx = setup();
    CUdevice dev;
    CHECK(cuCtxGetDevice(&dev));
    stream_props(ctx, dev);
    async_pipelines();
    events();
    wait_event();
    default_streams();
    async_unified_2d();
    destroy_pending();
    CHECK(cuCtxSynchronize());
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return finish("streams_events");
}
