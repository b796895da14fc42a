/* Warp-level primitives (tests/kernels/warp_ops.cu): every shuffle kind with sub-warp widths and
 * 64-bit values, ballot/any/all/uni and match.any/all over the warp and with per-lane member
 * masks, __activemask in divergent branches, warp reductions, partial warps, divergent if/else,
 * loops, switches and early returns that reconverge before the next full-warp operation, and
 * __syncwarp() in both branches of a divergent if. References follow the CUDA definitions. */
#include "kernel_common.h"

#define NSHFL 17
#define NVOTE 16
#define NDIV 8

/* CUDA shuffle source lanes for a warp segment of `w` lanes. */
static int src_idx(int lane, int src, int w) { return (lane & ~(w - 1)) + (src & (w - 1)); }
static int src_up(int lane, int d, int w) { return lane - d < (lane & ~(w - 1)) ? lane : lane - d; }
static int src_down(int lane, int d, int w) { return lane + d >= (lane & ~(w - 1)) + w ? lane : lane + d; }
static int src_xor(int lane, int m, int w) { return (lane ^ m) >= (lane & ~(w - 1)) + w ? lane : lane ^ m; }

static void test_shuffles(CUmodule mod) {
    const int blocks = 3, threads = 128, n = blocks * threads;
    CUdeviceptr d = dev_alloc((size_t)n * NSHFL * 4);
    void *p[] = {&d};
    launch1(get_fn(mod, "shuffles"), blocks, threads, 0, p);
    int *o = malloc((size_t)n * NSHFL * 4);
    dev_download(o, d, (size_t)n * NSHFL * 4);
    static const char *names[NSHFL] = {"shfl idx", "shfl idx width 8", "shfl up 1", "shfl up 5",
                                       "shfl up 3 width 16", "shfl down 1", "shfl down 7",
                                       "shfl down 2 width 8", "shfl xor 1", "shfl xor 16", "shfl xor 31",
                                       "shfl xor 2 width 4", "shfl double", "shfl down 64-bit",
                                       "shfl lane from value", "warp sum", "butterfly max"};
    for (int b = 0; b < blocks; b++)
        for (int t = 0; t < threads; t++) {
            int lane = t & 31, base = t - lane;
#define V(l) (b * 1000 + (base + (l)) * 3 + 1)
            int want[NSHFL];
            want[0] = V((lane * 7 + 3) & 31);
            want[1] = V(src_idx(lane, lane * 3, 8));
            want[2] = V(src_up(lane, 1, 32));
            want[3] = V(src_up(lane, 5, 32));
            want[4] = V(src_up(lane, 3, 16));
            want[5] = V(src_down(lane, 1, 32));
            want[6] = V(src_down(lane, 7, 32));
            want[7] = V(src_down(lane, 2, 8));
            want[8] = V(src_xor(lane, 1, 32));
            want[9] = V(src_xor(lane, 16, 32));
            want[10] = V(src_xor(lane, 31, 32));
            want[11] = V(src_xor(lane, 2, 4));
            want[12] = V(31 - lane);
            int sl = src_down(lane, 4, 32);
            want[13] = V(sl) ^ sl;
            want[14] = V(V(lane) % 32);
            int s = 0, m = 0;
            for (int l = 0; l < 32; l++) {
                s += V(l);
                int x = (int)(((unsigned)V(l) * 2654435761u) >> 7);
                if (l == 0 || x > m) m = x;
            }
            want[15] = s;
            want[16] = m;
#undef V
            for (int k = 0; k < NSHFL; k++) check_u32(names[k], (b * threads + t) * NSHFL + k, o[(b * threads + t) * NSHFL + k], want[k]);
        }
    free(o);
}

