/* fork(): a child of an initialised process starts its own CUDA session (cuInit, primary
 * context, memory) and cannot reach the parent's allocations; a child that never touches CUDA
 * exits normally; the parent keeps working with its data intact. */
#include "common.h"
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 65536 /* words */

static uint32_t pattern(size_t k, uint32_t seed) { return (uint32_t)(k * 2654435761u) ^ seed; }

/* The child's whole job; returns its exit status. */
static int cuda_child(CUdeviceptr parent_ptr, uint32_t seed) {
    int bad = 0;
    if (cuInit(0) != CUDA_SUCCESS) return 10;
    CUdevice dev;
    CUcontext ctx;
    if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS) return 11;
    if (cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS) return 12;
    if (cuCtxSetCurrent(ctx) != CUDA_SUCCESS) return 13;
    uint32_t *in = malloc(N * 4), *out = malloc(N * 4);
    for (size_t k = 0; k < N; k++) in[k] = pattern(k, seed);
    CUdeviceptr d;
    if (cuMemAlloc(&d, N * 4) != CUDA_SUCCESS) return 14;
    if (cuMemcpyHtoD(d, in, N * 4) != CUDA_SUCCESS) return 15;
    if (cuMemsetD32(d + 4 * 100, 0xc41dc41du, 50) != CUDA_SUCCESS) return 16;
    for (int k = 100; k < 150; k++) in[k] = 0xc41dc41du;
    memset(out, 0, N * 4);
    if (cuMemcpyDtoH(out, d, N * 4) != CUDA_SUCCESS) return 17;
    if (memcmp(in, out, N * 4) != 0) bad = 1;
    /* The parent's allocation is not the child's: it can neither read nor free it. */
    if (cuMemcpyDtoH(out, parent_ptr, 64) == CUDA_SUCCESS) bad = 1;
    if (cuMemFree(parent_ptr) == CUDA_SUCCESS) bad = 1;
    if (cuMemsetD32(parent_ptr, 0, N) == CUDA_SUCCESS) bad = 1;
    if (cuMemFree(d) != CUDA_SUCCESS) return 18;
    if (cuDevicePrimaryCtxRelease(dev) != CUDA_SUCCESS) return 19;
    free(in);
    free(out);
    return bad;
}

static int wait_child(pid_t pid) {
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) {
        perror("waitpid");
        return -1;
    }
    if (!WIFEXITED(st)) {
        fprintf(stderr, "child %d did not exit normally (status %#x)\n", (int)pid, st);
        return -1;
    }
    return WEXITSTATUS(st);
}

static int parent_intact(CUdeviceptr d, uint32_t seed) {
    uint32_t *out = malloc(N * 4);
    CHECK(cuMemcpyDtoH(out, d, N * 4));
    int ok = 1;
    for (size_t k = 0; k < N; k++) ok &= out[k] == pattern(k, seed);
    free(out);
    return ok;
}

int main(void) {
    CUcontext ctx = setup();
    const uint32_t seed = 0x9a4e47u;
    uint32_t *in = malloc(N * 4);
    for (size_t k = 0; k < N; k++) in[k] = pattern(k, seed);
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, N * 4));
    CHECK(cuMemcpyHtoD(d, in, N * 4));

    /* 1: a CUDA child, while the parent keeps working. */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) exit(cuda_child(d, 0x12345u));
    for (int i = 0; i < 10; i++) {
        CUdeviceptr t;
        CHECK(cuMemAlloc(&t, 4096));
        CHECK(cuMemsetD8(t, (unsigned char)i, 4096));
        unsigned char b[16];
        CHECK(cuMemcpyDtoH(b, t + 4000, sizeof b));
        EXPECT(b[0] == (unsigned char)i && b[15] == (unsigned char)i);
        CHECK(cuMemFree(t));
    }
    int rc = wait_child(pid);
    if (rc != 0) fprintf(stderr, "CUDA child exit status %d\n", rc);
    EXPECT(rc == 0);
    EXPECT(parent_intact(d, seed));

    /* 2: a child that never touches CUDA exits normally (with its own status) and does not
     * disturb the parent's connection. */
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        volatile uint64_t x = 0;
        for (int i = 0; i < 1000; i++) x += (uint64_t)i;
        exit(x == 499500 ? 42 : 1);
    }
    rc = wait_child(pid);
    EXPECT(rc == 42);
    EXPECT(parent_intact(d, seed));

    /* 3: two CUDA children at once, then the parent again. */
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        fflush(stderr);
        kids[i] = fork();
        if (kids[i] < 0) {
            perror("fork");
            return 1;
        }
        if (kids[i] == 0) exit(cuda_child(d, 0x777u + (uint32_t)i));
    }
    for (int i = 0; i < 2; i++) {
        rc = wait_child(kids[i]);
        if (rc != 0) fprintf(stderr, "CUDA child %d exit status %d\n", i, rc);
        EXPECT(rc == 0);
    }

    /* The parent's session is unaffected: same context, data intact, still usable. */
    CUcontext cur = NULL;
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == ctx);
    EXPECT(parent_intact(d, seed));
    CUdeviceptr d2;
    CHECK(cuMemAlloc(&d2, N * 4));
    CHECK(cuMemcpyDtoD(d2, d, N * 4));
    EXPECT(parent_intact(d2, seed));
    CHECK(cuMemFree(d2));
    CHECK(cuMemFree(d));
    free(in);
    CHECK(cuDevicePrimaryCtxRelease(0));
    return finish("fork");
}
