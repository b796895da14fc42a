// Floating point on the CPU device: IEEE f32/f64 arithmetic in every rounding mode, conversions
// between floats, integers, half and bfloat16, comparisons with NaN, approximate intrinsics and
// the inlined math library. tests/programs/c/float_ops.c holds the references and tolerances.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define NF32 42
#define NF64 34
#define NCVT32 41
#define NCVT64 17
#define NAPPROX 16
#define NMATH64 12

// Comparison and classification bits (the same in both precisions).
template <typename T>
__device__ __forceinline__ unsigned compare_bits(T a, T b, T c) {
    unsigned f = 0;
    f |= (unsigned)isnan(a) << 0;
    f |= (unsigned)isinf(a) << 1;
    f |= (unsigned)isfinite(a) << 2;
    f |= (unsigned)signbit(a) << 3;
    f |= (unsigned)(a < b) << 4;
    f |= (unsigned)(a <= b) << 5;
    f |= (unsigned)(a == b) << 6;
    f |= (unsigned)(a != b) << 7;
    f |= (unsigned)(a > b) << 8;
    f |= (unsigned)(a >= b) << 9;
    f |= (unsigned)!(a < b) << 10;
    f |= (unsigned)!(a >= b) << 11;
    f |= (unsigned)(isnan(a) || isnan(b)) << 12;
    f |= (unsigned)(a < b && b < c) << 13;
    f |= (unsigned)(a < b || b > c) << 14;
    f |= (unsigned)(a == a) << 15;
    return f;
}

extern "C" __global__ void f32_exact(const float* A, const float* B, const float* C, float* out,
                                     unsigned* flags, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float a = A[i], b = B[i], c = C[i];
    float* o = out + (size_t)i * NF32;
    o[0] = a + b;
    o[1] = a - b;
    o[2] = a * b;
    o[3] = fmaf(a, b, c);
    o[4] = a / b;
    o[5] = sqrtf(a);
    o[6] = __frcp_rn(a);
    o[7] = __fadd_rz(a, b);
    o[8] = __fadd_ru(a, b);
    o[9] = __fadd_rd(a, b);
    o[10] = __fsub_rz(a, b);
    o[11] = __fmul_rz(a, b);
    o[12] = __fmul_ru(a, b);
    o[13] = __fmul_rd(a, b);
    o[14] = __fdiv_rz(a, b);
    o[15] = __fdiv_ru(a, b);
    o[16] = __fdiv_rd(a, b);
    o[17] = __fsqrt_rz(a);
    o[18] = __fsqrt_ru(a);
    o[19] = __fsqrt_rd(a);
    o[20] = __frcp_rz(a);
    o[21] = __frcp_ru(a);
    o[22] = __frcp_rd(a);
    o[23] = __fmaf_rz(a, b, c);
    o[24] = __fmaf_ru(a, b, c);
    o[25] = __fmaf_rd(a, b, c);
    o[26] = fminf(a, b);
    o[27] = fmaxf(a, b);
    o[28] = fabsf(a);
    o[29] = -a;
    o[30] = copysignf(a, b);
    o[31] = floorf(a);
    o[32] = ceilf(a);
    o[33] = truncf(a);
    o[34] = rintf(a);
    o[35] = roundf(a);
    o[36] = __saturatef(a);
    o[37] = fmodf(a, b);
    o[38] = ldexpf(a, i % 61 - 30);
    o[39] = __fadd_rn(__fmul_rn(a, b), c);
    o[40] = (float)((double)a * (double)b);
    o[41] = __fsub_ru(a, b);
    flags[i] = compare_bits(a, b, c);
}

