/* Device printf (tests/kernels/printf.cu): launches kernels that print from a fixed set of
 * threads; the output must reach this program's stdout by the next synchronising call. The
 * harness (tests/tests/kernels.rs) compares the printed lines, sorted, with the expected ones. */
#include "kernel_common.h"

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    int base = 100;
    float f = 1.25f;
    double d = 3.141592653589793;
    void *p[] = {&base, &f, &d};
    CHECK(cuLaunchKernel(get_fn(mod, "hello"), 4, 1, 1, 64, 1, 1, 0, NULL, p, NULL));
    CHECK(cuCtxSynchronize());
    int k = 3;
    void *q[] = {&k};
    CHECK(cuLaunchKernel(get_fn(mod, "lanes"), 1, 1, 1, 32, 1, 1, 0, NULL, q, NULL));
    float zero = 0.0f;
    void *r[] = {&zero};
    CHECK(cuLaunchKernel(get_fn(mod, "specials"), 1, 1, 1, 1, 1, 1, 0, NULL, r, NULL));
    /* A synchronous copy also delivers what the kernels printed. */
    int x = 0;
    CUdeviceptr dx = dev_upload(&x, 4);
    dev_download(&x, dx, 4);
    CHECK(cuModuleUnload(mod));
    fflush(stdout);
    return finish("device_printf");
}
