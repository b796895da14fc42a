/* Allocates, prints READY, waits for a line on stdin, then copies from the device and prints the
 * CUresult name: used to check that a dead server gives an error in bounded time, not a hang. */
#include "common.h"
#include <string.h>

int main(void) {
    setup();
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, 4096));
    printf("READY\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 3;
    int v = 0;
    CUresult r = cuMemcpyDtoH(&v, p, sizeof v);
    const char *n = 0;
    cuGetErrorName(r, &n);
    printf("RESULT %s\n", n ? n : "?");
    r = cuMemAlloc(&p, 16);
    cuGetErrorName(r, &n);
    printf("AFTER %s\n", n ? n : "?");
    return 0;
}