extern "C" __global__ void f64_exact(const double* A, const double* B, const double* C, double* out,
                                     unsigned* flags, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double a = A[i], b = B[i], c = C[i];
    double* o = out + (size_t)i * NF64;
    o[0] = a + b;
    o[1] = a - b;
    o[2] = a * b;
    o[3] = fma(a, b, c);
    o[4] = a / b;
    o[5] = sqrt(a);
    o[6] = __drcp_rn(a);
    o[7] = __dadd_rz(a, b);
    o[8] = __dadd_ru(a, b);
    o[9] = __dadd_rd(a, b);
    o[10] = __dsub_rz(a, b);
    o[11] = __dmul_rz(a, b);
    o[12] = __dmul_ru(a, b);
    o[13] = __dmul_rd(a, b);
    o[14] = __ddiv_rz(a, b);
    o[15] = __ddiv_ru(a, b);
    o[16] = __ddiv_rd(a, b);
    o[17] = __dsqrt_rz(a);
    o[18] = __dsqrt_ru(a);
    o[19] = __dsqrt_rd(a);
    o[20] = __drcp_rz(a);
    o[21] = __fma_rz(a, b, c);
    o[22] = __fma_ru(a, b, c);
    o[23] = __fma_rd(a, b, c);
    o[24] = fmin(a, b);
    o[25] = fmax(a, b);
    o[26] = fabs(a);
    o[27] = copysign(a, b);
    o[28] = floor(a);
    o[29] = ceil(a);
    o[30] = trunc(a);
    o[31] = rint(a);
    o[32] = round(a);
    o[33] = __dadd_rn(__dmul_rn(a, b), c);
    flags[i] = compare_bits(a, b, c);
}

// Conversions from f32 (and from integers to floats): results as raw 64-bit slots.
extern "C" __global__ void cvt32(const float* A, const long long* L, unsigned long long* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float a = A[i];
    long long l = L[i];
    unsigned long long* o = out + (size_t)i * NCVT32;
    o[0] = (unsigned)(int)a;
    o[1] = (unsigned)__float2int_rn(a);
    o[2] = (unsigned)__float2int_rd(a);
    o[3] = (unsigned)__float2int_ru(a);
    o[4] = (unsigned)a;
    o[5] = __float2uint_rn(a);
    o[6] = __float2uint_rd(a);
    o[7] = __float2uint_ru(a);
    o[8] = (long long)a;
    o[9] = __float2ll_rn(a);
    o[10] = __float2ll_rd(a);
    o[11] = __float2ll_ru(a);
    o[12] = (unsigned long long)a;
    o[13] = __float2ull_rn(a);
    o[14] = __double_as_longlong((double)a);
    o[15] = __half_as_ushort(__float2half_rn(a));
    o[16] = __half_as_ushort(__float2half_rz(a));
    o[17] = __half_as_ushort(__float2half_ru(a));
    o[18] = __half_as_ushort(__float2half_rd(a));
    o[19] = __float_as_uint(__half2float(__float2half(a)));
    o[20] = __bfloat16_as_ushort(__float2bfloat16(a));
    o[21] = __bfloat16_as_ushort(__float2bfloat16_rz(a));
    o[22] = __bfloat16_as_ushort(__float2bfloat16_rd(a));
    o[23] = __bfloat16_as_ushort(__float2bfloat16_ru(a));
    int li = (int)l;
    unsigned lu = (unsigned)l;
    o[24] = __float_as_uint(__int2float_rn(li));
    o[25] = __float_as_uint(__int2float_rz(li));
    o[26] = __float_as_uint(__int2float_ru(li));
    o[27] = __float_as_uint(__int2float_rd(li));
    o[28] = __float_as_uint(__uint2float_rn(lu));
    o[29] = __float_as_uint(__uint2float_rz(lu));
    o[30] = __float_as_uint(__ll2float_rn(l));
    o[31] = __float_as_uint(__ll2float_rz(l));
    o[32] = __float_as_uint(__ll2float_ru(l));
    o[33] = __float_as_uint(__ll2float_rd(l));
    o[34] = __float_as_uint(__ull2float_rn((unsigned long long)l));
    o[35] = __double_as_longlong(__ll2double_rn(l));
    o[36] = __double_as_longlong(__ll2double_rz(l));
    o[37] = __double_as_longlong(__ull2double_ru((unsigned long long)l));
    o[38] = __double_as_longlong(__int2double_rn(li));
    o[39] = __float_as_uint((float)(short)l);
    o[40] = __double_as_longlong((double)(unsigned char)l);
}

