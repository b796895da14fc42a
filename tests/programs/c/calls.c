/* Local memory, calls and addressing (tests/kernels/calls.cu): dynamically indexed local arrays,
 * a local array filled through a generic pointer by a non-inlined function, structs passed to
 * and returned from __noinline__ functions, recursion (fibonacci, tree depth, subtree sums) whose
 * depth differs between the lanes of a warp, indirect calls through a __device__ table (the same
 * target for a warp, and a different one per lane), one function reading, writing and updating
 * atomically through generic pointers to shared, local and global memory, and vector (float4,
 * int2, double2) and narrow (signed char, short) loads and stores. */
#include "kernel_common.h"

typedef struct {
    int a[6];
    long long b;
    char c;
} Big;

static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
static int depth(const int *parent, int i) { return parent[i] < 0 ? 0 : 1 + depth(parent, parent[i]); }
static long long subtree(const int *val, int n, int i) {
    return i >= n ? 0 : val[i] + subtree(val, n, 2 * i + 1) + subtree(val, n, 2 * i + 2);
}

static void test_local(CUmodule mod) {
    const int n = 256;
    int *in = malloc(n * 4), *out = malloc(n * 16);
    for (int i = 0; i < n; i++) in[i] = (int)(rng32() % 1000000) - 500000;
    CUdeviceptr din = dev_upload(in, n * 4), dout = dev_alloc(n * 16);
    void *p[] = {&din, &dout};
    launch1(get_fn(mod, "local_arrays"), n / 64, 64, 0, p);
    dev_download(out, dout, n * 16);
    for (int i = 0; i < n; i++) {
        int x = in[i], arr[32], v[16], s = 0;
        for (int k = 0; k < 32; k++) arr[k] = x * (k + 1) ^ k;
        for (int k = 0; k < 32; k++) s += arr[(x + k * 7) & 31];
        for (int k = 0; k < 16; k++) v[k] = (int)((unsigned)x * 1103515245u + (unsigned)k * 12345u) >> 8;
        for (int a = 1; a < 16; a++) {
            int key = v[a], b = a - 1;
            while (b >= 0 && v[b] > key) {
                v[b + 1] = v[b];
                b--;
            }
            v[b + 1] = key;
        }
        check_u32("local array dynamic reads", i, out[4 * i], s);
        check_u32("sorted local array min", i, out[4 * i + 1], v[0]);
        check_u32("sorted local array element", i, out[4 * i + 2], v[x & 15]);
        check_u32("sorted local array max", i, out[4 * i + 3], v[15]);
    }
    free(in); free(out);
}

static void test_structs(CUmodule mod) {
    const int n = 128;
    float *f = malloc(n * 24), *vo = malloc(n * 12);
    int *in = malloc(n * 4);
    Big *bo = malloc(n * sizeof(Big));
    for (int i = 0; i < 6 * n; i++) f[i] = (float)((int)(rng32() % 41) - 20);
    for (int i = 0; i < n; i++) in[i] = (int)(rng32() % 100000);
    CUdeviceptr df = dev_upload(f, n * 24), din = dev_upload(in, n * 4);
    CUdeviceptr dvo = dev_alloc(n * 12), dbo = dev_alloc(n * sizeof(Big));
    void *p[] = {&df, &din, &dvo, &dbo};
    launch1(get_fn(mod, "struct_calls"), n / 32, 32, 0, p);
    dev_download(vo, dvo, n * 12);
    dev_download(bo, dbo, n * sizeof(Big));
    for (int i = 0; i < n; i++) {
        const float *a = f + 6 * i, *b = a + 3;
        check_f32_exact("cross.x", i, vo[3 * i], a[1] * b[2] - a[2] * b[1]);
        check_f32_exact("cross.y", i, vo[3 * i + 1], a[2] * b[0] - a[0] * b[2]);
        check_f32_exact("cross.z", i, vo[3 * i + 2], a[0] * b[1] - a[1] * b[0]);
        Big g, r;
        for (int k = 0; k < 6; k++) g.a[k] = in[i] + k * 11;
        g.b = (long long)in[i] << 20;
        g.c = (char)i;
        int k = i % 5 + 1;
        for (int j = 0; j < 6; j++) r.a[j] = g.a[(j + k) % 6] * (j + 1);
        r.b = g.b * k - g.a[0];
        r.c = (char)(g.c + k);
        for (int j = 0; j < 6; j++) check_u32("struct return a[]", i, bo[i].a[j], r.a[j]);
        check_u64("struct return b", i, bo[i].b, r.b);
        check_u32("struct return c", i, (unsigned char)bo[i].c, (unsigned char)r.c);
    }
    free(f); free(vo); free(in); free(bo);
}

