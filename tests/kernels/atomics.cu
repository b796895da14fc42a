// Atomics under contention: every thread of many blocks hits the same few addresses in global
// memory (and in shared memory), with every atomic operation and type; CAS loops build a float
// maximum and a double add; a histogram merges per-block shared counts into global bins.

struct Acc {
    int add_i, sub_i, min_i, max_i;
    unsigned min_u, max_u, inc_u, dec_u;
    unsigned and_u, or_u, xor_u, exch_u;
    unsigned long long add_ull, add_blk, add_sys;
    unsigned ticket, pad;
    long long min_ll, max_ll;
    unsigned long long min_ull, max_ull, and_ull, or_ull, xor_ull;
    float add_f, cas_max_f;
    double add_d, cas_add_d;
};

__device__ float atomic_max_float(float* addr, float v) {
    int* a = (int*)addr;
    int old = *a, assumed;
    do {
        assumed = old;
        if (__int_as_float(assumed) >= v) break;
        old = atomicCAS(a, assumed, __float_as_int(v));
    } while (assumed != old);
    return __int_as_float(old);
}

__device__ double atomic_add_double_cas(double* addr, double v) {
    unsigned long long* a = (unsigned long long*)addr;
    unsigned long long old = *a, assumed;
    do {
        assumed = old;
        old = atomicCAS(a, assumed, __double_as_longlong(__longlong_as_double(assumed) + v));
    } while (assumed != old);
    return __longlong_as_double(old);
}

// v[i] are the per-thread operands; tickets[i] receives the old value of a shared counter.
extern "C" __global__ void contend(Acc* acc, const int* v, unsigned* tickets, unsigned* exch_old, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int x = v[i];
    unsigned ux = (unsigned)x;
    long long lx = (long long)x * 1000003 - 7000000000ll;
    atomicAdd(&acc->add_i, x);
    atomicSub(&acc->sub_i, x);
    atomicMin(&acc->min_i, x - 500000);
    atomicMax(&acc->max_i, x - 500000);
    atomicMin(&acc->min_u, ux);
    atomicMax(&acc->max_u, ux);
    atomicInc(&acc->inc_u, 99u);
    atomicDec(&acc->dec_u, 37u);
    atomicAnd(&acc->and_u, ~(1u << (ux % 31)));
    atomicOr(&acc->or_u, 1u << (ux % 29));
    atomicXor(&acc->xor_u, ux * 2654435761u);
    exch_old[i] = atomicExch(&acc->exch_u, (unsigned)i + 1);
    atomicAdd(&acc->add_ull, (unsigned long long)ux << 20);
    atomicAdd_block(&acc->add_blk, 1ull);
    atomicAdd_system(&acc->add_sys, 3ull);
    atomicMin(&acc->min_ll, lx);
    atomicMax(&acc->max_ll, lx);
    atomicMin(&acc->min_ull, (unsigned long long)lx);
    atomicMax(&acc->max_ull, (unsigned long long)lx);
    atomicAnd(&acc->and_ull, ~(1ull << (ux % 63)));
    atomicOr(&acc->or_ull, 1ull << (ux % 61));
    atomicXor(&acc->xor_ull, (unsigned long long)lx);
    atomicAdd(&acc->add_f, (float)(x % 64) * 0.5f);
    atomic_max_float(&acc->cas_max_f, (float)x * 0.25f);
    atomicAdd(&acc->add_d, (double)(x % 1000) * 0.125);
    atomic_add_double_cas(&acc->cas_add_d, (double)(x % 100) * 0.25);
    tickets[i] = atomicAdd(&acc->ticket, 1u);
}

// Shared-memory atomics: a per-block histogram merged into the global one, plus per-block
// shared float/CAS/min/max results.
extern "C" __global__ void histogram(const unsigned* data, int n, unsigned* bins, int nbins, float* block_out) {
    extern __shared__ unsigned sh[];
    __shared__ float fsum;
    __shared__ int smax, smin;
    __shared__ unsigned cas_word;
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) sh[b] = 0;
    if (threadIdx.x == 0) {
        fsum = 0.0f;
        smax = -1;
        smin = 1 << 30;
        cas_word = 0;
    }
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        unsigned d = data[i];
        atomicAdd(&sh[d % nbins], 1u);
        atomicAdd(&fsum, (float)(d & 7));
        atomicMax(&smax, (int)d);
        atomicMin(&smin, (int)d);
        // CAS increment in shared memory.
        unsigned old = cas_word, assumed;
        do {
            assumed = old;
            old = atomicCAS(&cas_word, assumed, assumed + 1);
        } while (old != assumed);
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x)
        if (sh[b]) atomicAdd(&bins[b], sh[b]);
    if (threadIdx.x == 0) {
        block_out[4 * blockIdx.x + 0] = fsum;
        block_out[4 * blockIdx.x + 1] = (float)smax;
        block_out[4 * blockIdx.x + 2] = (float)smin;
        block_out[4 * blockIdx.x + 3] = (float)cas_word;
    }
}
