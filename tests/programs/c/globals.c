/* Module globals (tests/kernels/globals.cu): cuModuleGetGlobal sizes and initial contents of
 * __device__ and __constant__ variables (scalars, arrays, a struct, a string, pointers
 * initialised with other variables' addresses), kernels reading them, a __constant__ array
 * written by the host before a launch, kernels writing __device__ variables read back by the
 * host, host writes seen by the next launch, and two loads of one module keeping separate
 * variables. */
#include "kernel_common.h"

typedef struct {
    int n;
    float a;
    short s[4];
    double d;
} Params;

static const float TABLE[8] = {1.5f, 2.5f, -3.25f, 4.0f, 1e10f, -0.0f, 7.125f, 1024.0f};
static const int COEFFS[16] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597};

static CUdeviceptr global(CUmodule m, const char *name, size_t want_bytes) {
    CUdeviceptr p = 0;
    size_t bytes = 0;
    CHECK(cuModuleGetGlobal(&p, &bytes, m, name));
    if (bytes != want_bytes) {
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", name, bytes, want_bytes);
        g_failures++;
    }
    return p;
}

static void check_reads(CUmodule mod, int want_counter) {
    CUdeviceptr dout = dev_alloc(32 * 4), dfout = dev_alloc(16 * 4), ddout = dev_alloc(4 * 8);
    void *p[] = {&dout, &dfout, &ddout};
    launch1(get_fn(mod, "read_globals"), 1, 32, 0, p);
    int out[32];
    float fout[16];
    double dd[4];
    dev_download(out, dout, sizeof out);
    dev_download(fout, dfout, sizeof fout);
    dev_download(dd, ddout, sizeof dd);
    check_u32("kernel reads counter", 0, out[0], want_counter);
    check_u32("kernel reads *ptr_to_counter", 0, out[1], want_counter);
    check_u32("big (high)", 0, out[2], 0x01234567);
    check_u32("big (low)", 0, out[3], 0x89abcdef);
    check_u32("cparams.n", 0, out[4], 42);
    check_u32("cparams.s", 0, out[5], 1000 - 200 + 30 - 4);
    int h = 0;
    for (const char *c = "hello, globals"; *c; c++) h = h * 31 + *c;
    check_u32("message hash", 0, out[6], h);
    for (int t = 0; t < 16; t++) check_u32("coeffs[t] * (t + 1)", t, out[8 + t], COEFFS[t] * (t + 1));
    check_f32_exact("cscale", 0, fout[0], 0.5f);
    check_f32_exact("cparams.a", 0, fout[1], -1.75f);
    CHECK(cuMemFree(dout));
    CHECK(cuMemFree(dfout));
    CHECK(cuMemFree(ddout));
    (void)dd;
    (void)fout;
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));

    /* Sizes and initial contents through cuModuleGetGlobal. */
    CUdeviceptr d_counter = global(mod, "counter", 4), d_table = global(mod, "table", 32);
    CUdeviceptr d_dvals = global(mod, "dvals", 24), d_big = global(mod, "big", 8);
    CUdeviceptr d_msg = global(mod, "message", 15), d_ptr = global(mod, "ptr_to_counter", 8);
    CUdeviceptr d_ptab = global(mod, "ptr_into_table", 8), d_uninit = global(mod, "uninit", 400);
    CUdeviceptr d_coeffs = global(mod, "coeffs", 64), d_cscale = global(mod, "cscale", 4);
    CUdeviceptr d_cparams = global(mod, "cparams", sizeof(Params)), d_cpoly = global(mod, "cpoly", 16);
    int counter;
    dev_download(&counter, d_counter, 4);
    check_u32("counter initialiser", 0, counter, 5);
    float table[8];
    dev_download(table, d_table, 32);
    for (int i = 0; i < 8; i++) check_f32_exact("table initialiser", i, table[i], TABLE[i]);
    double dvals[3];
    dev_download(dvals, d_dvals, 24);
    check_f64_exact("dvals[0]", 0, dvals[0], 1e100);
    check_f64_exact("dvals[1]", 1, dvals[1], -2.5);
    check_f64_exact("dvals[2]", 2, dvals[2], 0.1);
    unsigned long long big;
    dev_download(&big, d_big, 8);
    check_u64("big", 0, big, 0x0123456789abcdefull);
    char msg[15];
    dev_download(msg, d_msg, 15);
    EXPECT(memcmp(msg, "hello, globals", 15) == 0);
    unsigned long long ptr, ptab;
    dev_download(&ptr, d_ptr, 8);
    check_u64("ptr_to_counter == &counter", 0, ptr, d_counter);
    dev_download(&ptab, d_ptab, 8);
    check_u64("ptr_into_table == &table[3]", 0, ptab, d_table + 12);
    int uninit[100];
    dev_download(uninit, d_uninit, 400);
    for (int i = 0; i < 100; i++) check_u32("uninitialised is zero", i, uninit[i], 0);
    int coeffs[16];
    dev_download(coeffs, d_coeffs, 64);
    for (int i = 0; i < 16; i++) check_u32("__constant__ initialiser", i, coeffs[i], COEFFS[i]);
    float cscale;
    dev_download(&cscale, d_cscale, 4);
    check_f32_exact("cscale", 0, cscale, 0.5f);
    Params cp;
    dev_download(&cp, d_cparams, sizeof cp);
    EXPECT(cp.n == 42 && cp.a == -1.75f && cp.s[0] == 1 && cp.s[1] == -2 && cp.s[2] == 3 && cp.s[3] == -4);
    check_f64_exact("cparams.d", 0, cp.d, 6.02214076e23);
    CUdeviceptr none;
    size_t nb;
    EXPECT_ERR(cuModuleGetGlobal(&none, &nb, mod, "no_such_variable"), CUDA_ERROR_NOT_FOUND);
    /* Either output may be NULL. */
    CHECK(cuModuleGetGlobal(NULL, &nb, mod, "table"));
    EXPECT(nb == 32);
    CHECK(cuModuleGetGlobal(&none, NULL, mod, "table"));
    EXPECT(none == d_table);

    /* Kernels read them. */
    check_reads(mod, 5);
    CUdeviceptr dfout = dev_alloc(16 * 4), ddout = dev_alloc(32), dout = dev_alloc(128);
    void *pr[] = {&dout, &dfout, &ddout};
    launch1(get_fn(mod, "read_globals"), 1, 32, 0, pr);
    float fout[16];
    double dd[4];
    dev_download(fout, dfout, sizeof fout);
    dev_download(dd, ddout, sizeof dd);
    check_f32_exact("*ptr_into_table", 0, fout[2], 4.0f);
    for (int t = 0; t < 8; t++) check_f32_exact("table[t] * cscale", t, fout[4 + t], TABLE[t] * 0.5f);
    check_f64_exact("cparams.d (kernel)", 0, dd[0], 6.02214076e23);
    check_f64_exact("dvals[0] (kernel)", 0, dd[1], 1e100);
    check_f64_exact("dvals[2] (kernel)", 0, dd[3], 0.1);

    /* The host writes a __constant__ array, a kernel uses it. */
    int poly[4] = {3, -2, 0, 1};
    CHECK(cuMemcpyHtoD(d_cpoly, poly, sizeof poly));
    const int n = 41;
    float x[41], y[41];
    for (int i = 0; i < n; i++) x[i] = (float)(i - 20) * 0.5f;
    CUdeviceptr dx = dev_upload(x, sizeof x), dy = dev_alloc(sizeof y);
    int nn = n;
    void *pp[] = {&dx, &dy, &nn};
    launch1(get_fn(mod, "apply_poly"), 1, 64, 0, pp);
    dev_download(y, dy, sizeof y);
    for (int i = 0; i < n; i++) check_f32_exact("polynomial from __constant__", i, y[i], ((x[i] + 0) * x[i] - 2) * x[i] + 3);

    /* Kernels write __device__ variables; the host reads them back. */
    int threads = 300;
    void *pb[] = {&threads};
    launch1(get_fn(mod, "bump"), 3, 128, 0, pb);
    dev_download(&counter, d_counter, 4);
    check_u32("counter after atomicAdds", 0, counter, 5 + threads);
    dev_download(uninit, d_uninit, 400);
    for (int i = 0; i < 100; i++) check_u32("uninit written by kernel", i, uninit[i], i * i + COEFFS[i % 16]);
    dev_download(table, d_table, 32);
    for (int i = 0; i < 8; i++) check_f32_exact("table doubled", i, table[i], TABLE[i] * 2.0f);

    /* A host write is seen by the next launch (also through the pointer variable). */
    counter = 1000;
    CHECK(cuMemcpyHtoD(d_counter, &counter, 4));
    check_reads(mod, 1000);

    /* A second load of the same module has its own, freshly initialised variables. */
    CUmodule mod2;
    CHECK(cuModuleLoad(&mod2, argv[1]));
    CUdeviceptr d2 = global(mod2, "counter", 4);
    EXPECT(d2 != d_counter);
    int c2;
    dev_download(&c2, d2, 4);
    check_u32("second module's counter", 0, c2, 5);
    check_reads(mod2, 5);
    CUdeviceptr p2 = global(mod2, "ptr_to_counter", 8);
    dev_download(&ptr, p2, 8);
    check_u64("second module's ptr_to_counter", 0, ptr, d2);
    CHECK(cuModuleUnload(mod2));
    check_reads(mod, 1000);

    CHECK(cuModuleUnload(mod));
    return finish("globals");
}