static void test_recursion(CUmodule mod) {
    int n = 200;
    int *parent = malloc(n * 4), *val = malloc(n * 4), *out = malloc(n * 8);
    long long *sums = malloc(n * 8);
    parent[0] = -1;
    for (int i = 1; i < n; i++) parent[i] = (int)(rng32() % i);
    for (int i = 0; i < n; i++) val[i] = (int)(rng32() % 1000);
    CUdeviceptr dp = dev_upload(parent, n * 4), dv = dev_upload(val, n * 4);
    CUdeviceptr dout = dev_alloc(n * 8), ds = dev_alloc(n * 8);
    void *p[] = {&dp, &dv, &n, &dout, &ds};
    launch1(get_fn(mod, "recursion"), (n + 63) / 64, 64, 0, p);
    dev_download(out, dout, n * 8);
    dev_download(sums, ds, n * 8);
    for (int i = 0; i < n; i++) {
        check_u32("recursive fib", i, out[2 * i], fib(i % 18));
        check_u32("recursive tree depth", i, out[2 * i + 1], depth(parent, i));
        check_u64("recursive subtree sum", i, sums[i], subtree(val, n, i));
    }
    free(parent); free(val); free(out); free(sums);
}

/* The table of op_add, op_sub, op_mul, op_mix. */
static int ref_op(int k, int x, int y) {
    switch (k) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    default: return (x ^ y) + fib(y & 7);
    }
}

static void test_indirect(CUmodule mod) {
    const int n = 256;
    int *a = malloc(n * 4), *b = malloc(n * 4), *out = malloc(n * 4);
    for (int i = 0; i < n; i++) {
        a[i] = (int)(rng32() % 20000) - 10000;
        b[i] = (int)(rng32() % 20000) - 10000;
    }
    CUdeviceptr da = dev_upload(a, n * 4), db = dev_upload(b, n * 4), dout = dev_alloc(n * 4);
    for (int sel = 0; sel < 4; sel++) {
        void *p[] = {&da, &db, &dout, &sel};
        launch1(get_fn(mod, "indirect"), n / 128, 128, 0, p);
        dev_download(out, dout, n * 4);
        for (int i = 0; i < n; i++) {
            int want = ref_op((sel + (i >> 5)) & 3, a[i], b[i]);
            check_u32("indirect call", sel * n + i, out[i], want);
        }
    }
    void *p[] = {&da, &db, &dout};
    launch1(get_fn(mod, "indirect_divergent"), n / 64, 64, 0, p);
    dev_download(out, dout, n * 4);
    for (int i = 0; i < n; i++) {
        int x = a[i], y = b[i];
        int want = ref_op((x ^ i) & 3, x, y) + (i & 1 ? ref_op(i % 3, y, 3) : 0);
        check_u32("indirect call with divergent targets", i, out[i], want);
    }
    free(a); free(b); free(out);
}