static void test_votes(CUmodule mod) {
    const int blocks = 4, threads = 96, n = blocks * threads;
    int *in = malloc(n * 4);
    for (int i = 0; i < n; i++) in[i] = (int)(rng32() % 1000);
    /* Warps where every lane agrees, for all/any and match.all. */
    for (int i = 32; i < 64; i++) in[i] = 41;
    for (int i = 64; i < 96; i++) in[i] = 2 * i;
    CUdeviceptr din = dev_upload(in, n * 4), d = dev_alloc((size_t)n * NVOTE * 4);
    void *p[] = {&din, &d};
    launch1(get_fn(mod, "votes"), blocks, threads, 0, p);
    unsigned *o = malloc((size_t)n * NVOTE * 4);
    dev_download(o, d, (size_t)n * NVOTE * 4);
    for (int i = 0; i < n; i++) {
        int lane = i % threads & 31, w0 = i - lane, b = i / threads;
        const int *x = in + w0;
        unsigned ballot = 0, anyp = 0, allp = 1, nonneg = 1, big = 0, m3 = 0, b1 = 0, b2 = 0, eq = 1, q = 0;
        for (int l = 0; l < 32; l++) {
            ballot |= (unsigned)(x[l] & 1) << l;
            anyp |= x[l] & 1;
            allp &= x[l] & 1;
            nonneg &= x[l] >= 0;
            big |= x[l] > 1000000;
            if (l % 3 == 0) m3 |= 1u << l;
            if (l < 20) b1 |= (unsigned)(x[l] & 1) << l;
            else b2 |= (unsigned)!(x[l] & 1) << l;
            eq &= x[l] == x[0];
            q += x[l] % 4 == 1;
        }
        unsigned match5 = 0, match3 = 0;
        for (int l = 0; l < 32; l++) {
            if (x[l] % 5 == x[lane] % 5) match5 |= 1u << l;
            if (x[l] % 3 == x[lane] % 3) match3 |= 1u << l;
        }
        unsigned want[NVOTE];
        want[0] = ballot;
        want[1] = anyp;
        want[2] = allp;
        want[3] = nonneg | (big << 1);
        want[4] = lane % 3 == 0 ? m3 : (~m3 ^ 0x80000000u);
        want[5] = lane < 20 ? b1 : b2;
        want[6] = match5;
        want[7] = 1 | (1 << 1) | ((eq ? 0 : 1) << 2) | (eq << 3);
        want[8] = match3;
        want[9] = q;
        /* Per-lane masks: the 8-lane group of this lane. */
        int g0 = lane & 24;
        unsigned tile = 0xffu << g0, tb = 0, tm3 = 0, teq = 1, todd = 1;
        for (int l = g0; l < g0 + 8; l++) {
            tb |= (unsigned)(x[l] & 1) << l;
            if (x[l] % 3 == x[lane] % 3) tm3 |= 1u << l;
            teq &= x[l] == x[g0];
            todd &= (x[l] & 1) == (x[g0] & 1);
        }
        want[10] = tb;
        want[11] = (tb == tile) | ((tb != 0) << 1) | ((tb == tile || tb == 0) << 2);
        want[12] = tm3;
        want[13] = teq ? tile : 0;
        want[14] = teq;
        want[15] = (todd ? tile : 0) | (todd << 8);
        static const char *names[NVOTE] = {"ballot", "any", "all", "all/any constants",
                                           "activemask in divergent branches", "ballot with partial masks",
                                           "match.any", "match.all", "match.any 64-bit", "popc(ballot)",
                                           "ballot in 8-lane groups", "all/any/uni in 8-lane groups",
                                           "match.any in 8-lane groups", "match.all in 8-lane groups",
                                           "match.all predicate in 8-lane groups",
                                           "match.all of parity in 8-lane groups"};
        (void)b;
        for (int k = 0; k < NVOTE; k++) {
            unsigned got = o[(size_t)i * NVOTE + k];
            if (k == 1 || k == 2 || k == 14) got = got != 0;
            check_u32(names[k], i, got, want[k]);
        }
    }
    free(in); free(o);
}

static void test_partial(CUmodule mod, int threads) {
    const int blocks = 3, n = blocks * threads;
    int *in = calloc(n, 4);
    for (int i = 0; i < n; i++) in[i] = (int)(rng32() % 100000);
    CUdeviceptr din = dev_upload(in, n * 4), d = dev_alloc((size_t)n * 16);
    void *p[] = {&din, &d};
    launch1(get_fn(mod, "partial_warp"), blocks, threads, 0, p);
    unsigned *o = malloc((size_t)n * 16);
    dev_download(o, d, (size_t)n * 16);
    for (int i = 0; i < n; i++) {
        int t = i % threads, lane = t & 31, wbase = i - lane;
        int nl = threads - (t - lane) < 32 ? threads - (t - lane) : 32;
        unsigned mask = nl == 32 ? 0xffffffffu : (1u << nl) - 1, ballot = 0;
        int sum = 0;
        for (int l = 0; l < nl; l++) {
            ballot |= (unsigned)(in[wbase + l] & 1) << l;
            sum += in[wbase + l];
        }
        /* The butterfly sum only adds partners that exist, so lanes of a partial warp sum a
         * subset; recompute it the same way. */
        int s[32];
        for (int l = 0; l < nl; l++) s[l] = in[wbase + l];
        for (int off = 1; off < 32; off <<= 1) {
            int ns[32];
            for (int l = 0; l < nl; l++) ns[l] = s[l] + (((l ^ off) < nl) ? s[l ^ off] : 0);
            memcpy(s, ns, sizeof ns);
        }
        check_u32("partial warp activemask", i, o[4 * i], mask);
        check_u32("partial warp ballot", i, o[4 * i + 1], ballot);
        /* The last lane of a partial warp would read a lane outside the mask: undefined. */
        if (lane + 1 < nl) check_u32("partial warp shfl down", i, o[4 * i + 2], in[i + 1]);
        else if (nl == 32) check_u32("partial warp shfl down", i, o[4 * i + 2], in[i]);
        check_u32("partial warp xor sum", i, o[4 * i + 3], s[lane]);
        if (nl == 32) check_u32("full warp xor sum", i, o[4 * i + 3], sum);
    }
    free(in); free(o);
}

