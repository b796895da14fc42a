/* Large host<->device copies (which take the shared-memory path to a local server), sync and
 * async, at offsets, checked byte for byte; a large copy to a bogus address still fails cleanly. */
#include "common.h"
#include <string.h>

int main(void) {
    setup();
    const size_t n = 3 << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    for (size_t i = 0; i < n; i++) a[i] = (unsigned char)(i * 2654435761u >> 13);
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, n + 4096));
    CHECK(cuMemcpyHtoD(d + 4096, a, n));
    memset(b, 0, n);
    CHECK(cuMemcpyDtoH(b, d + 4096, n));
    EXPECT(memcmp(a, b, n) == 0);
    CUstream s;
    CHECK(cuStreamCreate(&s, 0));
    CHECK(cuMemsetD8Async(d, 0, n + 4096, s));
    CHECK(cuMemcpyHtoDAsync(d + 100, a, n - 100, s));
    memset(b, 1, n);
    CHECK(cuMemcpyDtoHAsync(b, d, n, s));
    CHECK(cuStreamSynchronize(s));
    int bad = 0;
    for (size_t i = 0; i < 100; i++) bad += b[i] != 0;
    for (size_t i = 100; i < n; i++) bad += b[i] != a[i - 100];
    EXPECT(bad == 0);
    EXPECT_ERR(cuMemcpyHtoD(d + 8192, a, n), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoH(b, (CUdeviceptr)0x1000, n), CUDA_ERROR_INVALID_VALUE);
    /* Still usable after the errors. */
    CHECK(cuMemcpyDtoH(b, d + 100, 4096));
    EXPECT(memcmp(a, b, 4096) == 0);
    CHECK(cuStreamDestroy(s));
    CHECK(cuMemFree(d));
    free(a);
    free(b);
    return finish("big_copies");
}
