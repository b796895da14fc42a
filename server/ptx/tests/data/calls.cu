// Device calls: printf, assert, non-inlined functions with struct arguments, recursion and
// indirect calls through a function-pointer table (parse_nvcc.rs).
#include <cassert>
#include <cstdio>

struct Pair {
  int a;
  float b;
  double c;
};

__noinline__ __device__ Pair mk(Pair s, int x) {
  s.a += x;
  s.c *= 2;
  return s;
}

__noinline__ __device__ int fact(int n) { return n <= 1 ? 1 : n * fact(n - 1); }

__device__ int twice(int x) { return 2 * x; }
__device__ int inc(int x) { return x + 1; }
typedef int (*unary)(int);
__device__ unary table[2] = {twice, inc};

__global__ void calls(Pair* out, int n) {
  Pair p = {n, 1.5f, 2.0};
  out[threadIdx.x] = mk(p, fact(n));
  printf("thread %d n=%d %f\n", threadIdx.x, n, 0.5 * n);
  assert(n > 0);
}

__global__ void indirect(int* out, int k) { out[threadIdx.x] = table[k & 1](threadIdx.x); }
