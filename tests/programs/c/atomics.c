/* Atomics under contention (tests/kernels/atomics.cu): many blocks (run on several host threads)
 * apply every atomic operation to the same addresses; the final values are order-independent
 * and compared exactly (float/double sums use values whose sums are exact in any order). The
 * tickets returned by atomicAdd and the old values returned by atomicExch must form
 * permutations. A histogram uses shared-memory atomics merged into global bins. */
#include "kernel_common.h"
#include <float.h>
#include <limits.h>

typedef struct {
    int add_i, sub_i, min_i, max_i;
    unsigned min_u, max_u, inc_u, dec_u;
    unsigned and_u, or_u, xor_u, exch_u;
    unsigned long long add_ull, add_blk, add_sys;
    unsigned ticket, pad;
    long long min_ll, max_ll;
    unsigned long long min_ull, max_ull, and_ull, or_ull, xor_ull;
    float add_f, cas_max_f;
    double add_d, cas_add_d;
} Acc;

static void test_contend(CUmodule mod, int n, int threads) {
    int *v = malloc(n * 4);
    for (int i = 0; i < n; i++) v[i] = (int)(rng32() % 1000000);
    Acc init = {0};
    init.min_i = INT_MAX;
    init.max_i = INT_MIN;
    init.min_u = UINT_MAX;
    init.and_u = UINT_MAX;
    init.min_ll = LLONG_MAX;
    init.max_ll = LLONG_MIN;
    init.min_ull = ULLONG_MAX;
    init.and_ull = ULLONG_MAX;
    init.cas_max_f = -1e30f;
    Acc want = init;
    for (int i = 0; i < n; i++) {
        int x = v[i];
        unsigned ux = (unsigned)x;
        long long lx = (long long)x * 1000003 - 7000000000ll;
        want.add_i = (int)((unsigned)want.add_i + ux);
        want.sub_i = (int)((unsigned)want.sub_i - ux);
        if (x - 500000 < want.min_i) want.min_i = x - 500000;
        if (x - 500000 > want.max_i) want.max_i = x - 500000;
        if (ux < want.min_u) want.min_u = ux;
        if (ux > want.max_u) want.max_u = ux;
        want.inc_u = want.inc_u >= 99u ? 0 : want.inc_u + 1;
        want.dec_u = (want.dec_u == 0 || want.dec_u > 37u) ? 37u : want.dec_u - 1;
        want.and_u &= ~(1u << (ux % 31));
        want.or_u |= 1u << (ux % 29);
        want.xor_u ^= ux * 2654435761u;
        want.add_ull += (unsigned long long)ux << 20;
        want.add_blk += 1;
        want.add_sys += 3;
        want.ticket += 1;
        if (lx < want.min_ll) want.min_ll = lx;
        if (lx > want.max_ll) want.max_ll = lx;
        if ((unsigned long long)lx < want.min_ull) want.min_ull = (unsigned long long)lx;
        if ((unsigned long long)lx > want.max_ull) want.max_ull = (unsigned long long)lx;
        want.and_ull &= ~(1ull << (ux % 63));
        want.or_ull |= 1ull << (ux % 61);
        want.xor_ull ^= (unsigned long long)lx;
        want.add_f += (float)(x % 64) * 0.5f;
        if ((float)x * 0.25f > want.cas_max_f) want.cas_max_f = (float)x * 0.25f;
        want.add_d += (double)(x % 1000) * 0.125;
        want.cas_add_d += (double)(x % 100) * 0.25;
    }
    CUdeviceptr dacc = dev_upload(&init, sizeof init), dv = dev_upload(v, n * 4);
    CUdeviceptr dt = dev_alloc(n * 4), de = dev_alloc(n * 4);
    void *p[] = {&dacc, &dv, &dt, &de, &n};
    launch1(get_fn(mod, "contend"), (n + threads - 1) / threads, threads, 0, p);
    Acc got;
    dev_download(&got, dacc, sizeof got);
    check_u32("atomicAdd int", 0, got.add_i, want.add_i);
    check_u32("atomicSub int", 0, got.sub_i, want.sub_i);
    check_u32("atomicMin int", 0, got.min_i, want.min_i);
    check_u32("atomicMax int", 0, got.max_i, want.max_i);
    check_u32("atomicMin unsigned", 0, got.min_u, want.min_u);
    check_u32("atomicMax unsigned", 0, got.max_u, want.max_u);
    check_u32("atomicInc", 0, got.inc_u, want.inc_u);
    check_u32("atomicDec", 0, got.dec_u, want.dec_u);
    check_u32("atomicAnd", 0, got.and_u, want.and_u);
    check_u32("atomicOr", 0, got.or_u, want.or_u);
    check_u32("atomicXor", 0, got.xor_u, want.xor_u);
    check_u64("atomicAdd unsigned long long", 0, got.add_ull, want.add_ull);
    check_u64("atomicAdd_block", 0, got.add_blk, want.add_blk);
    check_u64("atomicAdd_system", 0, got.add_sys, want.add_sys);
    check_u32("ticket counter", 0, got.ticket, want.ticket);
    check_u64("atomicMin long long", 0, got.min_ll, want.min_ll);
    check_u64("atomicMax long long", 0, got.max_ll, want.max_ll);
    check_u64("atomicMin unsigned long long", 0, got.min_ull, want.min_ull);
    check_u64("atomicMax unsigned long long", 0, got.max_ull, want.max_ull);
    check_u64("atomicAnd 64-bit", 0, got.and_ull, want.and_ull);
    check_u64("atomicOr 64-bit", 0, got.or_ull, want.or_ull);
    check_u64("atomicXor 64-bit", 0, got.xor_ull, want.xor_ull);
    check_f32_exact("atomicAdd float", 0, got.add_f, want.add_f);
    check_f32_exact("CAS float max", 0, got.cas_max_f, want.cas_max_f);
    check_f64_exact("atomicAdd double", 0, got.add_d, want.add_d);
    check_f64_exact("CAS double add", 0, got.cas_add_d, want.cas_add_d);

    /* Tickets: a permutation of 0..n-1. Exchange: the returned old values plus the final value
     * are exactly {0 (initial), 1..n}. */
    unsigned *t = malloc(n * 4), *e = malloc(n * 4);
    unsigned char *seen = calloc(n + 1, 1);
    dev_download(t, dt, n * 4);
    dev_download(e, de, n * 4);
    int dup = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] >= (unsigned)n || seen[t[i]]) dup++;
        else seen[t[i]] = 1;
    }
    check_u32("duplicate or out-of-range tickets", 0, dup, 0);
    memset(seen, 0, n + 1);
    dup = 0;
    for (int i = 0; i <= n; i++) {
        unsigned x = i < n ? e[i] : got.exch_u;
        if (x > (unsigned)n || seen[x]) dup++;
        else seen[x] = 1;
    }
    check_u32("atomicExch old values not a permutation", 0, dup, 0);
    CHECK(cuMemFree(dacc));
    CHECK(cuMemFree(dv));
    CHECK(cuMemFree(dt));
    CHECK(cuMemFree(de));
    free(v); free(t); free(e); free(seen);
}

