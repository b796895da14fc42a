/* Integer arithmetic and bit operations (tests/kernels/int_ops.cu): 32- and 64-bit add, sub,
 * mul.lo/hi/wide, mad, div/rem (division by zero is executed but its value not checked),
 * min/max/abs/neg, popc/clz/brev/ffs, bfe/bfi/bfind, prmt, funnel shifts, lop3, shifts by
 * amounts >= the width, saturating add/sub, 8/16-bit conversions and carry chains, each
 * compared exactly with a reference computed here from the PTX ISA definitions. */
#include "kernel_common.h"
#include <limits.h>

#define NOPS32 84
#define NOPS64 32

static const char *names32[NOPS32] = {
    "add", "sub", "mul.lo", "mulhi", "umulhi", "mul.wide.s32 lo", "mul.wide.s32 hi",
    "mul.wide.u32 lo", "mul.wide.u32 hi", "mad.lo", "div.s32", "rem.s32", "div.u32", "rem.u32",
    "min.s32", "max.s32", "min.u32", "max.u32", "abs", "neg", "popc", "clz", "brev", "ffs",
    "bfe.u32", "bfe.s32", "bfi.b32", "bfind.u32", "bfind.s32", "byte_perm", "funnelshift_l",
    "funnelshift_lc", "funnelshift_r", "funnelshift_rc", "lop3 0x96", "lop3 0xE8", "lop3 0xCA",
    "lop3 0x1E", "lop3 0x80", "lop3 0x01", "boolean expr", "shl.b32", "shr.u32", "shr.s32",
    "C shifts", "sad.s32", "sad.u32", "mul24.s32", "mul24.u32", "add.sat.s32", "sub.sat.s32",
    "s8+s16", "u8*u16", "short arith", "mul.wide.u16", "mul.hi.s16", "dp4a.s32.s32",
    "dp4a.u32.u32", "dp2a.lo.s32.s32", "dp2a.hi.u32.u32", "vabsdiffu4", "vsadu4",
    "vabsdiffu2", "vsadu2", "vabsdiffs4", "vadd4", "vaddss4", "vaddus4", "vsub4", "vsubss2",
    "vmaxu4", "vmins4", "vmaxs2", "vminu2", "vavgu4", "vhaddu4", "vcmpgtu4", "vcmpeq4", "vsetges4",
    "vcmplts2", "vneg2", "vabsss4", "fns", "fns +1"};

static const char *names64[NOPS64] = {
    "add", "sub", "mul.lo", "mul64hi", "umul64hi", "div.s64", "rem.s64", "div.u64", "rem.u64",
    "min.s64", "max.s64", "min.u64", "max.u64", "abs", "neg", "popc", "clz", "brev", "ffs",
    "shl.b64", "shr.u64", "shr.s64", "bfe.u64", "bfe.s64", "bfi.b64", "bfind.u64", "bfind.s64",
    "mad.lo.s64", "C shifts", "mixed mul", "u64->f64->u64", "s64 div by short"};

/* PTX ISA bfe / bfi / bfind, bit by bit. */
static uint64_t ref_bfe(uint64_t a, uint32_t b, uint32_t c, int is_signed, int msb) {
    uint32_t pos = b & 0xff, len = c & 0xff;
    int sbit = 0;
    if (is_signed && len != 0) {
        uint32_t p = pos + len - 1;
        if (p > (uint32_t)msb) p = msb;
        sbit = (a >> p) & 1;
    }
    uint64_t d = 0;
    for (int i = 0; i <= msb; i++) {
        int bit = (i < (int)len && pos + i <= (uint32_t)msb) ? (int)((a >> (pos + i)) & 1) : sbit;
        d |= (uint64_t)bit << i;
    }
    return d;
}

static uint64_t ref_bfi(uint64_t a, uint64_t b, uint32_t c, uint32_t dd, int msb) {
    uint32_t pos = c & 0xff, len = dd & 0xff;
    uint64_t f = b;
    for (uint32_t i = 0; i < len && pos + i <= (uint32_t)msb; i++) {
        f &= ~(1ull << (pos + i));
        f |= ((a >> i) & 1) << (pos + i);
    }
    return f;
}

static uint32_t ref_bfind(uint64_t a, int is_signed, int bits) {
    uint64_t m = bits == 64 ? ~0ull : (1ull << bits) - 1;
    a &= m;
    if (is_signed && ((a >> (bits - 1)) & 1)) a = ~a & m;
    for (int i = bits - 1; i >= 0; i--)
        if ((a >> i) & 1) return i;
    return 0xffffffffu;
}

