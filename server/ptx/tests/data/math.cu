// Math and half precision: libdevice expansions (sinf, exp, pow on doubles), __half arithmetic
// and special registers read through inline assembly (parse_nvcc.rs).
#include <cuda_fp16.h>

__global__ void dmath(double* d, int n) {
  int i = threadIdx.x;
  d[i] = pow(d[i], 2.5) + exp(d[i + n]) + log(d[i + 2 * n]) + sqrt(fabs(d[i + 3 * n]));
}

__global__ void fmath(float* f, int n) {
  int i = threadIdx.x;
  f[i] = sinf((float)n) + __expf(f[i]) + tanhf(f[i + n]) + rsqrtf(f[i + 2 * n]) + f[i] / f[i + 3 * n];
}

__global__ void halves(__half* h, __half2* h2) {
  int i = threadIdx.x;
  h[i] = __hadd(h[i], __hmul(h[0], __float2half(0.5f)));
  h2[i] = __hfma2(h2[i], h2[0], __float2half2_rn(1.0f));
}

__global__ void specials(unsigned* out) {
  unsigned r;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(r));
  out[0] = r;
  asm volatile("mov.u32 %0, %%warpid;" : "=r"(r));
  out[1] = r;
  asm volatile("mov.u32 %0, %%lanemask_lt;" : "=r"(r));
  out[2] = r;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  out[3] = (unsigned)t + (unsigned)clock64() + (unsigned)clock();
  asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.u32 p, %1, 0;\n\t@p mov.u32 %0, 1;\n\t@!p mov.u32 %0, 2;\n}"
               : "=r"(r)
               : "r"(out[4]));
  out[5] = r + threadIdx.y + blockIdx.z + gridDim.y;
}
