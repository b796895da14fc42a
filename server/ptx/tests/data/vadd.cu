// Simple element-wise kernels (parse_nvcc.rs).
__global__ void vadd(const float* a, const float* b, float* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

__global__ void saxpy(float a, const float* __restrict__ x, float* __restrict__ y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    y[i] = a * x[i] + y[i];
  }
}

__global__ void __launch_bounds__(256, 2) vec4copy(const float4* in, float4* out, long long n) {
  long long i = blockIdx.y * (long long)gridDim.x * blockDim.x + blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}

extern "C" __global__ void c_kernel(unsigned char* p, short s, double d) {
  p[threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * 7] = (unsigned char)(s + (int)d);
}