static uint32_t ref_lop3(uint32_t a, uint32_t b, uint32_t c, uint8_t lut) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i++) {
        int idx = (((a >> i) & 1) << 2) | (((b >> i) & 1) << 1) | ((c >> i) & 1);
        r |= (uint32_t)((lut >> idx) & 1) << i;
    }
    return r;
}

static uint32_t ref_byte_perm(uint32_t x, uint32_t y, uint32_t s) {
    uint64_t v = ((uint64_t)y << 32) | x;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) r |= (uint32_t)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}

static uint32_t ref_brev32(uint32_t x) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1) << (31 - i);
    return r;
}
static uint64_t ref_brev64(uint64_t x) {
    uint64_t r = 0;
    for (int i = 0; i < 64; i++) r |= ((x >> i) & 1) << (63 - i);
    return r;
}
static int ref_popc(uint64_t x) {
    int n = 0;
    for (; x; x &= x - 1) n++;
    return n;
}
static int ref_clz(uint64_t x, int bits) {
    int n = 0;
    for (int i = bits - 1; i >= 0 && !((x >> i) & 1); i--) n++;
    return n;
}
static int ref_ffs(uint64_t x, int bits) {
    for (int i = 0; i < bits; i++)
        if ((x >> i) & 1) return i + 1;
    return 0;
}
/* Lane k (of `bits` bits) of x, zero- or sign-extended. */
static int64_t lane(uint32_t x, int k, int bits, int is_signed) {
    uint32_t v = (x >> (k * bits)) & ((1u << bits) - 1);
    if (is_signed && (v >> (bits - 1))) return (int64_t)v - ((int64_t)1 << bits);
    return v;
}
static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* CUDA's SIMD intrinsics, lane by lane. */
enum { V_ABSDIFF, V_ADD, V_SUB, V_MAX, V_MIN, V_AVG, V_HADD, V_CMPGT, V_CMPEQ, V_SETGE, V_CMPLT, V_NEG, V_ABSSS };
static uint32_t ref_simd(int op, uint32_t a, uint32_t b, int bits, int is_signed, int sat) {
    uint32_t r = 0;
    int64_t lo = is_signed ? -((int64_t)1 << (bits - 1)) : 0;
    int64_t hi = is_signed ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
    uint32_t ones = (1u << bits) - 1;
    for (int k = 0; k < 32 / bits; k++) {
        int64_t x = lane(a, k, bits, is_signed), y = lane(b, k, bits, is_signed), v;
        switch (op) {
        case V_ABSDIFF: v = x > y ? x - y : y - x; break;
        case V_ADD: v = x + y; break;
        case V_SUB: v = x - y; break;
        case V_MAX: v = x > y ? x : y; break;
        case V_MIN: v = x < y ? x : y; break;
        case V_AVG: v = (x + y + 1) >> 1; break;
        case V_HADD: v = (x + y) >> 1; break;
        case V_CMPGT: v = x > y ? ones : 0; break;
        case V_CMPEQ: v = x == y ? ones : 0; break;
        case V_SETGE: v = x >= y ? 1 : 0; break;
        case V_CMPLT: v = x < y ? ones : 0; break;
        case V_NEG: v = -x; break;
        default: v = x < 0 ? -x : x; break;
        }
        if (sat) v = clamp64(v, lo, hi);
        r |= ((uint32_t)v & ones) << (k * bits);
    }
    return r;
}
static uint32_t ref_sad(uint32_t a, uint32_t b, int bits) {
    uint32_t s = 0;
    for (int k = 0; k < 32 / bits; k++) {
        int64_t x = lane(a, k, bits, 0), y = lane(b, k, bits, 0);
        s += (uint32_t)(x > y ? x - y : y - x);
    }
    return s;
}
/* PTX fns: the |offset|-th set bit from base, upwards or downwards. */
static uint32_t ref_fns(uint32_t mask, uint32_t base, int offset) {
    if (offset == 0) return (mask >> base) & 1 ? base : 0xffffffffu;
    int count = (offset < 0 ? -offset : offset) - 1;
    for (int pos = base; pos >= 0 && pos < 32; pos += offset > 0 ? 1 : -1)
        if ((mask >> pos) & 1) {
            if (count == 0) return pos;
            count--;
        }
    return 0xffffffffu;
}

static int32_t sext24(uint32_t x) { return (int32_t)(x << 8) >> 8; }
static int32_t sat32(int64_t v) { return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int32_t)v; }

