/* Allocates 128 MiB and exits without freeing it: the server must release it when we leave. */
#include "common.h"

int main(void) {
    setup();
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, 128u << 20));
    CHECK(cuMemsetD32(p, 0xabcdef01u, (128u << 20) / 4));
    printf("leak_and_exit: PASSED\n");
    return 0;
}