extern "C" __global__ void cvt64(const double* D, unsigned long long* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double d = D[i];
    unsigned long long* o = out + (size_t)i * NCVT64;
    o[0] = (unsigned)(int)d;
    o[1] = (unsigned)__double2int_rn(d);
    o[2] = (unsigned)__double2int_rd(d);
    o[3] = (unsigned)__double2int_ru(d);
    o[4] = __double2uint_rn(d);
    o[5] = (unsigned)d;
    o[6] = (long long)d;
    o[7] = __double2ll_rn(d);
    o[8] = __double2ll_rd(d);
    o[9] = __double2ull_ru(d);
    o[10] = (unsigned long long)d;
    o[11] = __float_as_uint(__double2float_rn(d));
    o[12] = __float_as_uint(__double2float_rz(d));
    o[13] = __float_as_uint(__double2float_ru(d));
    o[14] = __float_as_uint(__double2float_rd(d));
    o[15] = __half_as_ushort(__double2half(d));
    o[16] = __bfloat16_as_ushort(__double2bfloat16(d));
}

// Half-precision arithmetic (native f16 instructions on sm_75).
extern "C" __global__ void half_ops(const unsigned short* H, unsigned short* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    __half a = __ushort_as_half(H[2 * i]), b = __ushort_as_half(H[2 * i + 1]);
    unsigned short* o = out + (size_t)i * 8;
    o[0] = __half_as_ushort(__hadd(a, b));
    o[1] = __half_as_ushort(__hsub(a, b));
    o[2] = __half_as_ushort(__hmul(a, b));
    __half2 p = __halves2half2(a, b), q = __halves2half2(b, a);
    __half2 s = __hadd2(p, q), m = __hmul2(p, q);
    o[3] = __half_as_ushort(__low2half(s));
    o[4] = __half_as_ushort(__high2half(s));
    o[5] = __half_as_ushort(__low2half(m));
    o[6] = __half_as_ushort(__high2half(m));
    o[7] = (unsigned short)(__hlt(a, b) | (__hge(a, b) << 1) | (__heq(a, b) << 2) | (__hisnan(a) << 3));
}

// Approximate intrinsics and the single-precision math library (x: moderate, y: positive).
extern "C" __global__ void f32_approx(const float* X, const float* Y, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = X[i], y = Y[i];
    float* o = out + (size_t)i * NAPPROX;
    o[0] = __expf(x);
    o[1] = __logf(y);
    o[2] = __sinf(x);
    o[3] = __cosf(x);
    o[4] = rsqrtf(y);
    o[5] = __fdividef(x, y);
    o[6] = tanhf(x);
    o[7] = expf(x);
    o[8] = logf(y);
    o[9] = sinf(x);
    o[10] = cosf(x);
    o[11] = powf(y, x * 0.25f);
    o[12] = exp2f(x);
    o[13] = log2f(y);
    o[14] = sinf(x * 12345.678f);
    o[15] = atan2f(x, y - 1.0f);
}

// The double-precision math library.
extern "C" __global__ void f64_math(const double* X, const double* Y, double* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double x = X[i], y = Y[i];
    double* o = out + (size_t)i * NMATH64;
    o[0] = exp(x);
    o[1] = log(y);
    o[2] = sin(x);
    o[3] = cos(x);
    o[4] = pow(y, x * 0.25);
    o[5] = tanh(x);
    o[6] = rsqrt(y);
    o[7] = cbrt(x);
    o[8] = atan2(x, y - 1.0);
    o[9] = sin(x * 1.0e7);
    o[10] = log1p(y);
    o[11] = expm1(x);
}
