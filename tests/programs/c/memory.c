/* Device memory: allocation bookkeeping, copies in every direction (1D, 2D, unified), memsets,
 * bounds checks that must not corrupt neighbouring allocations, and page-locked host memory.
 * Every device result is checked against a host reference. */
#include "common.h"
#include <stdint.h>
#include <string.h>

static unsigned char *xmalloc(size_t n) {
    unsigned char *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    return p;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
}

/* Reads n bytes of device memory at p. */
static unsigned char *fetch(CUdeviceptr p, size_t n) {
    unsigned char *h = xmalloc(n);
    CHECK(cuMemcpyDtoH(h, p, n));
    return h;
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void alloc_free(void) {
    CUdeviceptr p = 0, q = 0;
    EXPECT_ERR(cuMemAlloc(&p, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAlloc(NULL, 16), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemAlloc(&p, 1000));
    CHECK(cuMemAlloc(&q, 1000));
    EXPECT(p != 0 && q != 0 && p != q);
    EXPECT(p % 256 == 0 && q % 256 == 0); /* documented: suitably aligned for any kind of variable */
    EXPECT(q >= p + 1000 || p >= q + 1000);
    CHECK(cuMemFree(p));
    EXPECT_ERR(cuMemFree(p), CUDA_ERROR_INVALID_VALUE); /* double free */
    EXPECT_ERR(cuMemFree(q + 256), CUDA_ERROR_INVALID_VALUE); /* not a base address */
    EXPECT_ERR(cuMemFree((CUdeviceptr)0x1234), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemFree((CUdeviceptr)0xdead00000000ull), CUDA_ERROR_INVALID_VALUE);
    /* q survived the failed frees. */
    unsigned char pat[1000], back[1000];
    fill(pat, sizeof pat, 1);
    CHECK(cuMemcpyHtoD(q, pat, sizeof pat));
    CHECK(cuMemcpyDtoH(back, q, sizeof back));
    EXPECT(memcmp(pat, back, sizeof pat) == 0);
    CHECK(cuMemFree(q));

    /* An impossible allocation fails cleanly and the context keeps working. */
    size_t free0 = 0, total = 0, free1 = 0, free2 = 0;
    CHECK(cuMemGetInfo(&free0, &total));
    EXPECT(free0 <= total && total > 0);
    CUdeviceptr huge = 0;
    EXPECT_ERR(cuMemAlloc(&huge, 1ULL << 50), CUDA_ERROR_OUT_OF_MEMORY);
    EXPECT_ERR(cuMemAlloc(&huge, total + (1 << 20)), CUDA_ERROR_OUT_OF_MEMORY);
    CHECK(cuMemGetInfo(&free1, &total));
    EXPECT(free1 == free0);
    CHECK(cuMemAlloc(&p, 4096));
    CHECK(cuMemsetD8(p, 0x11, 4096));
    unsigned char *h = fetch(p, 4096);
    EXPECT(all_bytes(h, 4096, 0x11));
    free(h);
    CHECK(cuMemFree(p));

    /* cuMemGetInfo follows allocations. */
    const size_t big = 64 << 20;
    CHECK(cuMemAlloc(&p, big));
    CHECK(cuMemGetInfo(&free1, &total));
    EXPECT(free1 + big <= free0);
    CHECK(cuMemFree(p));
    CHECK(cuMemGetInfo(&free2, &total));
    EXPECT(free2 == free0);
}

static void address_range(void) {
    CUdeviceptr p = 0, base = 0;
    size_t size = 0;
    CHECK(cuMemAlloc(&p, 8192));
    CHECK(cuMemGetAddressRange(&base, &size, p));
    EXPECT(base == p && size == 8192);
    base = 0, size = 0;
    CHECK(cuMemGetAddressRange(&base, &size, p + 1234));
    EXPECT(base == p && size == 8192);
    base = 0, size = 0;
    CHECK(cuMemGetAddressRange(&base, &size, p + 8191));
    EXPECT(base == p && size == 8192);
    base = 0;
    CHECK(cuMemGetAddressRange(&base, NULL, p + 17));
    EXPECT(base == p);
    size = 0;
    CHECK(cuMemGetAddressRange(NULL, &size, p + 17));
    EXPECT(size == 8192);
    /* Just past the end is not in this allocation. */
    base = 0;
    CUresult r = cuMemGetAddressRange(&base, &size, p + 8192);
    EXPECT(r == CUDA_ERROR_NOT_FOUND || (r == CUDA_SUCCESS && base != p));
    EXPECT_ERR(cuMemGetAddressRange(&base, &size, (CUdeviceptr)0x10), CUDA_ERROR_NOT_FOUND);
    CHECK(cuMemFree(p));
    EXPECT_ERR(cuMemGetAddressRange(&base, &size, p), CUDA_ERROR_NOT_FOUND);
}

static void copies(void) {
    const size_t N = 1 << 20;
    unsigned char *a = xmalloc(N), *b = xmalloc(N), *ref = xmalloc(N);
    fill(a, N, 2);
    fill(b, N, 3);
    CUdeviceptr d1, d2;
    CHECK(cuMemAlloc(&d1, N));
    CHECK(cuMemAlloc(&d2, N));

    /* Whole buffers: H->D, D->D, D->H. */
    CHECK(cuMemcpyHtoD(d1, a, N));
    CHECK(cuMemcpyDtoD(d2, d1, N));
    unsigned char *h = fetch(d2, N);
    EXPECT(memcmp(h, a, N) == 0);
    free(h);

    /* Sub-ranges at odd offsets, mirrored on a host reference. */
    memcpy(ref, a, N);
    CHECK(cuMemcpyHtoD(d1 + 3, b + 100, 5000));
    memcpy(ref + 3, b + 100, 5000);
    CHECK(cuMemcpyHtoD(d1 + N - 777, b, 777)); /* ends exactly at the allocation end */
    memcpy(ref + N - 777, b, 777);
    CHECK(cuMemcpyDtoD(d1 + 200000, d1 + 1, 4099)); /* within one allocation, no overlap */
    memmove(ref + 200000, ref + 1, 4099);
    CHECK(cuMemcpyDtoD(d2 + 12345, d1 + 54321, 65536)); /* across allocations */
    unsigned char *ref2 = xmalloc(N);
    memcpy(ref2, a, N);
    memcpy(ref2 + 12345, ref + 54321, 65536);
    CHECK(cuMemcpyHtoD(d1 + 9, b, 0)); /* zero bytes: no-op */
    h = fetch(d1, N);
    EXPECT(memcmp(h, ref, N) == 0);
    free(h);
    h = fetch(d2, N);
    EXPECT(memcmp(h, ref2, N) == 0);
    free(h);
    unsigned char part[333];
    CHECK(cuMemcpyDtoH(part, d1 + 4567, sizeof part));
    EXPECT(memcmp(part, ref + 4567, sizeof part) == 0);

    /* Unified addressing: cuMemcpy classifies each pointer. */
    CHECK(cuMemcpy(d2, (CUdeviceptr)(uintptr_t)b, N)); /* host -> device */
    h = fetch(d2, N);
    EXPECT(memcmp(h, b, N) == 0);
    free(h);
    memset(ref2, 0, N);
    CHECK(cuMemcpy((CUdeviceptr)(uintptr_t)ref2, d1, N)); /* device -> host */
    EXPECT(memcmp(ref2, ref, N) == 0);
    CHECK(cuMemcpy(d2 + 10, d1 + 20, 1000)); /* device -> device */
    CHECK(cuMemcpyDtoH(part, d2 + 10, sizeof part));
    EXPECT(memcmp(part, ref + 20, sizeof part) == 0);
    unsigned char hh[64], hh2[64];
    fill(hh, sizeof hh, 9);
    CHECK(cuMemcpy((CUdeviceptr)(uintptr_t)hh2, (CUdeviceptr)(uintptr_t)hh, sizeof hh)); /* host -> host */
    EXPECT(memcmp(hh, hh2, sizeof hh) == 0);

    /* Out-of-bounds and bogus pointers: refused, nothing written anywhere. */
    CUdeviceptr lo, mid, hi;
    CHECK(cuMemAlloc(&lo, 4096));
    CHECK(cuMemAlloc(&mid, 4096));
    CHECK(cuMemAlloc(&hi, 4096));
    CHECK(cuMemsetD8(lo, 0xa1, 4096));
    CHECK(cuMemsetD8(mid, 0xb2, 4096));
    CHECK(cuMemsetD8(hi, 0xc3, 4096));
    unsigned char ones[8192];
    memset(ones, 0xee, sizeof ones);
    EXPECT_ERR(cuMemcpyHtoD(mid + 4096 - 8, ones, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoD(mid, ones, 4097), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoD(mid + 4096, ones, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoD(mid - 1, ones, 2), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoD(lo, ones, 8192), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoD(mid + 100, lo, 4096), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoD(hi, mid + 1, 4096), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD8(mid + 1, 0xee, 4096), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD32(mid, 0xeeeeeeee, 1025), CUDA_ERROR_INVALID_VALUE);
    memset(ones, 0x55, sizeof ones);
    EXPECT_ERR(cuMemcpyDtoH(ones, mid + 4000, 200), CUDA_ERROR_INVALID_VALUE);
    EXPECT(all_bytes(ones, sizeof ones, 0x55)); /* nothing came back either */
    /* Pointers that are no allocation at all. */
    EXPECT_ERR(cuMemcpyHtoD((CUdeviceptr)0x1000, ones, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoH(ones, (CUdeviceptr)0x1000, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoD(mid, (CUdeviceptr)0xdead00000000ull, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD8((CUdeviceptr)0x1000, 0, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoD(d1 + N, ones, 1), CUDA_ERROR_INVALID_VALUE);
    CUdeviceptr gone;
    CHECK(cuMemAlloc(&gone, 4096));
    CHECK(cuMemFree(gone));
    EXPECT_ERR(cuMemcpyHtoD(gone, ones, 16), CUDA_ERROR_INVALID_VALUE); /* freed */
    h = fetch(lo, 4096);
    EXPECT(all_bytes(h, 4096, 0xa1));
    free(h);
    h = fetch(mid, 4096);
    EXPECT(all_bytes(h, 4096, 0xb2));
    free(h);
    h = fetch(hi, 4096);
    EXPECT(all_bytes(h, 4096, 0xc3));
    free(h);
    h = fetch(d1, N);
    EXPECT(memcmp(h, ref, N) == 0);
    free(h);
    CHECK(cuMemFree(lo));
    CHECK(cuMemFree(mid));
    CHECK(cuMemFree(hi));
    CHECK(cuMemFree(d1));
    CHECK(cuMemFree(d2));
    free(a);
    free(b);
    free(ref);
    free(ref2);
}

static void memsets(void) {
    const size_t N = 1 << 16;
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, N));
    unsigned char *ref = xmalloc(N);
    CHECK(cuMemsetD8(d, 0x00, N));
    memset(ref, 0, N);
    CHECK(cuMemsetD8(d + 5, 0x7b, 1001));
    memset(ref + 5, 0x7b, 1001);
    CHECK(cuMemsetD16(d + 2048, 0xbeef, 300));
    for (int i = 0; i < 300; i++) memcpy(ref + 2048 + 2 * i, &(uint16_t){0xbeef}, 2);
    CHECK(cuMemsetD16(d + 4096 + 2, 0x1234, 1)); /* 2-aligned, not 4-aligned */
    memcpy(ref + 4096 + 2, &(uint16_t){0x1234}, 2);
    CHECK(cuMemsetD32(d + 8192 + 4, 0xcafef00d, 2500));
    for (int i = 0; i < 2500; i++) memcpy(ref + 8192 + 4 + 4 * i, &(uint32_t){0xcafef00d}, 4);
    CHECK(cuMemsetD32(d + N - 16, 0x01020304, 4)); /* up to the end exactly */
    for (int i = 0; i < 4; i++) memcpy(ref + N - 16 + 4 * i, &(uint32_t){0x01020304}, 4);
    CHECK(cuMemsetD8(d, 0x99, 0)); /* zero elements: no-op */
    /* Misaligned destinations. */
    EXPECT_ERR(cuMemsetD16(d + 1, 0xffff, 4), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD32(d + 2, 0xffffffff, 4), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD32(d + 1, 0xffffffff, 4), CUDA_ERROR_INVALID_VALUE);
    unsigned char *h = fetch(d, N);
    EXPECT(memcmp(h, ref, N) == 0);
    free(h);

    /* 2D memsets on a pitched allocation: only width elements of each row change. */
    CUdeviceptr p;
    size_t pitch = 0;
    const size_t W = 300, H = 37; /* bytes, rows */
    EXPECT_ERR(cuMemAllocPitch(&p, &pitch, W, H, 3), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemAllocPitch(&p, &pitch, W, H, 4));
    EXPECT(pitch >= W && pitch % 4 == 0);
    size_t sz = 0;
    CHECK(cuMemGetAddressRange(NULL, &sz, p));
    EXPECT(sz >= pitch * H);
    size_t span = pitch * H;
    unsigned char *r2 = xmalloc(span);
    CHECK(cuMemsetD8(p, 0xab, span));
    memset(r2, 0xab, span);
    CHECK(cuMemsetD2D8(p + pitch + 3, pitch, 0x11, 101, 5));
    for (int y = 0; y < 5; y++) memset(r2 + (1 + y) * pitch + 3, 0x11, 101);
    CHECK(cuMemsetD2D16(p + 8 * pitch + 6, pitch, 0x2233, 40, 9));
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 40; x++) memcpy(r2 + (8 + y) * pitch + 6 + 2 * x, &(uint16_t){0x2233}, 2);
    CHECK(cuMemsetD2D32(p + 20 * pitch + 8, pitch, 0x44556677, W / 4 - 2, H - 20));
    for (size_t y = 0; y < H - 20; y++)
        for (size_t x = 0; x < W / 4 - 2; x++) memcpy(r2 + (20 + y) * pitch + 8 + 4 * x, &(uint32_t){0x44556677}, 4);
    EXPECT_ERR(cuMemsetD2D16(p + 1, pitch, 0, 4, 4), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD2D32(p + 2, pitch, 0, 4, 4), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD2D8(p, 10, 0, 20, 4), CUDA_ERROR_INVALID_VALUE); /* pitch < width */
    EXPECT_ERR(cuMemsetD2D8(p, pitch, 0, W, H + 1), CUDA_ERROR_INVALID_VALUE); /* past the end */
    h = fetch(p, span);
    EXPECT(memcmp(h, r2, span) == 0);
    free(h);
    CHECK(cuMemFree(p));
    CHECK(cuMemFree(d));
    free(ref);
    free(r2);
}

static void copies_2d(void) {
    /* Host image with a wide pitch; device image with the pitch cuMemAllocPitch chose. */
    const size_t HP = 700, HH = 50;          /* host pitch and rows */
    const size_t W = 333, H = 29;            /* copied bytes per row, rows */
    const size_t SX = 17, SY = 5;            /* source offset in the host image */
    const size_t DX = 40, DY = 3;            /* destination offset in the device image */
    unsigned char *host = xmalloc(HP * HH);
    fill(host, HP * HH, 4);
    CUdeviceptr dimg;
    size_t pitch = 0;
    CHECK(cuMemAllocPitch(&dimg, &pitch, 512, 40, 16));
    EXPECT(pitch >= 512 && pitch % 16 == 0);
    size_t span = pitch * 40;
    CHECK(cuMemsetD8(dimg, 0, span));
    unsigned char *dref = xmalloc(span);
    memset(dref, 0, span);

    CUDA_MEMCPY2D c;
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_HOST;
    c.srcHost = host;
    c.srcPitch = HP;
    c.srcXInBytes = SX;
    c.srcY = SY;
    c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c.dstDevice = dimg;
    c.dstPitch = pitch;
    c.dstXInBytes = DX;
    c.dstY = DY;
    c.WidthInBytes = W;
    c.Height = H;
    CHECK(cuMemcpy2D(&c));
    for (size_t y = 0; y < H; y++) memcpy(dref + (DY + y) * pitch + DX, host + (SY + y) * HP + SX, W);
    unsigned char *h = fetch(dimg, span);
    EXPECT(memcmp(h, dref, span) == 0);
    free(h);

    /* Device -> host with other offsets and a tight host pitch. */
    const size_t W2 = 200, H2 = 20, OX = 50, OY = 7;
    unsigned char *out = xmalloc(W2 * H2);
    memset(out, 0, W2 * H2);
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    c.srcDevice = dimg;
    c.srcPitch = pitch;
    c.srcXInBytes = OX;
    c.srcY = OY;
    c.dstMemoryType = CU_MEMORYTYPE_HOST;
    c.dstHost = out;
    c.dstPitch = W2;
    c.WidthInBytes = W2;
    c.Height = H2;
    CHECK(cuMemcpy2D(&c));
    int bad = 0;
    for (size_t y = 0; y < H2; y++) bad += memcmp(out + y * W2, dref + (OY + y) * pitch + OX, W2) != 0;
    EXPECT(bad == 0);

    /* Device -> device between two pitched images, through unified addressing, unaligned API. */
    CUdeviceptr dimg2;
    size_t pitch2 = 0;
    CHECK(cuMemAllocPitch(&dimg2, &pitch2, 1000, 30, 4));
    size_t span2 = pitch2 * 30;
    CHECK(cuMemsetD8(dimg2, 0xff, span2));
    unsigned char *dref2 = xmalloc(span2);
    memset(dref2, 0xff, span2);
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_UNIFIED;
    c.srcDevice = dimg;
    c.srcPitch = pitch;
    c.srcXInBytes = 1;
    c.srcY = 2;
    c.dstMemoryType = CU_MEMORYTYPE_UNIFIED;
    c.dstDevice = dimg2;
    c.dstPitch = pitch2;
    c.dstXInBytes = 600;
    c.dstY = 1;
    c.WidthInBytes = 399;
    c.Height = 25;
    CHECK(cuMemcpy2DUnaligned(&c));
    for (size_t y = 0; y < 25; y++) memcpy(dref2 + (1 + y) * pitch2 + 600, dref + (2 + y) * pitch + 1, 399);
    h = fetch(dimg2, span2);
    EXPECT(memcmp(h, dref2, span2) == 0);
    free(h);

    /* Unified host source (a plain host pointer as srcDevice). */
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_UNIFIED;
    c.srcDevice = (CUdeviceptr)(uintptr_t)host;
    c.srcPitch = HP;
    c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c.dstDevice = dimg2;
    c.dstPitch = pitch2;
    c.WidthInBytes = 64;
    c.Height = 3;
    CHECK(cuMemcpy2D(&c));
    for (size_t y = 0; y < 3; y++) memcpy(dref2 + y * pitch2, host + y * HP, 64);
    h = fetch(dimg2, span2);
    EXPECT(memcmp(h, dref2, span2) == 0);
    free(h);

    /* Errors: pitch smaller than the width, rows past the allocation, bad memory type. */
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_HOST;
    c.srcHost = host;
    c.srcPitch = 10;
    c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c.dstDevice = dimg2;
    c.dstPitch = pitch2;
    c.WidthInBytes = 64;
    c.Height = 3;
    EXPECT_ERR(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
    c.srcPitch = HP;
    c.Height = 31;
    EXPECT_ERR(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
    c.Height = 3;
    c.dstMemoryType = (CUmemorytype)77;
    EXPECT_ERR(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpy2D(NULL), CUDA_ERROR_INVALID_VALUE);
    h = fetch(dimg2, span2);
    EXPECT(memcmp(h, dref2, span2) == 0); /* untouched by the failed copies */
    free(h);

    CHECK(cuMemFree(dimg));
    CHECK(cuMemFree(dimg2));
    free(host);
    free(out);
    free(dref);
    free(dref2);
}

static void pinned(void) {
    const size_t N = 3 << 20;
    void *ph = NULL, *ph2 = NULL;
    unsigned flags = 99;
    CHECK(cuMemHostAlloc(&ph, N, CU_MEMHOSTALLOC_PORTABLE));
    EXPECT(ph != NULL);
    CHECK(cuMemHostGetFlags(&flags, ph));
    EXPECT(flags & CU_MEMHOSTALLOC_PORTABLE);
    CHECK(cuMemHostGetFlags(&flags, (char *)ph + N - 1)); /* any address inside */
    EXPECT(flags & CU_MEMHOSTALLOC_PORTABLE);
    EXPECT_ERR(cuMemHostAlloc(&ph2, N, 0x80000000u), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemAllocHost(&ph2, 4096));
    EXPECT(ph2 != NULL && ph2 != ph);
    CHECK(cuMemHostGetFlags(&flags, ph2));

    /* Pinned memory is usable as a copy source and destination. */
    fill(ph, N, 5);
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, N));
    CHECK(cuMemcpyHtoD(d, ph, N));
    unsigned char *h = fetch(d, N);
    EXPECT(memcmp(h, ph, N) == 0);
    CHECK(cuMemsetD8(d + 100, 0x3c, 4096));
    CHECK(cuMemcpyDtoH(ph2, d + 100, 4096));
    EXPECT(all_bytes(ph2, 4096, 0x3c));

    CHECK(cuMemFreeHost(ph2));
    EXPECT_ERR(cuMemFreeHost(ph2), CUDA_ERROR_INVALID_VALUE); /* double free */
    EXPECT_ERR(cuMemFreeHost(h), CUDA_ERROR_INVALID_VALUE);   /* plain malloc memory */
    EXPECT_ERR(cuMemHostGetFlags(&flags, h), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFreeHost(ph));
    EXPECT_ERR(cuMemHostGetFlags(&flags, ph), CUDA_ERROR_INVALID_VALUE);

    /* Registering ordinary memory. */
    const size_t R = 1 << 20;
    unsigned char *reg = NULL;
    if (posix_memalign((void **)&reg, 4096, R)) {
        fprintf(stderr, "posix_memalign failed\n");
        exit(1);
    }
    fill(reg, R, 6);
    EXPECT_ERR(cuMemHostUnregister(reg), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
    CHECK(cuMemHostRegister(reg, R, CU_MEMHOSTREGISTER_PORTABLE));
    CHECK(cuMemHostGetFlags(&flags, reg + 5000));
    EXPECT(flags & CU_MEMHOSTREGISTER_PORTABLE);
    EXPECT_ERR(cuMemHostRegister(reg, R, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    EXPECT_ERR(cuMemHostRegister(reg + 8192, 4096, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    CHECK(cuMemcpyHtoD(d, reg, R));
    CHECK(cuMemcpyDtoH(h, d, R));
    EXPECT(memcmp(h, reg, R) == 0);
    CHECK(cuMemHostUnregister(reg));
    EXPECT_ERR(cuMemHostUnregister(reg), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
    EXPECT_ERR(cuMemHostGetFlags(&flags, reg), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemHostUnregister(h), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
    EXPECT_ERR(cuMemHostRegister(NULL, R, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemHostRegister(reg, 0, 0), CUDA_ERROR_INVALID_VALUE);
    /* Registering again after unregistering works. */
    CHECK(cuMemHostRegister(reg, R, 0));
    CHECK(cuMemHostUnregister(reg));
    free(reg);
    free(h);
    CHECK(cuMemFree(d));
}

int main(void) {
    CUcontext ctx = setup();
    alloc_free();
    address_range();
    copies();
    memsets();
    copies_2d();
    pinned();
    CUcontext cur = NULL;
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == ctx);
    CHECK(cuCtxSynchronize());
    CHECK(cuDevicePrimaryCtxRelease(0));
    return finish("memory");
}
