// printf from kernels: a few threads of two launches print lines with several conversions; the
// output must be out by the next synchronising call (cudaDeviceSynchronize), so every device line
// comes before the host's marker line. The harness test checks the exact lines (sorted).
#include "check.h"

__global__ void say(int launch, const char* tag_unused) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t % 37 == 3) {
        printf("dev launch=%d block=%d thread=%d val=%.3f hex=%x str=%s chr=%c big=%lld\n", launch,
               blockIdx.x, threadIdx.x, t * 0.5, t * 255, "abc", 'A' + (t % 26),
               (long long)t * 10000000000ll);
    }
}

__global__ void one_line(double d, unsigned u) {
    printf("single %g %u %5d|%-4s|%%\n", d, u, 42, "ok");
}

int main() {
    // Not a launch as the first runtime call: see launch_first.cu.
    CHECK(cudaSetDevice(0));
    printf("host: before launch\n");
    say<<<2, 64>>>(1, nullptr);
    CHECK_LAUNCH();
    one_line<<<1, 1>>>(1.25, 4000000000u);
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());
    printf("host: marker after cudaDeviceSynchronize\n");
    // Second launch on a stream, synchronised with cudaStreamSynchronize.
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    say<<<1, 32, 0, s>>>(2, nullptr);
    CHECK_LAUNCH();
    CHECK(cudaStreamSynchronize(s));
    printf("host: marker after cudaStreamSynchronize\n");
    CHECK(cudaStreamDestroy(s));
    return finish("kernel_printf");
}
