// Device properties and occupancy: cudaGetDeviceCount/GetDevice/SetDevice,
// cudaGetDeviceProperties against cudaDeviceGetAttribute, plausible limits,
// cudaOccupancyMaxActiveBlocksPerMultiprocessor / cudaOccupancyMaxPotentialBlockSize,
// cudaDriverGetVersion / cudaRuntimeGetVersion, cudaDeviceGetLimit, cudaMemGetInfo.
#include "check.h"
#include <cstring>

__global__ void small_kernel(float* x) {
    if (x) x[threadIdx.x] = threadIdx.x;
}

__global__ void shared_kernel(float* x) {
    __shared__ float buf[2048];  // 8 KB static shared memory
    buf[threadIdx.x] = threadIdx.x;
    __syncthreads();
    if (x) x[threadIdx.x] = buf[(threadIdx.x + 1) % blockDim.x];
}

int attr(cudaDeviceAttr a, int dev) {
    int v = -12345;
    CHECK(cudaDeviceGetAttribute(&v, a, dev));
    return v;
}

int main() {
    int count = 0;
    CHECK(cudaGetDeviceCount(&count));
    EXPECT(count >= 1, "device count %d", count);
    CHECK(cudaSetDevice(0));
    int dev = -1;
    CHECK(cudaGetDevice(&dev));
    EXPECT(dev == 0, "current device %d", dev);

    int drv = 0, rt = 0;
    CHECK(cudaDriverGetVersion(&drv));
    CHECK(cudaRuntimeGetVersion(&rt));
    EXPECT(drv >= 12000, "driver version %d", drv);
    EXPECT(rt >= 12000, "runtime version %d", rt);
    EXPECT(drv >= rt, "driver %d older than runtime %d", drv, rt);

    // The values below come from attributes; cudaGetDeviceProperties must agree with them.
    int major = attr(cudaDevAttrComputeCapabilityMajor, 0);
    int minor = attr(cudaDevAttrComputeCapabilityMinor, 0);
    int warp = attr(cudaDevAttrWarpSize, 0);
    int mtpb = attr(cudaDevAttrMaxThreadsPerBlock, 0);
    int smem = attr(cudaDevAttrMaxSharedMemoryPerBlock, 0);
    int smem_optin = attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    int smem_sm = attr(cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0);
    int sms = attr(cudaDevAttrMultiProcessorCount, 0);
    int bdx = attr(cudaDevAttrMaxBlockDimX, 0), bdz = attr(cudaDevAttrMaxBlockDimZ, 0);
    int gdx = attr(cudaDevAttrMaxGridDimX, 0), gdy = attr(cudaDevAttrMaxGridDimY, 0);
    int regs = attr(cudaDevAttrMaxRegistersPerBlock, 0);
    int cmem = attr(cudaDevAttrTotalConstantMemory, 0);
    int mtpsm = attr(cudaDevAttrMaxThreadsPerMultiProcessor, 0);
    EXPECT(warp == 32, "warpSize %d", warp);
    EXPECT(mtpb >= 1024, "maxThreadsPerBlock %d", mtpb);
    EXPECT(smem >= 48 * 1024, "sharedMemPerBlock %d", smem);
    EXPECT(smem_optin >= smem, "optin %d", smem_optin);
    EXPECT(smem_sm >= smem_optin, "shared per SM %d", smem_sm);
    EXPECT(sms >= 1, "SMs %d", sms);
    EXPECT(bdx >= 1024 && bdz >= 64, "block dims %d %d", bdx, bdz);
    EXPECT(gdx >= 65535 && gdy >= 65535, "grid dims %d %d", gdx, gdy);
    EXPECT(regs > 0, "regsPerBlock %d", regs);
    EXPECT(cmem >= 64 * 1024, "totalConstMem %d", cmem);
    EXPECT(major >= 3 && major < 100 && minor >= 0 && minor < 10, "cc %d.%d", major, minor);
    EXPECT(mtpsm >= mtpb, "maxThreadsPerSM %d", mtpsm);

    cudaDeviceProp p;
    memset(&p, 0, sizeof p);
    CHECK(cudaGetDeviceProperties(&p, 0));
    // Fields at the start of cudaDeviceProp have the same layout in CUDA 11, 12 and 13.
    EXPECT(strlen(p.name) > 0, "empty name%s", "");
    EXPECT(p.warpSize == warp, "props warpSize %d", p.warpSize);
    EXPECT(p.maxThreadsPerBlock == mtpb, "props maxThreadsPerBlock %d", p.maxThreadsPerBlock);
    EXPECT(p.sharedMemPerBlock == (size_t)smem, "props sharedMemPerBlock %zu", p.sharedMemPerBlock);
    EXPECT(p.regsPerBlock == regs, "props regsPerBlock %d", p.regsPerBlock);
    EXPECT(p.maxThreadsDim[0] == bdx && p.maxThreadsDim[2] == bdz, "props maxThreadsDim %d %d", p.maxThreadsDim[0], p.maxThreadsDim[2]);
    EXPECT(p.maxGridSize[0] == gdx && p.maxGridSize[1] == gdy, "props maxGridSize %d %d", p.maxGridSize[0], p.maxGridSize[1]);
    EXPECT(p.totalGlobalMem > (64u << 20), "totalGlobalMem %zu", p.totalGlobalMem);
    // The rest moved in CUDA 13's cudaDeviceProp: a CUDA 13 object linked with cudart 12 (as the
    // Cuda12 build of this test is) gets cudart 12's legacy layout from cudaGetDeviceProperties.
    if (rt >= 13000) {
        printf("device: %s, cc %d.%d, %d SMs, %zu MB\n", p.name, p.major, p.minor,
               p.multiProcessorCount, p.totalGlobalMem >> 20);
        EXPECT(p.major == major && p.minor == minor, "props cc %d.%d", p.major, p.minor);
        EXPECT(p.multiProcessorCount == sms, "props SMs %d", p.multiProcessorCount);
        EXPECT(p.totalConstMem == (size_t)cmem, "props totalConstMem %zu", p.totalConstMem);
        EXPECT(p.maxThreadsPerMultiProcessor == mtpsm, "props maxThreadsPerSM %d", p.maxThreadsPerMultiProcessor);
        EXPECT(p.sharedMemPerBlockOptin == (size_t)smem_optin, "props optin %zu", p.sharedMemPerBlockOptin);
        EXPECT(p.sharedMemPerMultiprocessor == (size_t)smem_sm, "props shared/SM %zu", p.sharedMemPerMultiprocessor);
        EXPECT(p.l2CacheSize == attr(cudaDevAttrL2CacheSize, 0), "props l2 %d", p.l2CacheSize);
        EXPECT(p.pciBusID == attr(cudaDevAttrPciBusId, 0), "props pci %d", p.pciBusID);
    }

    // Limits.
    size_t stack = 0, heap = 0, fifo = 0;
    CHECK(cudaDeviceGetLimit(&stack, cudaLimitStackSize));
    CHECK(cudaDeviceGetLimit(&heap, cudaLimitMallocHeapSize));
    CHECK(cudaDeviceGetLimit(&fifo, cudaLimitPrintfFifoSize));
    EXPECT(stack > 0 && fifo > 0, "limits stack %zu heap %zu fifo %zu", stack, heap, fifo);

    size_t free_b = 0, total_b = 0;
    CHECK(cudaMemGetInfo(&free_b, &total_b));
    EXPECT(total_b > 0 && free_b <= total_b, "mem info %zu / %zu", free_b, total_b);
    EXPECT(total_b == p.totalGlobalMem, "mem info total %zu vs props %zu", total_b, p.totalGlobalMem);

    // Occupancy.
    int blocks = -1;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, small_kernel, 128, 0));
    EXPECT(blocks >= 1 && blocks * 128 <= mtpsm, "blocks/SM(128) %d", blocks);
    int b1024 = -1;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b1024, small_kernel, 1024, 0));
    EXPECT(b1024 >= 1 && b1024 <= blocks, "blocks/SM(1024) %d vs %d", b1024, blocks);
    int bsh = -1;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bsh, shared_kernel, 128, 0));
    EXPECT(bsh >= 1 && bsh * 8192 <= smem_sm, "blocks/SM(shared) %d", bsh);
    int bdyn = -1;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bdyn, small_kernel, 128, 40 * 1024));
    EXPECT(bdyn >= 1 && bdyn * 40 * 1024 <= smem_sm, "blocks/SM(dyn 40K) %d", bdyn);

    int min_grid = -1, block = -1;
    CHECK(cudaOccupancyMaxPotentialBlockSize(&min_grid, &block, small_kernel, 0, 0));
    EXPECT(block >= 32 && block <= mtpb && block % 32 == 0, "potential block %d", block);
    EXPECT(min_grid >= sms, "min grid %d", min_grid);
    int min_grid2 = -1, block2 = -1;
    CHECK(cudaOccupancyMaxPotentialBlockSize(&min_grid2, &block2, small_kernel, 0, 256));
    EXPECT(block2 >= 32 && block2 <= 256, "potential block (limit 256) %d", block2);

    // The suggested configuration launches.
    float* d;
    CHECK(cudaMalloc(&d, 1024 * sizeof(float)));
    small_kernel<<<1, block>>>(d);
    CHECK_LAUNCH();
    shared_kernel<<<2, 128>>>(d);
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaFree(d));
    return finish("device_props");
}