static void ref32(int32_t a, int32_t b, uint32_t s, uint32_t *o, uint8_t *skip) {
    uint32_t ua = a, ub = b;
    memset(skip, 0, NOPS32);
    o[0] = ua + ub;
    o[1] = ua - ub;
    o[2] = ua * ub;
    o[3] = (uint32_t)(((int64_t)a * b) >> 32);
    o[4] = (uint32_t)(((uint64_t)ua * ub) >> 32);
    int64_t w = (int64_t)a * b;
    o[5] = (uint32_t)w;
    o[6] = (uint32_t)((uint64_t)w >> 32);
    uint64_t uw = (uint64_t)ua * ub;
    o[7] = (uint32_t)uw;
    o[8] = (uint32_t)(uw >> 32);
    o[9] = ua * ub + s;
    if (b == 0) {
        skip[10] = skip[11] = skip[12] = skip[13] = 1;
    } else {
        o[10] = (a == INT_MIN && b == -1) ? (uint32_t)INT_MIN : (uint32_t)(a / b);
        o[11] = (a == INT_MIN && b == -1) ? 0 : (uint32_t)(a % b);
        o[12] = ua / ub;
        o[13] = ua % ub;
    }
    o[14] = a < b ? ua : ub;
    o[15] = a > b ? ua : ub;
    o[16] = ua < ub ? ua : ub;
    o[17] = ua > ub ? ua : ub;
    o[18] = a < 0 ? 0u - ua : ua;
    o[19] = 0u - ua;
    o[20] = ref_popc(ua);
    o[21] = ref_clz(ua, 32);
    o[22] = ref_brev32(ua);
    o[23] = ref_ffs(ua, 32);
    uint32_t pos = s & 0xff, len = (s >> 8) & 0xff;
    o[24] = (uint32_t)ref_bfe(ua, pos, len, 0, 31);
    o[25] = (uint32_t)ref_bfe(ua, pos, len, 1, 31);
    o[26] = (uint32_t)ref_bfi(ub, ua, pos, len, 31);
    o[27] = ref_bfind(ua, 0, 32);
    o[28] = ref_bfind(ua, 1, 32);
    o[29] = ref_byte_perm(ua, ub, s);
    uint64_t hl = ((uint64_t)ub << 32) | ua;
    o[30] = (uint32_t)((hl << (s & 31)) >> 32);
    o[31] = (uint32_t)(s >= 32 ? ua : (hl << s) >> 32);
    o[32] = (uint32_t)(hl >> (s & 31));
    o[33] = (uint32_t)(s >= 32 ? ub : hl >> s);
    o[34] = ref_lop3(ua, ub, s, 0x96);
    o[35] = ref_lop3(ua, ub, s, 0xE8);
    o[36] = ref_lop3(ua, ub, s, 0xCA);
    o[37] = ref_lop3(ua, ub, s, 0x1E);
    o[38] = ref_lop3(ua, ub, s, 0x80);
    o[39] = ref_lop3(ua, ub, s, 0x01);
    o[40] = (ua & ub) ^ (~s | ua) ^ ((ub | s) & ~(ua ^ s));
    uint32_t sh = s & 63;
    o[41] = sh >= 32 ? 0 : ua << sh;
    o[42] = sh >= 32 ? 0 : ua >> sh;
    o[43] = (uint32_t)(sh >= 32 ? (a < 0 ? -1 : 0) : a >> sh);
    o[44] = (ua << (s & 31)) ^ (uint32_t)(a >> (s & 31)) ^ (ua >> ((s >> 3) & 31));
    o[45] = (a < b ? ub - ua : ua - ub) + s;
    o[46] = (ua < ub ? ub - ua : ua - ub) + s;
    o[47] = (uint32_t)((int64_t)sext24(ua) * sext24(ub));
    o[48] = (ua & 0xffffff) * (ub & 0xffffff);
    o[49] = (uint32_t)sat32((int64_t)a + b);
    o[50] = (uint32_t)sat32((int64_t)a - b);
    o[51] = (uint32_t)((int)(signed char)a + (int)(short)b);
    o[52] = (uint32_t)(unsigned char)a * (uint32_t)(unsigned short)b;
    short sa = (short)a, sb = (short)b;
    o[53] = (unsigned short)(short)(sa * sb + sa / (sb | 1));
    o[54] = (uint32_t)(unsigned short)a * (unsigned short)b;
    o[55] = (uint32_t)(int32_t)(short)(((int32_t)sa * sb) >> 16);
    uint32_t d4s = s, d4u = s, d2lo = s, d2hi = s;
    for (int i = 0; i < 4; i++) {
        d4s += (uint32_t)((int32_t)(int8_t)(ua >> (8 * i)) * (int32_t)(int8_t)(ub >> (8 * i)));
        d4u += ((ua >> (8 * i)) & 0xff) * ((ub >> (8 * i)) & 0xff);
    }
    for (int i = 0; i < 2; i++) {
        d2lo += (uint32_t)((int32_t)(int16_t)(ua >> (16 * i)) * (int32_t)(int8_t)(ub >> (8 * i)));
        d2hi += ((ua >> (16 * i)) & 0xffff) * ((ub >> (8 * (i + 2))) & 0xff);
    }
    o[56] = d4s;
    o[57] = d4u;
    o[58] = d2lo;
    o[59] = d2hi;
    o[60] = ref_simd(V_ABSDIFF, ua, ub, 8, 0, 0);
    o[61] = ref_sad(ua, ub, 8);
    o[62] = ref_simd(V_ABSDIFF, ua, ub, 16, 0, 0);
    o[63] = ref_sad(ua, ub, 16);
    o[64] = ref_simd(V_ABSDIFF, ua, ub, 8, 1, 0);
    o[65] = ref_simd(V_ADD, ua, ub, 8, 0, 0);
    o[66] = ref_simd(V_ADD, ua, ub, 8, 1, 1);
    o[67] = ref_simd(V_ADD, ua, ub, 8, 0, 1);
    o[68] = ref_simd(V_SUB, ua, ub, 8, 0, 0);
    o[69] = ref_simd(V_SUB, ua, ub, 16, 1, 1);
    o[70] = ref_simd(V_MAX, ua, ub, 8, 0, 0);
    o[71] = ref_simd(V_MIN, ua, ub, 8, 1, 0);
    o[72] = ref_simd(V_MAX, ua, ub, 16, 1, 0);
    o[73] = ref_simd(V_MIN, ua, ub, 16, 0, 0);
    o[74] = ref_simd(V_AVG, ua, ub, 8, 0, 0);
    o[75] = ref_simd(V_HADD, ua, ub, 8, 0, 0);
    o[76] = ref_simd(V_CMPGT, ua, ub, 8, 0, 0);
    o[77] = ref_simd(V_CMPEQ, ua, ub, 8, 0, 0);
    o[78] = ref_simd(V_SETGE, ua, ub, 8, 1, 0);
    o[79] = ref_simd(V_CMPLT, ua, ub, 16, 1, 0);
    o[80] = ref_simd(V_NEG, ua, 0, 16, 1, 0);
    o[81] = ref_simd(V_ABSSS, ua, 0, 8, 1, 1);
    o[82] = ref_fns(ua, s & 31, (int)((s >> 8) & 7) - 3);
    o[83] = ref_fns(ub, (s >> 16) & 31, 1);
}

