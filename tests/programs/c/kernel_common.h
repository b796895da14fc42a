/* Helpers shared by the kernel-corpus programs (CUDA kernels under tests/kernels, driven from C): a
 * deterministic random source, device buffer and launch shorthands, and comparisons that report
 * the first few mismatches with their index (every mismatch still counts as a failure). */
#ifndef RGPU_KERNEL_COMMON_H
#define RGPU_KERNEL_COMMON_H
#include "common.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Mismatches printed (KERNEL_TEST_REPORTS=N prints more). */
static int g_reported = 0;
static int g_report_limit = 20;

/* splitmix64: the same sequence on every run. */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng64(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint32_t rng32(void) { return (uint32_t)(rng64() >> 32); }
/* Uniform in [lo, hi). */
static inline double rng_uniform(double lo, double hi) {
    return lo + (hi - lo) * ((double)(rng64() >> 11) * (1.0 / 9007199254740992.0));
}

static inline int usage_ok(int argc, char **argv) {
    if (getenv("KERNEL_TEST_REPORTS")) g_report_limit = atoi(getenv("KERNEL_TEST_REPORTS"));
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE_FILE\n", argv[0]);
        return 0;
    }
    return 1;
}

static inline CUdeviceptr dev_alloc(size_t bytes) {
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, bytes ? bytes : 1));
    CHECK(cuMemsetD8(p, 0, bytes ? bytes : 1));
    return p;
}

static inline CUdeviceptr dev_upload(const void *host, size_t bytes) {
    CUdeviceptr p = dev_alloc(bytes);
    CHECK(cuMemcpyHtoD(p, host, bytes));
    return p;
}

static inline void dev_download(void *host, CUdeviceptr p, size_t bytes) {
    CHECK(cuMemcpyDtoH(host, p, bytes));
}

static inline CUfunction get_fn(CUmodule m, const char *name) {
    CUfunction f;
    CHECK(cuModuleGetFunction(&f, m, name));
    return f;
}

/* Launches and waits; any launch or kernel error ends the program. */
static inline void launch3(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, unsigned smem, void **params) {
    CHECK(cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, NULL, params, NULL));
    CHECK(cuCtxSynchronize());
}

static inline void launch1(CUfunction f, unsigned grid, unsigned block, unsigned smem, void **params) {
    launch3(f, grid, 1, 1, block, 1, 1, smem, params);
}

/* Mismatch reporting: every mismatch counts, the first 20 are printed. */
static inline void report_mismatch(const char *what, long idx, const char *detail) {
    g_failures++;
    if (g_reported++ < g_report_limit) fprintf(stderr, "mismatch: %s [%ld]: %s\n", what, idx, detail);
}

static inline void check_u32(const char *what, long idx, uint32_t got, uint32_t want) {
    if (got != want) {
        char b[128];
        snprintf(b, sizeof b, "got %u (0x%08x), want %u (0x%08x)", got, got, want, want);
        report_mismatch(what, idx, b);
    }
}

static inline void check_u64(const char *what, long idx, uint64_t got, uint64_t want) {
    if (got != want) {
        char b[160];
        snprintf(b, sizeof b, "got %llu (0x%016llx), want %llu (0x%016llx)",
                 (unsigned long long)got, (unsigned long long)got, (unsigned long long)want,
                 (unsigned long long)want);
        report_mismatch(what, idx, b);
    }
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint64_t f64_bits(double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}
static inline double bits_f64(uint64_t u) {
    double f;
    memcpy(&f, &u, 8);
    return f;
}

/* Distance in units in the last place (0 for two NaNs or for +0/-0; huge when only one is NaN). */
static inline uint64_t ulp_f32(float a, float b) {
    if (isnan(a) || isnan(b)) return (isnan(a) && isnan(b)) ? 0 : UINT64_MAX;
    int64_t x = (int32_t)f32_bits(a), y = (int32_t)f32_bits(b);
    if (x < 0) x = (int64_t)INT32_MIN - x;
    if (y < 0) y = (int64_t)INT32_MIN - y;
    return (uint64_t)(x > y ? x - y : y - x);
}
static inline uint64_t ulp_f64(double a, double b) {
    if (isnan(a) || isnan(b)) return (isnan(a) && isnan(b)) ? 0 : UINT64_MAX;
    int64_t x = (int64_t)f64_bits(a), y = (int64_t)f64_bits(b);
    /* Map sign-magnitude to a monotone integer line (saturating is fine for distances). */
    __int128 X = x < 0 ? (__int128)INT64_MIN - x : x, Y = y < 0 ? (__int128)INT64_MIN - y : y;
    __int128 d = X > Y ? X - Y : Y - X;
    return d > (__int128)UINT64_MAX ? UINT64_MAX : (uint64_t)d;
}

/* Exact bit equality for floats (NaNs compare equal to any NaN). */
static inline void check_f32_exact(const char *what, long idx, float got, float want) {
    if (isnan(got) && isnan(want)) return;
    if (f32_bits(got) != f32_bits(want)) {
        char b[160];
        snprintf(b, sizeof b, "got %.9g (0x%08x), want %.9g (0x%08x)", got, f32_bits(got), want,
                 f32_bits(want));
        report_mismatch(what, idx, b);
    }
}
static inline void check_f64_exact(const char *what, long idx, double got, double want) {
    if (isnan(got) && isnan(want)) return;
    if (f64_bits(got) != f64_bits(want)) {
        char b[200];
        snprintf(b, sizeof b, "got %.17g (0x%016llx), want %.17g (0x%016llx)", got,
                 (unsigned long long)f64_bits(got), want, (unsigned long long)f64_bits(want));
        report_mismatch(what, idx, b);
    }
}
static inline void check_f32_ulp(const char *what, long idx, float got, float want, uint64_t ulps) {
    if (ulp_f32(got, want) > ulps) {
        char b[160];
        snprintf(b, sizeof b, "got %.9g, want %.9g (more than %llu ulp apart)", got, want,
                 (unsigned long long)ulps);
        report_mismatch(what, idx, b);
    }
}
static inline void check_f64_ulp(const char *what, long idx, double got, double want, uint64_t ulps) {
    if (ulp_f64(got, want) > ulps) {
        char b[200];
        snprintf(b, sizeof b, "got %.17g, want %.17g (more than %llu ulp apart)", got, want,
                 (unsigned long long)ulps);
        report_mismatch(what, idx, b);
    }
}
/* |got - want| <= abs_tol + rel_tol * |want| (for approximate intrinsics near zero crossings). */
static inline void check_f32_tol(const char *what, long idx, float got, float want, double abs_tol,
                                 double rel_tol) {
    if (isnan(got) && isnan(want)) return;
    if (isinf(want) && got == want) return;
    double d = fabs((double)got - (double)want);
    if (!(d <= abs_tol + rel_tol * fabs((double)want))) {
        char b[200];
        snprintf(b, sizeof b, "got %.9g, want %.9g (diff %.3g > %.3g + %.3g*|want|)", got, want, d,
                 abs_tol, rel_tol);
        report_mismatch(what, idx, b);
    }
}
#endif
