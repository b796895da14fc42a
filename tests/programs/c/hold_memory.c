/* Allocates the number of MiB given as argv[1], fills it, prints READY and waits to be killed.
 * Used to check that a killed client's memory returns to the server. */
#include "common.h"
#include <unistd.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 64;
    setup();
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, mib << 20));
    CHECK(cuMemsetD8(p, 0x5a, mib << 20));
    printf("READY\n");
    fflush(stdout);
    for (;;) pause();
}
