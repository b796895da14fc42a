// Local memory, calls and addressing: local arrays indexed dynamically (and passed by generic
// pointer to a non-inlined function), __noinline__ functions taking and returning structs,
// recursion with lane-dependent depth, indirect calls through a __device__ table of function
// pointers (uniform per warp, and different per lane), generic pointers into shared/local/global
// memory, and vector and narrow loads and stores.

struct Vec3 {
    float x, y, z;
};

struct Big {
    int a[6];
    long long b;
    char c;
};

__device__ __noinline__ Vec3 cross(Vec3 a, Vec3 b) {
    Vec3 r;
    r.x = a.y * b.z - a.z * b.y;
    r.y = a.z * b.x - a.x * b.z;
    r.z = a.x * b.y - a.y * b.x;
    return r;
}

__device__ __noinline__ Big transform(Big in, int k) {
    Big r;
    for (int i = 0; i < 6; i++) r.a[i] = in.a[(i + k) % 6] * (i + 1);
    r.b = in.b * k - in.a[0];
    r.c = (char)(in.c + k);
    return r;
}

__device__ __noinline__ void fill(int* p, int n, int seed) {
    for (int i = 0; i < n; i++) p[i] = (seed * 1103515245 + i * 12345) >> 8;
}

__device__ __noinline__ int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

// Depth of node `i` in a binary tree stored as parent links (root: parent -1).
__device__ __noinline__ int depth(const int* parent, int i) { return parent[i] < 0 ? 0 : 1 + depth(parent, parent[i]); }

// Sum of the values of the subtree rooted at i, with children 2i+1, 2i+2 (n nodes).
__device__ __noinline__ long long subtree(const int* val, int n, int i) {
    if (i >= n) return 0;
    return val[i] + subtree(val, n, 2 * i + 1) + subtree(val, n, 2 * i + 2);
}

__device__ __noinline__ int op_add(int a, int b) { return a + b; }
__device__ __noinline__ int op_sub(int a, int b) { return a - b; }
__device__ __noinline__ int op_mul(int a, int b) { return a * b; }
__device__ __noinline__ int op_mix(int a, int b) { return (a ^ b) + fib(b & 7); }

typedef int (*binop)(int, int);
__device__ binop op_table[4] = {op_add, op_sub, op_mul, op_mix};

extern "C" __global__ void local_arrays(const int* in, int* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int x = in[i];
    int arr[32];
    for (int k = 0; k < 32; k++) arr[k] = x * (k + 1) ^ k;
    // Dynamic reads.
    int s = 0;
    for (int k = 0; k < 32; k++) s += arr[(x + k * 7) & 31];
    out[i * 4 + 0] = s;
    // Insertion sort of 16 values filled through a generic pointer by a non-inlined call.
    int v[16];
    fill(v, 16, x);
    for (int a = 1; a < 16; a++) {
        int key = v[a], b = a - 1;
        while (b >= 0 && v[b] > key) {
            v[b + 1] = v[b];
            b--;
        }
        v[b + 1] = key;
    }
    out[i * 4 + 1] = v[0];
    out[i * 4 + 2] = v[x & 15];
    out[i * 4 + 3] = v[15];
}

extern "C" __global__ void struct_calls(const float* f, const int* in, float* vout, Big* bout) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    Vec3 a = {f[6 * i], f[6 * i + 1], f[6 * i + 2]};
    Vec3 b = {f[6 * i + 3], f[6 * i + 4], f[6 * i + 5]};
    Vec3 c = cross(a, b);
    vout[3 * i] = c.x;
    vout[3 * i + 1] = c.y;
    vout[3 * i + 2] = c.z;
    Big g;
    for (int k = 0; k < 6; k++) g.a[k] = in[i] + k * 11;
    g.b = (long long)in[i] << 20;
    g.c = (char)i;
    bout[i] = transform(g, i % 5 + 1);
}

extern "C" __global__ void recursion(const int* parent, const int* val, int n, int* out, long long* sums) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[2 * i] = fib(i % 18);
    out[2 * i + 1] = depth(parent, i);
    sums[i] = subtree(val, n, i);
}

// The function comes from a global table, the same for a whole warp (chosen per warp).
extern "C" __global__ void indirect(const int* a, const int* b, int* out, int sel) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    binop f = op_table[(sel + (i >> 5)) & 3];
    out[i] = f(a[i], b[i]);
}

// Generic pointers into shared, local and global memory passed to one non-inlined function
// (plain and atomic accesses through the generic address windows), the space predicates, and
// vector/narrow loads and stores (float4, int2, double2, signed chars and shorts, __ldg).
__device__ __noinline__ int touch(int* p, int n, int add) {
    int s = 0;
    for (int i = 0; i < n; i++) {
        s += p[i];
        p[i] += add;
    }
    atomicAdd(p, 1000);
    return s;
}

extern "C" __global__ void generic_ptrs(int* g, int* out) {
    __shared__ int sh[64];
    int loc[4];
    int t = threadIdx.x;
    sh[t] = t * 2;
    for (int k = 0; k < 4; k++) loc[k] = t + k;
    __syncthreads();
    int a = 0, b = 0, c = 0;
    if (t == 0) a = touch(sh, 64, 1);  // one thread walks the whole shared array
    __syncthreads();
    b = touch(loc, 4, 5);
    c = touch(g + 4 * (blockIdx.x * blockDim.x + t), 4, 7);
    unsigned spaces = __isShared(sh + t) | (__isLocal(loc) << 1) | (__isGlobal(g) << 2) |
                      (__isGlobal(sh) << 3) | (__isShared(loc) << 4);
    int* o = out + 8 * (blockIdx.x * blockDim.x + t);
    o[0] = a;
    o[1] = b;
    o[2] = c;
    o[3] = sh[t];
    o[4] = loc[0] + loc[1] + loc[2] + loc[3];
    o[5] = (int)spaces;
    o[6] = 0;
    o[7] = 0;
}

extern "C" __global__ void vectors(const float4* f4, const int2* i2, const double2* d2, const signed char* c,
                                   const short* s, float4* of4, int* oi, double* od) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    float4 v = f4[t];
    int2 w = __ldg(&i2[t]);
    double2 d = d2[t];
    of4[t] = make_float4(v.w, v.z * 2.0f, v.y + v.x, -v.x);
    oi[4 * t + 0] = w.x - w.y;
    oi[4 * t + 1] = c[t];  // sign-extended
    oi[4 * t + 2] = s[t] * 3;
    oi[4 * t + 3] = (unsigned char)c[t] + (unsigned short)s[t];
    od[t] = d.x * 0.5 + d.y;
}

// Each lane picks its own function from the table: an indirect call with divergent targets.
extern "C" __global__ void indirect_divergent(const int* a, const int* b, int* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    binop f = op_table[(a[i] ^ i) & 3];
    out[i] = f(a[i], b[i]) + (i & 1 ? op_table[i % 3](b[i], 3) : 0);
}