static void test_histogram(CUmodule mod, int n, int nbins, int blocks, int threads) {
    unsigned *data = malloc(n * 4), *want = calloc(nbins, 4), *got = malloc(nbins * 4);
    for (int i = 0; i < n; i++) {
        /* Skewed: half the values land in a few bins. */
        data[i] = (rng32() & 1) ? rng32() % 4 : rng32() % (1u << 30);
        want[data[i] % nbins]++;
    }
    CUdeviceptr dd = dev_upload(data, n * 4), db = dev_alloc(nbins * 4), dbo = dev_alloc(blocks * 16);
    void *p[] = {&dd, &n, &db, &nbins, &dbo};
    launch1(get_fn(mod, "histogram"), blocks, threads, nbins * 4, p);
    dev_download(got, db, nbins * 4);
    char what[64];
    snprintf(what, sizeof what, "histogram %d bins", nbins);
    for (int b = 0; b < nbins; b++) check_u32(what, b, got[b], want[b]);
    float *bo = malloc(blocks * 16);
    dev_download(bo, dbo, blocks * 16);
    for (int b = 0; b < blocks; b++) {
        float fsum = 0;
        int mx = -1, mn = 1 << 30, cnt = 0;
        for (int i = b * threads; i < n; i += blocks * threads)
            for (int j = i; j < i + threads && j < n; j++) {
                fsum += (float)(data[j] & 7);
                if ((int)data[j] > mx) mx = data[j];
                if ((int)data[j] < mn) mn = data[j];
                cnt++;
            }
        check_f32_exact("shared atomicAdd float", b, bo[4 * b], fsum);
        check_f32_exact("shared atomicMax", b, bo[4 * b + 1], (float)mx);
        check_f32_exact("shared atomicMin", b, bo[4 * b + 2], (float)mn);
        check_f32_exact("shared CAS counter", b, bo[4 * b + 3], (float)cnt);
    }
    CHECK(cuMemFree(dd));
    CHECK(cuMemFree(db));
    CHECK(cuMemFree(dbo));
    free(data); free(want); free(got); free(bo);
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    test_contend(mod, 20000, 128);
    test_contend(mod, 777, 96);
    test_histogram(mod, 50000, 256, 16, 256);
    test_histogram(mod, 30001, 37, 7, 160);
    CHECK(cuModuleUnload(mod));
    return finish("atomics");
}
