// Memory spaces: initialised globals and constants, static and dynamic shared memory, local
// arrays, atomics and warp shuffles (parse_nvcc.rs).
__device__ int counter;
__device__ float weights[4] = {1.0f, 2.5f, -3.0f, 0.1f};
__constant__ int lut[2][3] = {{1, 2, 3}, {4, 5, 6}};
__device__ int* counter_ptr = &counter;
__device__ double scale = 3.14;
__device__ unsigned long long big = 0xFFFFFFFF00000001ull;
__managed__ int managed_value;
extern __shared__ float dynamic_smem[];

__global__ void reduce(const float* in, float* out, int n) {
  __shared__ float tile[256];
  int t = threadIdx.x;
  float v = (blockIdx.x * 256 + t < n) ? in[blockIdx.x * 256 + t] : 0.0f;
  tile[t] = v * weights[t & 3];
  __syncthreads();
  for (int s = 128; s >= 32; s >>= 1) {
    if (t < s) tile[t] += tile[t + s];
    __syncthreads();
  }
  v = tile[t];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (t == 0) atomicAdd(out, v);
  if ((t & 31) == 0) atomicAdd(&counter, lut[t & 1][t % 3]);
}

__global__ void dyn(int* out, int k) {
  dynamic_smem[threadIdx.x] = threadIdx.x * 2.0f;
  __syncthreads();
  int local[24];
  for (int i = 0; i < 24; i++) local[i] = i * k + threadIdx.x;
  out[threadIdx.x] = local[k % 24] + (int)dynamic_smem[(threadIdx.x + 1) % blockDim.x] + *counter_ptr;
  out[blockDim.x + threadIdx.x] = atomicCAS(out, k, 7) + atomicMax(out + 1, k) + atomicExch(out + 2, 1);
  unsigned m = __ballot_sync(0xffffffffu, k > (int)threadIdx.x);
  out[2 * blockDim.x] = __popc(m) + __shfl_xor_sync(0xffffffffu, k, 1) + managed_value + (int)big;
}