static int slow_path(int v, int k) {
    for (int j = 0; j < k; j++) v = (int)((unsigned)v * 31u + (unsigned)j);
    return v;
}

static void test_divergence(CUmodule mod) {
    const int blocks = 4, threads = 64, n = blocks * threads;
    int *in = malloc(n * 4);
    for (int i = 0; i < n; i++) in[i] = (int)(rng32() % 5000) + 1;
    CUdeviceptr din = dev_upload(in, n * 4), d = dev_alloc((size_t)n * NDIV * 4);
    void *p[] = {&din, &d};
    launch1(get_fn(mod, "divergence"), blocks, threads, 0, p);
    int *o = malloc((size_t)n * NDIV * 4);
    dev_download(o, d, (size_t)n * NDIV * 4);
    for (int w0 = 0; w0 < n; w0 += 32) {
        int a[32], acc[32], c[32], steps[32];
        unsigned ballot = 0;
        int sum = 0, ssum = 0;
        for (int l = 0; l < 32; l++) {
            int x = in[w0 + l];
            if (l & 1) {
                a[l] = x * 3;
                if (x % 7 == 0) a[l] += slow_path(x, l);
            } else {
                a[l] = x - 7;
            }
            acc[l] = 0;
            for (int k = 0; k < l % 7 + (x & 3); k++) acc[l] += k * x + l;
            ballot |= (unsigned)(acc[l] & 1) << l;
            sum += acc[l];
            switch (l & 3) {
            case 0: c[l] = x + 1; break;
            case 1: c[l] = slow_path(x, 3); break;
            case 2: c[l] = x << 2; break;
            default: c[l] = -x; break;
            }
            int w = x;
            steps[l] = 0;
            while (1) {
                steps[l]++;
                if (w & 1) {
                    w = 3 * w + 1;
                    continue;
                }
                w >>= 1;
                if (w <= 1 || steps[l] > 200) break;
            }
            ssum += steps[l];
        }
        unsigned pos = 0;
        for (int l = 0; l < 28; l++) pos |= (unsigned)(in[w0 + l] > 0) << l;
        for (int l = 0; l < 32; l++) {
            const int *g = o + (size_t)(w0 + l) * NDIV;
            long idx = w0 + l;
            check_u32("if/else then shfl", idx, g[0], a[l] + a[l ^ 1]);
            check_u32("ballot after loop", idx, g[1], ballot);
            check_u32("sum after loop", idx, g[2], sum);
            check_u32("switch then shfl", idx, g[3], c[(l + 1) & 31]);
            check_u32("while steps", idx, g[4], steps[l]);
            check_u32("sum of steps", idx, g[5], ssum);
            check_u32("shfl after early return", idx, g[6], l >= 28 ? 0 : in[w0 + 27 - l]);
            check_u32("ballot after early return", idx, g[7], l >= 28 ? 0 : pos);
        }
    }
    free(in); free(o);
}

static void test_divergent_syncwarp(CUmodule mod) {
    const int blocks = 2, threads = 128, n = blocks * threads;
    int *in = calloc(n, 4), *out = calloc(n, 4);
    for (int i = 0; i < n; i++) in[i] = (int)(rng32() % 10000);
    CUdeviceptr din = dev_upload(in, n * 4), d = dev_alloc(n * 4);
    void *p[] = {&din, &d};
    launch1(get_fn(mod, "divergent_syncwarp"), blocks, threads, 0, p);
    dev_download(out, d, n * 4);
    for (int i = 0; i < n; i++) {
        int lane = i & 31;
        int r = lane < 16 ? (in[i + 16] + 7) * 3 + in[i + 17 - (lane == 15) * 16] + 7 : (in[i - 16] * 2) ^ 5;
        int j = i ^ 1, v = in[j];
        for (int k = 0; k < 2 + (lane & 1 ? 0 : 1); k++) v = v * 3 + k;
        check_u32("__syncwarp in divergent branches", i, out[i], r + v);
    }
    free(in); free(out);
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    test_shuffles(mod);
    test_votes(mod);
    test_partial(mod, 48);
    test_partial(mod, 100);
    test_divergence(mod);
    test_divergent_syncwarp(mod);
    CHECK(cuModuleUnload(mod));
    return finish("warp_ops");
}