static void test_generic(CUmodule mod) {
    const int blocks = 2, threads = 64, n = blocks * threads;
    int *g = malloc(n * 16), *out = malloc(n * 32);
    for (int i = 0; i < 4 * n; i++) g[i] = (int)(rng32() % 1000);
    CUdeviceptr dg = dev_upload(g, n * 16), dout = dev_alloc(n * 32);
    void *p[] = {&dg, &dout};
    launch1(get_fn(mod, "generic_ptrs"), blocks, threads, 0, p);
    int *g2 = malloc(n * 16);
    dev_download(g2, dg, n * 16);
    dev_download(out, dout, n * 32);
    for (int i = 0; i < n; i++) {
        int t = i % threads, *o = out + 8 * i;
        int a = 0;
        if (t == 0)
            for (int k = 0; k < 64; k++) a += 2 * k;
        check_u32("generic pointer to shared", i, o[0], a);
        check_u32("generic pointer to local", i, o[1], 4 * t + 6);
        check_u32("generic pointer to global", i, o[2], g[4 * i] + g[4 * i + 1] + g[4 * i + 2] + g[4 * i + 3]);
        /* Shared: +1 everywhere, +1000 atomically at [0]. */
        check_u32("shared after generic writes", i, o[3], 2 * t + 1 + (t == 0 ? 1000 : 0));
        check_u32("local after generic writes", i, o[4], 4 * t + 6 + 4 * 5 + 1000);
        check_u32("__isShared/__isLocal/__isGlobal", i, o[5], 1 | 2 | 4);
        for (int k = 0; k < 4; k++)
            check_u32("global after generic writes", 4 * i + k, g2[4 * i + k], g[4 * i + k] + 7 + (k == 0 ? 1000 : 0));
    }
    free(g); free(g2); free(out);
}

static void test_vectors(CUmodule mod) {
    const int n = 96;
    float *f4 = malloc(n * 16), *of4 = malloc(n * 16);
    int *i2 = malloc(n * 8), *oi = malloc(n * 16);
    double *d2 = malloc(n * 16), *od = malloc(n * 8);
    signed char *c = malloc(n);
    short *s = malloc(n * 2);
    for (int i = 0; i < 4 * n; i++) f4[i] = (float)((int)(rng32() % 2001) - 1000) * 0.25f;
    for (int i = 0; i < 2 * n; i++) {
        i2[i] = (int)rng32();
        d2[i] = rng_uniform(-100, 100);
    }
    for (int i = 0; i < n; i++) {
        c[i] = (signed char)rng32();
        s[i] = (short)rng32();
    }
    CUdeviceptr df4 = dev_upload(f4, n * 16), di2 = dev_upload(i2, n * 8), dd2 = dev_upload(d2, n * 16);
    CUdeviceptr dc = dev_upload(c, n), ds = dev_upload(s, n * 2);
    CUdeviceptr dof4 = dev_alloc(n * 16), doi = dev_alloc(n * 16), dod = dev_alloc(n * 8);
    void *p[] = {&df4, &di2, &dd2, &dc, &ds, &dof4, &doi, &dod};
    launch1(get_fn(mod, "vectors"), n / 32, 32, 0, p);
    dev_download(of4, dof4, n * 16);
    dev_download(oi, doi, n * 16);
    dev_download(od, dod, n * 8);
    for (int i = 0; i < n; i++) {
        const float *v = f4 + 4 * i;
        check_f32_exact("float4 .x", i, of4[4 * i], v[3]);
        check_f32_exact("float4 .y", i, of4[4 * i + 1], v[2] * 2.0f);
        check_f32_exact("float4 .z", i, of4[4 * i + 2], v[1] + v[0]);
        check_f32_exact("float4 .w", i, of4[4 * i + 3], -v[0]);
        check_u32("int2 via __ldg", i, oi[4 * i], (uint32_t)i2[2 * i] - (uint32_t)i2[2 * i + 1]);
        check_u32("signed char load", i, oi[4 * i + 1], (int)c[i]);
        check_u32("short load", i, oi[4 * i + 2], (int)s[i] * 3);
        check_u32("unsigned narrow loads", i, oi[4 * i + 3], (unsigned char)c[i] + (unsigned short)s[i]);
        check_f64_exact("double2", i, od[i], fma(d2[2 * i], 0.5, d2[2 * i + 1]));
    }
    free(f4); free(of4); free(i2); free(oi); free(d2); free(od); free(c); free(s);
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    test_local(mod);
    test_structs(mod);
    test_recursion(mod);
    test_indirect(mod);
    test_generic(mod);
    test_vectors(mod);
    CHECK(cuModuleUnload(mod));
    return finish("calls");
}