static void ref64(int64_t a, int64_t b, uint32_t s, uint64_t *o, uint8_t *skip) {
    uint64_t ua = a, ub = b;
    memset(skip, 0, NOPS64);
    o[0] = ua + ub;
    o[1] = ua - ub;
    o[2] = ua * ub;
    o[3] = (uint64_t)(((__int128)a * b) >> 64);
    o[4] = (uint64_t)(((unsigned __int128)ua * ub) >> 64);
    if (b == 0) {
        skip[5] = skip[6] = skip[7] = skip[8] = 1;
    } else {
        o[5] = (a == LLONG_MIN && b == -1) ? (uint64_t)LLONG_MIN : (uint64_t)(a / b);
        o[6] = (a == LLONG_MIN && b == -1) ? 0 : (uint64_t)(a % b);
        o[7] = ua / ub;
        o[8] = ua % ub;
    }
    o[9] = a < b ? ua : ub;
    o[10] = a > b ? ua : ub;
    o[11] = ua < ub ? ua : ub;
    o[12] = ua > ub ? ua : ub;
    o[13] = a < 0 ? 0 - ua : ua;
    o[14] = 0 - ua;
    o[15] = ref_popc(ua);
    o[16] = ref_clz(ua, 64);
    o[17] = ref_brev64(ua);
    o[18] = ref_ffs(ua, 64);
    uint32_t sh = s & 127;
    o[19] = sh >= 64 ? 0 : ua << sh;
    o[20] = sh >= 64 ? 0 : ua >> sh;
    o[21] = (uint64_t)(sh >= 64 ? (a < 0 ? -1 : 0) : a >> sh);
    uint32_t pos = s & 0xff, len = (s >> 8) & 0xff;
    o[22] = ref_bfe(ua, pos, len, 0, 63);
    o[23] = ref_bfe(ua, pos, len, 1, 63);
    o[24] = ref_bfi(ub, ua, pos, len, 63);
    o[25] = ref_bfind(ua, 0, 64);
    o[26] = ref_bfind(ua, 1, 64);
    o[27] = ua * ub + (uint64_t)s;
    o[28] = (ua << (s & 63)) ^ (uint64_t)(a >> ((s >> 2) & 63)) ^ (ua >> ((s >> 4) & 63));
    o[29] = (uint64_t)(int64_t)(int32_t)a * (uint64_t)(uint32_t)b;
    o[30] = (uint64_t)(double)(ua >> 3);
    o[31] = (uint64_t)((int64_t)(int32_t)(a ^ b) / (int64_t)(short)(s | 1));
}

