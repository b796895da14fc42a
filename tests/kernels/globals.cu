// Module-scope variables: __device__ and __constant__ scalars, arrays and structs with and
// without initialisers, a pointer initialised with another variable's address, read by kernels,
// written by kernels and by the host through cuModuleGetGlobal.

struct Params {
    int n;
    float a;
    short s[4];
    double d;
};

__device__ int counter = 5;
__device__ float table[8] = {1.5f, 2.5f, -3.25f, 4.0f, 1e10f, -0.0f, 7.125f, 1024.0f};
__device__ double dvals[3] = {1e100, -2.5, 0.1};
__device__ unsigned long long big = 0x0123456789abcdefull;
__device__ char message[] = "hello, globals";
__device__ int* ptr_to_counter = &counter;
__device__ float* ptr_into_table = &table[3];
__device__ int uninit[100];
__constant__ int coeffs[16] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597};
__constant__ float cscale = 0.5f;
__constant__ Params cparams = {42, -1.75f, {1, -2, 3, -4}, 6.02214076e23};
__constant__ int cpoly[4];  // written by the host

extern "C" __global__ void read_globals(int* out, float* fout, double* dout) {
    int t = threadIdx.x;
    if (t == 0) {
        out[0] = counter;
        out[1] = *ptr_to_counter;
        out[2] = (int)(big >> 32);
        out[3] = (int)big;
        out[4] = cparams.n;
        out[5] = cparams.s[0] * 1000 + cparams.s[1] * 100 + cparams.s[2] * 10 + cparams.s[3];
        out[6] = 0;
        for (int i = 0; message[i]; i++) out[6] = out[6] * 31 + message[i];
        fout[0] = cscale;
        fout[1] = cparams.a;
        fout[2] = *ptr_into_table;
        dout[0] = cparams.d;
    }
    if (t < 16) out[8 + t] = coeffs[t] * (t + 1);
    if (t < 8) fout[4 + t] = table[t] * cscale;
    if (t < 3) dout[1 + t] = dvals[t];
}

extern "C" __global__ void apply_poly(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        y[i] = ((cpoly[3] * v + cpoly[2]) * v + cpoly[1]) * v + cpoly[0];
    }
}

extern "C" __global__ void bump(int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(&counter, 1);
    if (i < 100) uninit[i] = i * i + coeffs[i % 16];
    if (i < 8) table[i] *= 2.0f;
}
