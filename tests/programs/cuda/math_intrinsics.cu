// Device math library and intrinsics against the host: float/double transcendental functions
// (within a few ulp-ish tolerance), fmaf/fma, fast-math intrinsics (__expf, __sinf, __fdividef:
// loose tolerance), rounding conversions (__float2int_rn/rz/rd/ru, rintf, truncf), bit
// intrinsics (__popc, __popcll, __clz, __clzll, __ffs, __brev, __byte_perm, __umulhi, __mul64hi,
// __sad, __funnelshift_l), integer division/modulo of negative numbers, 64-bit arithmetic.
#include "check.h"
#include <cmath>
#include <vector>
#include <cstdint>

#define NF 16
#define NI 16

__global__ void fmath(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i], a = fabsf(v) + 0.1f;
    float* o = out + i * NF;
    o[0] = sinf(v);
    o[1] = cosf(v);
    o[2] = expf(v * 0.1f);
    o[3] = logf(a);
    o[4] = sqrtf(a);
    o[5] = rsqrtf(a);
    o[6] = powf(a, 1.7f);
    o[7] = atan2f(v, 1.5f);
    o[8] = tanhf(v * 0.3f);
    o[9] = fmaf(v, 1.25f, -0.5f);
    o[10] = __expf(v * 0.1f);
    o[11] = __sinf(v);
    o[12] = __fdividef(v, a);
    o[13] = cbrtf(v);
    o[14] = log2f(a) + exp2f(v * 0.05f);
    o[15] = fminf(v, 0.5f) + fmaxf(v, -0.5f) + copysignf(2.0f, v) + floorf(v) + ceilf(v);
}

__global__ void dmath(const double* x, double* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double v = x[i], a = fabs(v) + 0.1;
    double* o = out + i * 8;
    o[0] = sin(v);
    o[1] = exp(v * 0.1);
    o[2] = log(a);
    o[3] = sqrt(a);
    o[4] = pow(a, 2.5);
    o[5] = atan(v);
    o[6] = fma(v, 3.0, 1.0);
    o[7] = v / a;
}

__global__ void imath(const int* x, long long* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int v = x[i];
    unsigned u = (unsigned)v;
    unsigned long long w = (unsigned long long)u * 0x100000001ull + 12345;
    long long* o = out + i * NI;
    o[0] = __popc(u);
    o[1] = __popcll(w);
    o[2] = __clz(v);
    o[3] = __clzll((long long)w);
    o[4] = __ffs(v);
    o[5] = __brev(u);
    o[6] = __byte_perm(u, 0x76543210u, 0x5140);
    o[7] = __umulhi(u, 0x9E3779B9u);
    o[8] = (long long)__umul64hi(w, 0x9E3779B97F4A7C15ull);
    o[9] = v / 7;
    o[10] = v % 7;
    o[11] = (long long)v * v - (long long)v * 3;
    o[12] = __sad(v, 100, 5);
    o[13] = __funnelshift_l(u, u ^ 0xffffu, 11);
    o[14] = (long long)(w >> 3) ^ (long long)(w << 5);
    o[15] = (int)((float)v * 0.37f);  // cvt.rzi
}

__global__ void conv(const float* x, int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    out[i * 6 + 0] = __float2int_rn(v);
    out[i * 6 + 1] = __float2int_rz(v);
    out[i * 6 + 2] = __float2int_rd(v);
    out[i * 6 + 3] = __float2int_ru(v);
    out[i * 6 + 4] = (int)rintf(v);
    out[i * 6 + 5] = (int)truncf(v);
}

static bool near(double got, double want, double rel, double abs_) {
    return fabs(got - want) <= abs_ + rel * fabs(want);
}

static unsigned brev(unsigned u) {
    unsigned r = 0;
    for (int b = 0; b < 32; b++) if (u & (1u << b)) r |= 1u << (31 - b);
    return r;
}

static unsigned byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = ((unsigned long long)y << 32) | x;
    unsigned r = 0;
    for (int k = 0; k < 4; k++) {
        unsigned sel = (s >> (4 * k)) & 7;
        r |= (unsigned)((v >> (8 * sel)) & 0xff) << (8 * k);
    }
    return r;
}