static uint32_t rand_shift_word(void) {
    uint32_t r = rng32();
    uint32_t pos = rng32() % 72, len = rng32() % 72;
    uint32_t hi = (rng32() & 1) ? (r & 0xffff0000u) : 0;
    return hi | (len << 8) | pos;
}

int main(int argc, char **argv) {
    if (!usage_ok(argc, argv)) return 2;
    setup();
    CUmodule mod;
    CHECK(cuModuleLoad(&mod, argv[1]));
    CUfunction f32 = get_fn(mod, "int32_ops"), f64 = get_fn(mod, "int64_ops"),
               fc = get_fn(mod, "carry_ops");

    /* 32-bit: every pair of edge values, then random operands. */
    static const int32_t edge32[] = {0, 1, -1, 2, -2, 3, -7, 31, 32, 33, 0x7fff, 0x8000, 0xffff,
                                     0x10000, 0x55555555, (int32_t)0xaaaaaaaau, (int32_t)0x80000001u,
                                     INT_MIN, INT_MAX, INT_MIN + 1, 123456789};
    const int ne = sizeof edge32 / sizeof edge32[0];
    const int n = 1000;
    int32_t *A = malloc(n * 4), *B = malloc(n * 4);
    uint32_t *S = malloc(n * 4);
    for (int i = 0; i < n; i++) {
        if (i < ne * ne) {
            A[i] = edge32[i / ne];
            B[i] = edge32[i % ne];
        } else {
            A[i] = (int32_t)rng32() >> (rng32() % 24);
            B[i] = (int32_t)rng32() >> (rng32() % 24);
        }
        S[i] = rand_shift_word();
    }
    CUdeviceptr dA = dev_upload(A, n * 4), dB = dev_upload(B, n * 4), dS = dev_upload(S, n * 4);
    CUdeviceptr dO = dev_alloc((size_t)n * NOPS32 * 4);
    int nn = n;
    void *p32[] = {&dA, &dB, &dS, &dO, &nn};
    launch1(f32, (n + 127) / 128, 128, 0, p32);
    uint32_t *O = malloc((size_t)n * NOPS32 * 4);
    dev_download(O, dO, (size_t)n * NOPS32 * 4);
    for (int i = 0; i < n; i++) {
        uint32_t want[NOPS32];
        uint8_t skip[NOPS32];
        ref32(A[i], B[i], S[i], want, skip);
        for (int k = 0; k < NOPS32; k++) {
            if (skip[k]) continue;
            char what[96];
            snprintf(what, sizeof what, "32-bit %s (a=%d b=%d s=0x%x)", names32[k], A[i], B[i], S[i]);
            check_u32(what, i, O[(size_t)i * NOPS32 + k], want[k]);
        }
    }

    /* 64-bit. */
    static const int64_t edge64[] = {0, 1, -1, 2, -3, 63, 64, 65, 0xffffffffll, 0x100000000ll,
                                     -0x100000000ll, 0x5555555555555555ll, (int64_t)0xaaaaaaaaaaaaaaaaull,
                                     LLONG_MIN, LLONG_MAX, LLONG_MIN + 1, 1234567890123456789ll};
    const int ne64 = sizeof edge64 / sizeof edge64[0];
    int64_t *A64 = malloc(n * 8), *B64 = malloc(n * 8);
    for (int i = 0; i < n; i++) {
        if (i < ne64 * ne64) {
            A64[i] = edge64[i / ne64];
            B64[i] = edge64[i % ne64];
        } else {
            A64[i] = (int64_t)rng64() >> (rng32() % 56);
            B64[i] = (int64_t)rng64() >> (rng32() % 56);
        }
        S[i] = rand_shift_word();
        if (rng32() & 1) S[i] = (S[i] & ~0xffu) | (rng32() % 140);
    }
    CUdeviceptr dA64 = dev_upload(A64, n * 8), dB64 = dev_upload(B64, n * 8);
    CHECK(cuMemcpyHtoD(dS, S, n * 4));
    CUdeviceptr dO64 = dev_alloc((size_t)n * NOPS64 * 8);
    void *p64[] = {&dA64, &dB64, &dS, &dO64, &nn};
    launch1(f64, (n + 63) / 64, 64, 0, p64);
    uint64_t *O64 = malloc((size_t)n * NOPS64 * 8);
    dev_download(O64, dO64, (size_t)n * NOPS64 * 8);
    for (int i = 0; i < n; i++) {
        uint64_t want[NOPS64];
        uint8_t skip[NOPS64];
        ref64(A64[i], B64[i], S[i], want, skip);
        for (int k = 0; k < NOPS64; k++) {
            if (skip[k]) continue;
            char what[128];
            snprintf(what, sizeof what, "64-bit %s (a=%lld b=%lld s=0x%x)", names64[k],
                     (long long)A64[i], (long long)B64[i], S[i]);
            check_u64(what, i, O64[(size_t)i * NOPS64 + k], want[k]);
        }
    }

    /* Carry chains on 128-bit numbers. */
    const int nc = 256;
    uint32_t *X = malloc(nc * 16), *Y = malloc(nc * 16), *OC = malloc(nc * 80);
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < 4; j++) {
            /* Limbs of all ones or zero make long carry/borrow ripples. */
            uint32_t kind = rng32() % 4;
            X[4 * i + j] = kind == 0 ? 0xffffffffu : kind == 1 ? 0 : rng32();
            kind = rng32() % 4;
            Y[4 * i + j] = kind == 0 ? 0xffffffffu : kind == 1 ? 1 : rng32();
        }
    CUdeviceptr dX = dev_upload(X, nc * 16), dY = dev_upload(Y, nc * 16), dOC = dev_alloc(nc * 80);
    int ncc = nc;
    void *pc[] = {&dX, &dY, &dOC, &ncc};
    launch1(fc, 4, 64, 0, pc);
    dev_download(OC, dOC, nc * 80);
    for (int i = 0; i < nc; i++) {
        const uint32_t *x = X + 4 * i, *y = Y + 4 * i, *o = OC + 20 * i;
        unsigned __int128 xv = 0, yv = 0;
        for (int j = 3; j >= 0; j--) {
            xv = (xv << 32) | x[j];
            yv = (yv << 32) | y[j];
        }
        unsigned __int128 sum = xv + yv, diff = xv - yv;
        for (int j = 0; j < 4; j++) {
            check_u32("add.cc/addc 32-bit limbs", i * 4 + j, o[j], (uint32_t)(sum >> (32 * j)));
            check_u32("sub.cc/subc 32-bit limbs", i * 4 + j, o[4 + j], (uint32_t)(diff >> (32 * j)));
            check_u32("add.cc/addc 64-bit limbs", i * 4 + j, o[8 + j], (uint32_t)(sum >> (32 * j)));
        }
        check_u32("carry out", i, o[12], sum < xv);
        uint64_t xl = (uint64_t)xv, yl = (uint64_t)yv;
        unsigned __int128 prod = (unsigned __int128)xl * yl;
        for (int j = 0; j < 4; j++)
            check_u32("mad.cc/madc product limb", i * 4 + j, o[13 + j], (uint32_t)(prod >> (32 * j)));
        uint64_t ph = (uint64_t)(prod >> 64), pl = (uint64_t)prod;
        check_u32("umul64hi", i, o[17], (uint32_t)ph ^ (uint32_t)(ph >> 32));
        check_u32("mul.lo.u64", i, o[18], (uint32_t)pl ^ (uint32_t)(pl >> 32));
        check_u32("borrow out", i, o[19], xl < yl ? 0xffffffffu : 0);
    }

    CHECK(cuModuleUnload(mod));
    free(A); free(B); free(S); free(O); free(A64); free(B64); free(O64);
    free(X); free(Y); free(OC);
    return finish("int_ops");
}
