// Integer arithmetic and bit operations: every thread applies a fixed list of operations to its
// operands and stores each result in its own slot; tests/programs/c/int_ops.c recomputes them.
// Inline PTX is used where C++ would be undefined (shifts by >= the width) or where nvcc never
// emits the instruction on its own (bfe, bfi, bfind, lop3, carry chains).

#define NOPS32 84
#define NOPS64 32

__device__ __forceinline__ unsigned asm_bfe_u32(unsigned a, unsigned p, unsigned l) {
    unsigned r;
    asm("bfe.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(p), "r"(l));
    return r;
}
__device__ __forceinline__ unsigned asm_bfe_s32(unsigned a, unsigned p, unsigned l) {
    unsigned r;
    asm("bfe.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(p), "r"(l));
    return r;
}
__device__ __forceinline__ unsigned asm_bfi_b32(unsigned f, unsigned b, unsigned p, unsigned l) {
    unsigned r;
    asm("bfi.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(f), "r"(b), "r"(p), "r"(l));
    return r;
}
#define LOP3(r, a, b, c, lut) asm("lop3.b32 %0, %1, %2, %3, " #lut ";" : "=r"(r) : "r"(a), "r"(b), "r"(c))

extern "C" __global__ void int32_ops(const int* A, const int* B, const unsigned* S, unsigned* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int a = A[i], b = B[i];
    unsigned s = S[i];
    unsigned ua = (unsigned)a, ub = (unsigned)b;
    unsigned* o = out + (size_t)i * NOPS32;
    unsigned r;
    o[0] = a + b;
    o[1] = a - b;
    o[2] = a * b;
    o[3] = __mulhi(a, b);
    o[4] = __umulhi(ua, ub);
    long long w = (long long)a * b;
    o[5] = (unsigned)w;
    o[6] = (unsigned)(w >> 32);
    unsigned long long uw = (unsigned long long)ua * ub;
    o[7] = (unsigned)uw;
    o[8] = (unsigned)(uw >> 32);
    o[9] = a * b + (int)s;
    o[10] = a / b;  // b == 0 is executed but not checked
    o[11] = a % b;
    o[12] = ua / ub;
    o[13] = ua % ub;
    o[14] = min(a, b);
    o[15] = max(a, b);
    o[16] = umin(ua, ub);
    o[17] = umax(ua, ub);
    o[18] = abs(a);
    o[19] = -a;
    o[20] = __popc(ua);
    o[21] = __clz(a);
    o[22] = __brev(ua);
    o[23] = __ffs(a);
    unsigned pos = s & 0xff, len = (s >> 8) & 0xff;
    o[24] = asm_bfe_u32(ua, pos, len);
    o[25] = asm_bfe_s32(ua, pos, len);
    o[26] = asm_bfi_b32(ub, ua, pos, len);
    asm("bfind.u32 %0, %1;" : "=r"(r) : "r"(ua));
    o[27] = r;
    asm("bfind.s32 %0, %1;" : "=r"(r) : "r"(ua));
    o[28] = r;
    o[29] = __byte_perm(ua, ub, s);
    o[30] = __funnelshift_l(ua, ub, s);
    o[31] = __funnelshift_lc(ua, ub, s);
    o[32] = __funnelshift_r(ua, ub, s);
    o[33] = __funnelshift_rc(ua, ub, s);
    LOP3(r, ua, ub, s, 0x96);
    o[34] = r;
    LOP3(r, ua, ub, s, 0xE8);
    o[35] = r;
    LOP3(r, ua, ub, s, 0xCA);
    o[36] = r;
    LOP3(r, ua, ub, s, 0x1E);
    o[37] = r;
    LOP3(r, ua, ub, s, 0x80);
    o[38] = r;
    LOP3(r, ua, ub, s, 0x01);
    o[39] = r;
    o[40] = (ua & ub) ^ (~s | ua) ^ ((ub | s) & ~(ua ^ s));
    unsigned sh = s & 63;  // amounts >= 32 exercise PTX's clamping
    asm("shl.b32 %0, %1, %2;" : "=r"(r) : "r"(ua), "r"(sh));
    o[41] = r;
    asm("shr.u32 %0, %1, %2;" : "=r"(r) : "r"(ua), "r"(sh));
    o[42] = r;
    asm("shr.s32 %0, %1, %2;" : "=r"(r) : "r"(ua), "r"(sh));
    o[43] = r;
    o[44] = (ua << (s & 31)) ^ (unsigned)(a >> (s & 31)) ^ (ua >> ((s >> 3) & 31));
    o[45] = __sad(a, b, s);
    o[46] = __usad(ua, ub, s);
    o[47] = __mul24(a, b);
    o[48] = __umul24(ua, ub);
    asm("add.sat.s32 %0, %1, %2;" : "=r"(r) : "r"(ua), "r"(ub));
    o[49] = r;
    asm("sub.sat.s32 %0, %1, %2;" : "=r"(r) : "r"(ua), "r"(ub));
    o[50] = r;
    o[51] = (int)(signed char)a + (int)(short)b;
    o[52] = (unsigned)(unsigned char)a * (unsigned)(unsigned short)b;
    short sa = (short)a, sb = (short)b;
    o[53] = (unsigned short)(short)(sa * sb + sa / (sb | 1));
    asm("mul.wide.u16 %0, %1, %2;" : "=r"(r) : "h"((unsigned short)a), "h"((unsigned short)b));
    o[54] = r;
    asm("mul.hi.s16 %0, %1, %2;" : "=h"(sa) : "h"(sa), "h"(sb));
    o[55] = (unsigned)(int)sa;
    o[56] = __dp4a(a, b, (int)s);
    o[57] = __dp4a(ua, ub, s);
    o[58] = __dp2a_lo(a, b, (int)s);
    o[59] = __dp2a_hi(ua, ub, s);
    // SIMD intrinsics (nvcc emits vabsdiff2/vabsdiff4 for the absolute differences and sums of
    // absolute differences, and plain integer code for the rest).
    o[60] = __vabsdiffu4(ua, ub);
    o[61] = __vsadu4(ua, ub);
    o[62] = __vabsdiffu2(ua, ub);
    o[63] = __vsadu2(ua, ub);
    o[64] = __vabsdiffs4(ua, ub);
    o[65] = __vadd4(ua, ub);
    o[66] = __vaddss4(ua, ub);
    o[67] = __vaddus4(ua, ub);
    o[68] = __vsub4(ua, ub);
    o[69] = __vsubss2(ua, ub);
    o[70] = __vmaxu4(ua, ub);
    o[71] = __vmins4(ua, ub);
    o[72] = __vmaxs2(ua, ub);
    o[73] = __vminu2(ua, ub);
    o[74] = __vavgu4(ua, ub);
    o[75] = __vhaddu4(ua, ub);
    o[76] = __vcmpgtu4(ua, ub);
    o[77] = __vcmpeq4(ua, ub);
    o[78] = __vsetges4(ua, ub);
    o[79] = __vcmplts2(ua, ub);
    o[80] = __vneg2(ua);
    o[81] = __vabsss4(ua);
    // The n-th set bit (fns), forwards and backwards.
    o[82] = __fns(ua, s & 31, (int)((s >> 8) & 7) - 3);
    o[83] = __fns(ub, (s >> 16) & 31, 1);
}

extern "C" __global__ void int64_ops(const long long* A, const long long* B, const unsigned* S,
                                     unsigned long long* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long a = A[i], b = B[i];
    unsigned s = S[i];
    unsigned long long ua = (unsigned long long)a, ub = (unsigned long long)b, r;
    unsigned long long* o = out + (size_t)i * NOPS64;
    o[0] = a + b;
    o[1] = a - b;
    o[2] = a * b;
    o[3] = __mul64hi(a, b);
    o[4] = __umul64hi(ua, ub);
    o[5] = a / b;  // b == 0 is executed but not checked
    o[6] = a % b;
    o[7] = ua / ub;
    o[8] = ua % ub;
    o[9] = min(a, b);
    o[10] = max(a, b);
    o[11] = ullmin(ua, ub);
    o[12] = ullmax(ua, ub);
    o[13] = llabs(a);
    o[14] = -a;
    o[15] = __popcll(ua);
    o[16] = __clzll(a);
    o[17] = __brevll(ua);
    o[18] = __ffsll(a);
    unsigned sh = s & 127;
    asm("shl.b64 %0, %1, %2;" : "=l"(r) : "l"(ua), "r"(sh));
    o[19] = r;
    asm("shr.u64 %0, %1, %2;" : "=l"(r) : "l"(ua), "r"(sh));
    o[20] = r;
    asm("shr.s64 %0, %1, %2;" : "=l"(r) : "l"(ua), "r"(sh));
    o[21] = r;
    unsigned pos = s & 0xff, len = (s >> 8) & 0xff;
    asm("bfe.u64 %0, %1, %2, %3;" : "=l"(r) : "l"(ua), "r"(pos), "r"(len));
    o[22] = r;
    asm("bfe.s64 %0, %1, %2, %3;" : "=l"(r) : "l"(ua), "r"(pos), "r"(len));
    o[23] = r;
    asm("bfi.b64 %0, %1, %2, %3, %4;" : "=l"(r) : "l"(ub), "l"(ua), "r"(pos), "r"(len));
    o[24] = r;
    unsigned r32;
    asm("bfind.u64 %0, %1;" : "=r"(r32) : "l"(ua));
    o[25] = r32;
    asm("bfind.s64 %0, %1;" : "=r"(r32) : "l"(ua));
    o[26] = r32;
    o[27] = a * b + (long long)s;
    o[28] = (ua << (s & 63)) ^ (unsigned long long)(a >> ((s >> 2) & 63)) ^ (ua >> ((s >> 4) & 63));
    o[29] = (unsigned long long)(long long)(int)a * (unsigned long long)(unsigned)b;
    o[30] = (unsigned long long)((double)(ua >> 3));
    o[31] = (long long)(int)(a ^ b) / (long long)(short)(s | 1);
}

// Multi-word arithmetic through the carry flag: x and y are 128-bit numbers as four 32-bit limbs.
extern "C" __global__ void carry_ops(const unsigned* X, const unsigned* Y, unsigned* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const unsigned* x = X + 4 * i;
    const unsigned* y = Y + 4 * i;
    unsigned* o = out + 20 * i;
    // 128-bit add with 32-bit limbs.
    asm("add.cc.u32 %0, %4, %8;\n\t"
        "addc.cc.u32 %1, %5, %9;\n\t"
        "addc.cc.u32 %2, %6, %10;\n\t"
        "addc.u32 %3, %7, %11;"
        : "=r"(o[0]), "=r"(o[1]), "=r"(o[2]), "=r"(o[3])
        : "r"(x[0]), "r"(x[1]), "r"(x[2]), "r"(x[3]), "r"(y[0]), "r"(y[1]), "r"(y[2]), "r"(y[3]));
    // 128-bit subtract with 32-bit limbs.
    asm("sub.cc.u32 %0, %4, %8;\n\t"
        "subc.cc.u32 %1, %5, %9;\n\t"
        "subc.cc.u32 %2, %6, %10;\n\t"
        "subc.u32 %3, %7, %11;"
        : "=r"(o[4]), "=r"(o[5]), "=r"(o[6]), "=r"(o[7])
        : "r"(x[0]), "r"(x[1]), "r"(x[2]), "r"(x[3]), "r"(y[0]), "r"(y[1]), "r"(y[2]), "r"(y[3]));
    // 128-bit add with 64-bit limbs, plus the carry out of the top limb.
    unsigned long long xl = ((unsigned long long)x[1] << 32) | x[0];
    unsigned long long xh = ((unsigned long long)x[3] << 32) | x[2];
    unsigned long long yl = ((unsigned long long)y[1] << 32) | y[0];
    unsigned long long yh = ((unsigned long long)y[3] << 32) | y[2];
    unsigned long long lo, hi;
    unsigned cout;
    asm("add.cc.u64 %0, %3, %5;\n\t"
        "addc.cc.u64 %1, %4, %6;\n\t"
        "addc.u32 %2, 0, 0;"
        : "=l"(lo), "=l"(hi), "=r"(cout)
        : "l"(xl), "l"(xh), "l"(yl), "l"(yh));
    o[8] = (unsigned)lo;
    o[9] = (unsigned)(lo >> 32);
    o[10] = (unsigned)hi;
    o[11] = (unsigned)(hi >> 32);
    o[12] = cout;
    // 64x64 -> 128-bit product of the low halves with 32-bit limbs and mad carry chains.
    unsigned a0 = x[0], a1 = x[1], b0 = y[0], b1 = y[1], r0, r1, r2, r3;
    asm("mul.lo.u32 %0, %4, %6;\n\t"
        "mul.hi.u32 %1, %4, %6;\n\t"
        "mad.lo.cc.u32 %1, %5, %6, %1;\n\t"
        "madc.hi.u32 %2, %5, %6, 0;\n\t"
        "mad.lo.cc.u32 %1, %4, %7, %1;\n\t"
        "madc.hi.cc.u32 %2, %4, %7, %2;\n\t"
        "addc.u32 %3, 0, 0;\n\t"
        "mad.lo.cc.u32 %2, %5, %7, %2;\n\t"
        "madc.hi.u32 %3, %5, %7, %3;"
        : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
        : "r"(a0), "r"(a1), "r"(b0), "r"(b1));
    o[13] = r0;
    o[14] = r1;
    o[15] = r2;
    o[16] = r3;
    // The same product's high half through __umul64hi, and the low half through mul.lo.u64.
    unsigned long long ph = __umul64hi(xl, yl), pl = xl * yl;
    o[17] = (unsigned)ph ^ (unsigned)(ph >> 32);
    o[18] = (unsigned)pl ^ (unsigned)(pl >> 32);
    // Borrow out of a 64-bit subtraction.
    unsigned bout;
    asm("{\n\t.reg .u64 t;\n\t"
        "sub.cc.u64 t, %1, %2;\n\t"
        "subc.u32 %0, 0, 0;\n\t}"
        : "=r"(bout)
        : "l"(xl), "l"(yl));
    o[19] = bout;
}
