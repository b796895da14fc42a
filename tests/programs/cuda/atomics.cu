// Atomic operations on global and shared memory: atomicAdd (int, unsigned long long, float,
// double), atomicSub, atomicExch, atomicMin/Max (signed, unsigned, 64-bit), atomicInc/atomicDec
// wrap-around, atomicAnd/Or/Xor, atomicCAS (32 and 64-bit) including a CAS loop implementing a
// float max, and a CAS-based spin lock protecting a non-atomic update.
#include "check.h"
#include <vector>
#include <cmath>

struct Results {
    int add_i;
    unsigned long long add_u64;
    float add_f;
    double add_d;
    int sub_i;
    int exch_count;
    int min_i, max_i;
    unsigned max_u;
    long long min_ll;
    unsigned long long max_ull;
    unsigned inc_u, dec_u;
    unsigned and_u, or_u, xor_u;
    float max_f_cas;
    unsigned long long cas64;
    int lock;
    int locked_counter;
    int shared_sum;
};

__device__ float atomic_max_float(float* addr, float v) {
    int* ai = (int*)addr;
    int old = *ai, assumed;
    do {
        assumed = old;
        if (__int_as_float(assumed) >= v) break;
        old = atomicCAS(ai, assumed, __float_as_int(v));
    } while (old != assumed);
    return __int_as_float(old);
}

__global__ void atomics(Results* r, int* exch_target, int n) {
    __shared__ int ssum;
    if (threadIdx.x == 0) ssum = 0;
    __syncthreads();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        atomicAdd(&r->add_i, i);
        atomicAdd(&r->add_u64, (unsigned long long)i << 20);
        atomicAdd(&r->add_f, 0.5f);
        atomicAdd(&r->add_d, (double)i * 0.25);
        atomicSub(&r->sub_i, 3);
        int prev = atomicExch(exch_target, i);
        // Every value but the last written one is returned exactly once.
        if (prev >= 0) atomicAdd(&r->exch_count, 1);
        atomicMin(&r->min_i, (i * 7919) % 10007 - 5000);
        atomicMax(&r->max_i, (i * 7919) % 10007 - 5000);
        atomicMax(&r->max_u, (unsigned)i * 2654435761u);
        atomicMin(&r->min_ll, -(long long)i * 1000000007ll);
        atomicMax(&r->max_ull, (unsigned long long)i * 0x9E3779B97F4A7C15ull);
        atomicInc(&r->inc_u, 99u);   // counts 0..99 then wraps to 0
        atomicDec(&r->dec_u, 49u);   // counts down, wraps from 0 to 49
        atomicAnd(&r->and_u, ~(1u << (i % 32)));
        atomicOr(&r->or_u, 1u << (i % 17));
        atomicXor(&r->xor_u, (unsigned)i);
        atomic_max_float(&r->max_f_cas, sinf(i * 0.01f) * 100.0f);
        atomicAdd(&ssum, 1);
        // Spin lock, one lane of each warp at a time (no intra-warp contention for the lock).
        if ((threadIdx.x & 31) == 0) {
            while (atomicCAS(&r->lock, 0, 1) != 0) {
            }
            __threadfence();
            volatile int* c = &r->locked_counter;
            *c = *c + 1;
            __threadfence();
            atomicExch(&r->lock, 0);
        }
    }
    if (i == 0) {
        unsigned long long old = atomicCAS(&r->cas64, 0x1234ull, 0xabcdef0123456789ull);
        if (old != 0x1234ull) r->cas64 = 0;  // flag failure
    }
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(&r->shared_sum, ssum);
}