int main() {
    const int n = 500;
    std::vector<float> xf(n);
    std::vector<double> xd(n);
    std::vector<int> xi(n);
    for (int i = 0; i < n; i++) {
        xf[i] = (i - 250) * 0.037f;
        xd[i] = (i - 250) * 0.0123;
        xi[i] = (int)((i * 2654435761u) ^ (i << 7)) - 1000 * i;
    }
    xi[0] = 0;
    xi[1] = -1;
    xi[2] = 0x7fffffff;
    xi[3] = (int)0x80000000u;
    float* dxf; double* dxd; int* dxi;
    float* of; double* od; long long* oi; int* oc;
    CHECK(cudaMalloc(&dxf, n * sizeof(float)));
    CHECK(cudaMalloc(&dxd, n * sizeof(double)));
    CHECK(cudaMalloc(&dxi, n * sizeof(int)));
    CHECK(cudaMalloc(&of, n * NF * sizeof(float)));
    CHECK(cudaMalloc(&od, n * 8 * sizeof(double)));
    CHECK(cudaMalloc(&oi, n * NI * sizeof(long long)));
    CHECK(cudaMalloc(&oc, n * 6 * sizeof(int)));
    CHECK(cudaMemcpy(dxf, xf.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dxd, xd.data(), n * sizeof(double), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dxi, xi.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    fmath<<<(n + 127) / 128, 128>>>(dxf, of, n);
    CHECK_LAUNCH();
    dmath<<<(n + 127) / 128, 128>>>(dxd, od, n);
    CHECK_LAUNCH();
    imath<<<(n + 127) / 128, 128>>>(dxi, oi, n);
    CHECK_LAUNCH();
    // Conversions: include exact halves to check round-to-nearest-even.
    std::vector<float> cv(n);
    for (int i = 0; i < n; i++) cv[i] = (i - 250) * 0.25f;
    CHECK(cudaMemcpy(dxf, cv.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    conv<<<(n + 127) / 128, 128>>>(dxf, oc, n);
    CHECK_LAUNCH();
    std::vector<float> hf(n * NF);
    std::vector<double> hd(n * 8);
    std::vector<long long> hi(n * NI);
    std::vector<int> hc(n * 6);
    CHECK(cudaMemcpy(hf.data(), of, hf.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hd.data(), od, hd.size() * sizeof(double), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hi.data(), oi, hi.size() * sizeof(long long), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hc.data(), oc, hc.size() * sizeof(int), cudaMemcpyDeviceToHost));

    for (int i = 0; i < n; i++) {
        double v = xf[i], a = fabs(v) + 0.1f;
        float af = fabsf(xf[i]) + 0.1f;
        const float* o = &hf[i * NF];
        double want[NF] = {sin(v), cos(v), exp(v * 0.1), log(a), sqrt(a), 1 / sqrt(a), pow(af, 1.7),
                           atan2(v, 1.5), tanh(v * 0.3), (double)fmaf(xf[i], 1.25f, -0.5f), exp(v * 0.1), sin(v),
                           v / af, cbrt(v), log2(af) + exp2(v * 0.05),
                           fmin(v, 0.5) + fmax(v, -0.5) + copysign(2.0, v) + floor(v) + ceil(v)};
        for (int k = 0; k < NF; k++) {
            double rel = (k >= 10 && k <= 12) ? 2e-3 : 2e-6;  // fast intrinsics are approximate
            double abs_ = (k >= 10 && k <= 12) ? 2e-3 : 1e-6;
            EXPECT(near(o[k], want[k], rel, abs_), "float fn %d at x=%f: %.9g want %.9g", k, v, o[k], want[k]);
        }
        double dv = xd[i], da = fabs(dv) + 0.1;
        double dw[8] = {sin(dv), exp(dv * 0.1), log(da), sqrt(da), pow(da, 2.5), atan(dv), fma(dv, 3.0, 1.0), dv / da};
        for (int k = 0; k < 8; k++)
            EXPECT(near(hd[i * 8 + k], dw[k], 1e-14, 1e-15), "double fn %d at x=%f: %.17g want %.17g", k, dv, hd[i * 8 + k], dw[k]);

        int iv = xi[i];
        unsigned u = (unsigned)iv;
        unsigned long long w = (unsigned long long)u * 0x100000001ull + 12345;
        long long iw[NI];
        iw[0] = __builtin_popcount(u);
        iw[1] = __builtin_popcountll(w);
        iw[2] = u ? __builtin_clz(u) : 32;
        iw[3] = w ? __builtin_clzll(w) : 64;
        iw[4] = __builtin_ffs(iv);
        iw[5] = brev(u);
        iw[6] = byte_perm(u, 0x76543210u, 0x5140);
        iw[7] = (unsigned)(((unsigned long long)u * 0x9E3779B9u) >> 32);
        iw[8] = (long long)(unsigned long long)(((unsigned __int128)w * 0x9E3779B97F4A7C15ull) >> 64);
        iw[9] = iv / 7;
        iw[10] = iv % 7;
        iw[11] = (long long)iv * iv - (long long)iv * 3;
        iw[12] = (unsigned)(iv > 100 ? iv - 100 : 100 - (long long)iv) + 5;
        iw[13] = (unsigned)(((((unsigned long long)(u ^ 0xffffu)) << 32 | u) << 11) >> 32);  // hi:lo
        iw[14] = (long long)(w >> 3) ^ (long long)(w << 5);
        iw[15] = (int)((float)iv * 0.37f);
        for (int k = 0; k < NI; k++)
            EXPECT(hi[i * NI + k] == iw[k], "int op %d at %d: %lld want %lld", k, iv, hi[i * NI + k], iw[k]);

        float c = cv[i];
        int cw[6] = {(int)nearbyintf(c), (int)c, (int)floorf(c), (int)ceilf(c), (int)rintf(c), (int)truncf(c)};
        for (int k = 0; k < 6; k++)
            EXPECT(hc[i * 6 + k] == cw[k], "conversion %d of %f: %d want %d", k, c, hc[i * 6 + k], cw[k]);
    }
    CHECK(cudaFree(dxf)); CHECK(cudaFree(dxd)); CHECK(cudaFree(dxi));
    CHECK(cudaFree(of)); CHECK(cudaFree(od)); CHECK(cudaFree(oi)); CHECK(cudaFree(oc));
    return finish("math_intrinsics");
}
