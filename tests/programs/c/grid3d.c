/* 2D/3D grids and blocks (tests/kernels/grid3d.cu): every thread of grids such as (7,5,3) x
 * (8,4,2) reports its coordinates and the launch dimensions at its own linear index (so every
 * thread ran exactly once, with the right blockIdx/threadIdx/gridDim/blockDim), and 3D volumes
 * are filled through bounds-checked x/y/z indices. */
#include "kernel_common.h"

static void test_coords(CUmodule mod, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz) {
    size_t nt = bx * by * bz, n = nt * gx * gy * gz;
    CUdeviceptr d = dev_alloc(n * 20);
    CHECK(cuMemsetD32(d, 0xdeadbeef, n * 5));
    void *p[] = {&d};
    launch3(get_fn(mod, "coords"), gx, gy, gz, bx, by, bz, 0, p);
    unsigned *o = malloc(n * 20);
    dev_download(o, d, n * 20);
    char what[96];
    snprintf(what, sizeof what, "coords grid (%u,%u,%u) block (%u,%u,%u)", gx, gy, gz, bx, by, bz);
    size_t g = 0;
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++)
                for (unsigned tz = 0; tz < bz; tz++)
                    for (unsigned ty = 0; ty < by; ty++)
                        for (unsigned tx = 0; tx < bx; tx++, g++) {
                            const unsigned *r = o + 5 * g;
                            check_u32(what, g * 5, r[0], (unsigned)g);
                            check_u32(what, g * 5 + 1, r[1], x | (y << 16));
                            check_u32(what, g * 5 + 2, r[2], z | (tx << 16));
                            check_u32(what, g * 5 + 3, r[3], ty | (tz << 8) | (bx << 16) | (by << 24));
                            check_u32(what, g * 5 + 4, r[4], bz | (gx << 8) | (gy << 16) | (gz << 24));
                        }
    CHECK(cuMemFree(d));
    free(o);
}

static void test_volume(CUmodule mod, int X, int Y, int Z, unsigned bx, unsigned by, unsigned bz) {
    size_t n = (size_t)X * Y * Z;
    CUdeviceptr d = dev_alloc(n * 4);
    CHECK(cuMemsetD32(d, 0xffffffffu, n));
    void *p[] = {&d, &X, &Y, &Z};
    launch3(get_fn(mod, "volume"), (X + bx - 1) / bx, (Y + by - 1) / by, (Z + bz - 1) / bz, bx, by, bz, 0, p);
    int *v = malloc(n * 4);
    dev_download(v, d, n * 4);
    char what[96];
    snprintf(what, sizeof what, "volume %dx%dx%d block (%u,%u,%u)", X, Y, Z, bx, by, bz);
    for (int z = 0; z < Z; z++)
        for (int y = 0; y < Y; y++)
            for (int x = 0; x < X; x++) {
                size_t i = ((size_t)z * Y + y) * X + x;
                check_u32(what, i, v[i], x + 1000 * y + 1000000 * z);
            }
    CHECK(cuMemFree(d));
    free(v);
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    test_coords(mod, 7, 5, 3, 8, 4, 2);
    test_coords(mod, 2, 3, 4, 5, 6, 7);
    test_coords(mod, 1, 1, 1, 32, 32, 1);
    test_coords(mod, 1, 200, 1, 1, 1, 3);
    test_coords(mod, 3000, 1, 1, 2, 1, 1);
    test_coords(mod, 1, 1, 300, 1, 2, 64);
    test_volume(mod, 50, 19, 5, 8, 4, 2);
    test_volume(mod, 33, 33, 33, 4, 4, 4);
    test_volume(mod, 100, 3, 2, 128, 1, 1);
    CHECK(cuModuleUnload(mod));
    return finish("grid3d");
}
