// 2D/3D grids and blocks: every thread records its block and thread coordinates and the launch
// dimensions at the slot given by its linear index, and a 3D volume is filled through the usual
// x/y/z global index computation with bounds checks.

extern "C" __global__ void coords(unsigned* out) {
    unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned g = block * nt + t;
    unsigned* o = out + 5 * (size_t)g;
    o[0] = g;
    o[1] = blockIdx.x | (blockIdx.y << 16);
    o[2] = blockIdx.z | (threadIdx.x << 16);
    o[3] = threadIdx.y | (threadIdx.z << 8) | (blockDim.x << 16) | (blockDim.y << 24);
    o[4] = blockDim.z | (gridDim.x << 8) | (gridDim.y << 16) | (gridDim.z << 24);
}

extern "C" __global__ void volume(int* v, int X, int Y, int Z) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int z = blockIdx.z * blockDim.z + threadIdx.z;
    if (x < X && y < Y && z < Z) v[((size_t)z * Y + y) * X + x] = x + 1000 * y + 1000000 * z;
}
