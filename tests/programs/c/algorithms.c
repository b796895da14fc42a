/* Common GPU algorithms (tests/kernels/algorithms.cu): bitonic sort and Blelloch scan in shared
 * memory, a padded tiled transpose, a 5-point stencil with halos, row softmax with warp
 * reductions (expf: compared within 1e-5 relative) and cooperative-groups tile reductions and
 * coalesced groups; everything else exactly. */
#include "kernel_common.h"

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_sort(CUmodule mod) {
    const int blocks = 4, threads = 256, per = 2 * threads, n = blocks * per;
    uint32_t *k = malloc(n * 4), *got = malloc(n * 4);
    for (int i = 0; i < n; i++) k[i] = rng32() % 5000;
    CUdeviceptr d = dev_upload(k, n * 4);
    void *p[] = {&d};
    launch1(get_fn(mod, "bitonic_sort"), blocks, threads, per * 4, p);
    dev_download(got, d, n * 4);
    for (int b = 0; b < blocks; b++) qsort(k + b * per, per, 4, cmp_u32);
    for (int i = 0; i < n; i++) check_u32("bitonic sort", i, got[i], k[i]);
    free(k); free(got);
}

static void test_scan(CUmodule mod) {
    const int blocks = 5, threads = 128, per = 2 * threads, n = blocks * per;
    int *x = malloc(n * 4), *got = malloc(n * 4), sums[5];
    for (int i = 0; i < n; i++) x[i] = (int)(rng32() % 201) - 100;
    CUdeviceptr dx = dev_upload(x, n * 4), dout = dev_alloc(n * 4), ds = dev_alloc(blocks * 4);
    void *p[] = {&dx, &dout, &ds};
    launch1(get_fn(mod, "scan"), blocks, threads, per * 4, p);
    dev_download(got, dout, n * 4);
    dev_download(sums, ds, blocks * 4);
    for (int b = 0; b < blocks; b++) {
        int acc = 0;
        for (int i = b * per; i < (b + 1) * per; i++) {
            check_u32("exclusive scan", i, got[i], acc);
            acc += x[i];
        }
        check_u32("scan block total", b, sums[b], acc);
    }
    free(x); free(got);
}

static void test_transpose(CUmodule mod, int rows, int cols) {
    float *a = malloc(rows * cols * 4), *t = malloc(rows * cols * 4);
    for (int i = 0; i < rows * cols; i++) a[i] = (float)i * 0.5f;
    CUdeviceptr din = dev_upload(a, rows * cols * 4), dout = dev_alloc(rows * cols * 4);
    void *p[] = {&din, &dout, &rows, &cols};
    launch3(get_fn(mod, "transpose"), (cols + 31) / 32, (rows + 31) / 32, 1, 32, 8, 1, 0, p);
    dev_download(t, dout, rows * cols * 4);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) check_f32_exact("transpose", c * rows + r, t[c * rows + r], a[r * cols + c]);
    free(a); free(t);
}

static void test_stencil(CUmodule mod, int W, int H) {
    int *in = malloc(W * H * 4), *out = malloc(W * H * 4);
    for (int i = 0; i < W * H; i++) in[i] = (int)(rng32() % 1000);
    CUdeviceptr din = dev_upload(in, W * H * 4), dout = dev_alloc(W * H * 4);
    void *p[] = {&din, &dout, &W, &H};
    launch3(get_fn(mod, "stencil"), (W + 15) / 16, (H + 15) / 16, 1, 16, 16, 1, 0, p);
    dev_download(out, dout, W * H * 4);
#define AT(x, y) in[((y) < 0 ? 0 : (y) >= H ? H - 1 : (y)) * W + ((x) < 0 ? 0 : (x) >= W ? W - 1 : (x))]
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            check_u32("stencil", y * W + x, out[y * W + x],
                      4 * AT(x, y) - AT(x, y - 1) - AT(x, y + 1) - AT(x - 1, y) - AT(x + 1, y));
#undef AT
    free(in); free(out);
}

static void test_softmax(CUmodule mod) {
    const int rows = 24, cols = 100;
    float *x = malloc(rows * cols * 4), *y = malloc(rows * cols * 4);
    for (int i = 0; i < rows * cols; i++) x[i] = (float)rng_uniform(-8, 8);
    CUdeviceptr dx = dev_upload(x, rows * cols * 4), dy = dev_alloc(rows * cols * 4);
    int c = cols;
    void *p[] = {&dx, &dy, &c};
    launch1(get_fn(mod, "softmax"), rows / 4, 128, 0, p);
    dev_download(y, dy, rows * cols * 4);
    for (int r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (int k = 0; k < cols; k++) m = fmax(m, x[r * cols + k]);
        for (int k = 0; k < cols; k++) s += exp(x[r * cols + k] - m);
        for (int k = 0; k < cols; k++)
            check_f32_tol("softmax", r * cols + k, y[r * cols + k], (float)(exp(x[r * cols + k] - m) / s), 1e-9, 1e-5);
    }
    free(x); free(y);
}

static void test_cg(CUmodule mod) {
    const int blocks = 2, threads = 64, n = blocks * threads;
    int *x = malloc(n * 4), *o = malloc(n * 24);
    for (int i = 0; i < n; i++) x[i] = (int)(rng32() % 1000);
    CUdeviceptr dx = dev_upload(x, n * 4), dout = dev_alloc(n * 24);
    void *p[] = {&dx, &dout};
    launch1(get_fn(mod, "cg_reduce"), blocks, threads, 0, p);
    dev_download(o, dout, n * 24);
    for (int i = 0; i < n; i++) {
        int b4 = i & ~3, b8 = i & ~7, b16 = i & ~15, w = i & ~31;
        int s4 = 0, m8 = 0, s16 = 0, any = 0;
        for (int j = 0; j < 4; j++) s4 += x[b4 + j];
        for (int j = 0; j < 8; j++) m8 = x[b8 + j] > m8 ? x[b8 + j] : m8;
        for (int j = 0; j < 16; j++) {
            s16 += x[b16 + j];
            any |= x[b16 + j] > 900;
        }
        check_u32("cg tile<4> sum", i, o[6 * i], s4);
        check_u32("cg tile<8> max", i, o[6 * i + 1], m8);
        check_u32("cg tile<16> sum", i, o[6 * i + 2], s16 + (i & 15) * 1000000);
        check_u32("cg tile<8> shfl", i, o[6 * i + 3], x[b8 + 7 - (i & 7)]);
        int want = 0;
        if (x[i] % 3 == 0) {
            int size = 0, rank = 0, first = -1;
            for (int j = w; j < w + 32; j++)
                if (x[j] % 3 == 0) {
                    if (first < 0) first = x[j];
                    if (j < i) rank++;
                    size++;
                }
            want = size * 10000 + rank * 100 + first % 100;
        }
        check_u32("coalesced group", i, o[6 * i + 4], want);
        check_u32("cg tile<16> any/all", i, o[6 * i + 5], any + 2);
    }
    free(x); free(o);
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    test_sort(mod);
    test_scan(mod);
    test_transpose(mod, 70, 45);
    test_transpose(mod, 64, 96);
    test_stencil(mod, 50, 37);
    test_softmax(mod);
    test_cg(mod);
    CHECK(cuModuleUnload(mod));
    return finish("algorithms");
}
