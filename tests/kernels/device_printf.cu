// Device printf: integers of every size and base, floats with widths and precisions, strings
// (literals and a table in global memory), characters and %%, from a fixed set of threads.
#include <cstdio>

extern "C" __global__ void hello(int base, float f, double d) {
    const char* names[4] = {"zero", "one", "two", "three"};
    int b = blockIdx.x, t = threadIdx.x;
    if (t != 0 && !(b == 2 && t == 37)) return;
    printf("[%d.%d] int %d neg %d unsigned %u hex %x HEX %X ll %lld\n", b, t, base + b, -(base + t),
           4000000000u + b, 0xbeef00 + t, 0xabc, 1234567890123ll * (b + 1));
    printf("[%d.%d] float %f %5.2f %.3e %g |%8.3f|%-8.2f| double %.10f\n", b, t, f * b, f + t, f * 1000,
           0.5f, f, -f, d / (b + 1));
    printf("[%d.%d] str [%s] [%8s] [%-6s] char %c%c %% done\n", b, t, "hello", names[b], "ab", 'A' + b, 'x');
}

extern "C" __global__ void lanes(int k) {
    printf("lane %02d of %d: %d\n", threadIdx.x, blockDim.x, threadIdx.x * k);
}

// Special values, a string built at run time in local memory, and more flags and lengths.
extern "C" __global__ void specials(float zero) {
    char buf[8];
    buf[0] = 'a';
    buf[1] = 'b' + (char)blockIdx.x;
    buf[2] = 'c';
    buf[3] = '0' + (char)threadIdx.x;
    buf[4] = 0;
    printf("specials: %f %f %e [%s] %5d|%-5d|%05.1f %c %lu %hhd %+.2e %#x %#o\n", 1.0f / zero, zero / zero,
           -zero, buf, 42, -42, 3.14159, 'z', 18446744073709551615ul, 255, 12345.678, 255u, 8u);
}