int main() {
    const int n = 10000, threads = 256, blocks = (n + threads - 1) / threads;
    Results init = {};
    init.min_i = 1 << 30;
    init.max_i = -(1 << 30);
    init.min_ll = 0;
    init.and_u = 0xffffffffu;
    init.max_f_cas = -1000.0f;
    init.cas64 = 0x1234ull;
    Results* dr;
    int* dex;
    CHECK(cudaMalloc(&dr, sizeof(Results)));
    CHECK(cudaMalloc(&dex, sizeof(int)));
    CHECK(cudaMemcpy(dr, &init, sizeof init, cudaMemcpyHostToDevice));
    int minus1 = -1;
    CHECK(cudaMemcpy(dex, &minus1, sizeof(int), cudaMemcpyHostToDevice));
    atomics<<<blocks, threads>>>(dr, dex, n);
    CHECK_LAUNCH();
    Results r;
    CHECK(cudaMemcpy(&r, dr, sizeof r, cudaMemcpyDeviceToHost));

    long long add_i = 0;
    unsigned long long add_u64 = 0, max_ull = 0;
    double add_d = 0;
    int min_i = 1 << 30, max_i = -(1 << 30);
    unsigned max_u = 0, xor_u = 0, or_u = 0, and_u = 0xffffffffu;
    long long min_ll = 0;
    float max_f = -1000.0f;
    for (int i = 0; i < n; i++) {
        add_i += i;
        add_u64 += (unsigned long long)i << 20;
        add_d += i * 0.25;
        int v = (i * 7919) % 10007 - 5000;
        min_i = v < min_i ? v : min_i;
        max_i = v > max_i ? v : max_i;
        unsigned u = (unsigned)i * 2654435761u;
        max_u = u > max_u ? u : max_u;
        long long ll = -(long long)i * 1000000007ll;
        min_ll = ll < min_ll ? ll : min_ll;
        unsigned long long ull = (unsigned long long)i * 0x9E3779B97F4A7C15ull;
        max_ull = ull > max_ull ? ull : max_ull;
        and_u &= ~(1u << (i % 32));
        or_u |= 1u << (i % 17);
        xor_u ^= (unsigned)i;
        float f = sinf(i * 0.01f) * 100.0f;
        max_f = f > max_f ? f : max_f;
    }
    EXPECT(r.add_i == (int)add_i, "add_i %d want %lld", r.add_i, add_i);
    EXPECT(r.add_u64 == add_u64, "add_u64 %llu want %llu", r.add_u64, add_u64);
    EXPECT(r.add_f == n * 0.5f, "add_f %f", r.add_f);
    EXPECT(r.add_d == add_d, "add_d %f want %f", r.add_d, add_d);
    EXPECT(r.sub_i == -3 * n, "sub_i %d", r.sub_i);
    EXPECT(r.exch_count == n - 1, "exch_count %d", r.exch_count);
    EXPECT(r.min_i == min_i && r.max_i == max_i, "min/max %d %d want %d %d", r.min_i, r.max_i, min_i, max_i);
    EXPECT(r.max_u == max_u, "max_u %u want %u", r.max_u, max_u);
    EXPECT(r.min_ll == min_ll, "min_ll %lld want %lld", r.min_ll, min_ll);
    EXPECT(r.max_ull == max_ull, "max_ull %llu want %llu", r.max_ull, max_ull);
    EXPECT(r.inc_u == n % 100, "inc_u %u want %u", r.inc_u, n % 100);
    // atomicDec: ((old == 0) | (old > 49)) ? 49 : old - 1, starting at 0.
    unsigned dec = 0;
    for (int i = 0; i < n; i++) dec = (dec == 0 || dec > 49) ? 49 : dec - 1;
    EXPECT(r.dec_u == dec, "dec_u %u want %u", r.dec_u, dec);
    EXPECT(r.and_u == and_u && r.or_u == or_u && r.xor_u == xor_u, "and/or/xor %x %x %x want %x %x %x",
           r.and_u, r.or_u, r.xor_u, and_u, or_u, xor_u);
    EXPECT(fabsf(r.max_f_cas - max_f) <= 1e-3f, "CAS float max %f want %f", r.max_f_cas, max_f);
    EXPECT(r.cas64 == 0xabcdef0123456789ull, "cas64 %llx", r.cas64);
    int warps = 0;
    for (int b = 0; b < blocks; b++)
        for (int w = 0; w < threads; w += 32)
            if (b * threads + w < n) warps++;
    EXPECT(r.locked_counter == warps, "locked counter %d want %d", r.locked_counter, warps);
    EXPECT(r.lock == 0, "lock left %d", r.lock);
    EXPECT(r.shared_sum == n, "shared sum %d", r.shared_sum);
    CHECK(cudaFree(dr));
    CHECK(cudaFree(dex));
    return finish("atomics");
}
