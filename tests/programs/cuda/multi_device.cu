// Uses every device it sees (argv[1]: how many it must see), the way multi-GPU programs do:
// per-device allocations, a kernel on each device in its own stream, peer copies around the
// ring of devices (cudaMemcpyPeer, cudaMemcpyPeerAsync and cudaMemcpy with unified addresses),
// a stream on one device waiting for an event on another, and a second kernel that combines
// each device's data with its neighbour's. Every result is checked against a CPU reference.
#include "check.h"
#include <cstring>
#include <vector>

__global__ void fill(float* out, int n, float base, float step) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = base + step * i;
}

__global__ void combine(float* out, const float* mine, const float* neighbour, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 2.0f * mine[i] - neighbour[i];
}

static float value(int dev, int i) { return 100.0f * dev + 0.5f * i; }

int main(int argc, char** argv) {
    int want = argc > 1 ? atoi(argv[1]) : 0;
    int n_dev = 0;
    CHECK(cudaGetDeviceCount(&n_dev));
    EXPECT(want == 0 || n_dev == want, "%d devices, expected %d", n_dev, want);
    if (n_dev < 1 || n_dev > 16) return finish("multi_device");
    const int n = 300000;
    const size_t bytes = n * sizeof(float);
    std::vector<float*> data(n_dev), copy(n_dev), result(n_dev);
    std::vector<cudaStream_t> streams(n_dev);
    std::vector<cudaEvent_t> filled(n_dev);
    for (int d = 0; d < n_dev; d++) {
        CHECK(cudaSetDevice(d));
        cudaDeviceProp prop;
        CHECK(cudaGetDeviceProperties(&prop, d));
        EXPECT(prop.totalGlobalMem > 0, "device %d has no memory", d);
        CHECK(cudaMalloc(&data[d], bytes));
        CHECK(cudaMalloc(&copy[d], bytes));
        CHECK(cudaMalloc(&result[d], bytes));
        CHECK(cudaStreamCreate(&streams[d]));
        CHECK(cudaEventCreate(&filled[d]));
        fill<<<(n + 255) / 256, 256, 0, streams[d]>>>(data[d], n, 100.0f * d, 0.5f);
        CHECK_LAUNCH();
        CHECK(cudaEventRecord(filled[d], streams[d]));
    }
    // Peer access: granted where the devices can reach each other, refused clearly elsewhere
    // (devices of different servers never can; copies between them still work).
    CHECK(cudaSetDevice(0));
    for (int peer = 1; peer < n_dev; peer++) {
        int can = -1;
        CHECK(cudaDeviceCanAccessPeer(&can, 0, peer));
        cudaError_t e = cudaDeviceEnablePeerAccess(peer, 0);
        if (can)
            EXPECT(e == cudaSuccess || e == cudaErrorPeerAccessAlreadyEnabled,
                   "enabling peer access to %d that cudaDeviceCanAccessPeer allows: %d", peer,
                   (int)e);
        else
            EXPECT(e == cudaErrorPeerAccessUnsupported,
                   "peer access to %d without support gave %d", peer, (int)e);
        (void)cudaGetLastError();
    }
    // Every device has its own PCI bus id, and the id leads back to the device.
    for (int d = 0; d < n_dev; d++) {
        char id[32], other[32];
        CHECK(cudaDeviceGetPCIBusId(id, sizeof id, d));
        int back = -1;
        CHECK(cudaDeviceGetByPCIBusId(&back, id));
        EXPECT(back == d, "bus id %s of device %d leads to device %d", id, d, back);
        for (int e = 0; e < d; e++) {
            CHECK(cudaDeviceGetPCIBusId(other, sizeof other, e));
            EXPECT(strcmp(id, other) != 0, "devices %d and %d share bus id %s", e, d, id);
        }
    }
    // Every device's pointer is told apart from every other's (unified addressing).
    for (int d = 0; d < n_dev; d++) {
        cudaPointerAttributes a;
        CHECK(cudaPointerGetAttributes(&a, data[d]));
        EXPECT(a.device == d && a.type == cudaMemoryTypeDevice, "pointer of device %d says %d",
               d, a.device);
    }
    // Around the ring: device d gets device (d+1)'s data, three ways.
    for (int d = 0; d < n_dev; d++) {
        int from = (d + 1) % n_dev;
        CHECK(cudaSetDevice(d));
        CHECK(cudaStreamWaitEvent(streams[d], filled[from], 0));
        if (d % 3 == 0) {
            CHECK(cudaStreamSynchronize(streams[d]));
            CHECK(cudaMemcpyPeer(copy[d], d, data[from], from, bytes));
        } else if (d % 3 == 1) {
            CHECK(cudaMemcpyPeerAsync(copy[d], d, data[from], from, bytes, streams[d]));
        } else {
            CHECK(cudaStreamSynchronize(streams[d]));
            CHECK(cudaMemcpy(copy[d], data[from], bytes, cudaMemcpyDeviceToDevice));
        }
        combine<<<(n + 255) / 256, 256, 0, streams[d]>>>(result[d], data[d], copy[d], n);
        CHECK_LAUNCH();
    }
    std::vector<float> host(n);
    for (int d = 0; d < n_dev; d++) {
        int from = (d + 1) % n_dev;
        CHECK(cudaSetDevice(d));
        CHECK(cudaStreamSynchronize(streams[d]));
        CHECK(cudaMemcpy(host.data(), result[d], bytes, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int i = 0; i < n; i++) {
            float want_v = 2.0f * value(d, i) - value(from, i);
            if (host[i] != want_v && bad++ < 3)
                EXPECT(false, "device %d [%d] = %g, expected %g", d, i, host[i], want_v);
        }
        EXPECT(bad == 0, "device %d: %d wrong values", d, bad);
    }
    // A 2D copy (a 64-column window of 100 rows) from the last device's data into device 0's
    // copy buffer, across servers when they differ.
    {
        const int rows = 100, cols = 64, pitch = 1000 * sizeof(float);
        CHECK(cudaSetDevice(0));
        CHECK(cudaMemcpy2D(copy[0], cols * sizeof(float), data[n_dev - 1] + 3, pitch,
                           cols * sizeof(float), rows, cudaMemcpyDeviceToDevice));
        std::vector<float> win(rows * cols);
        CHECK(cudaMemcpy(win.data(), copy[0], win.size() * sizeof(float), cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (win[r * cols + c] != value(n_dev - 1, r * 1000 + 3 + c)) bad++;
        EXPECT(bad == 0, "2D copy: %d wrong values", bad);
    }
    // Unified-address copy from the last device straight into host memory, from device 0.
    CHECK(cudaSetDevice(0));
    CHECK(cudaMemcpy(host.data(), data[n_dev - 1], bytes, cudaMemcpyDefault));
    EXPECT(host[n - 1] == value(n_dev - 1, n - 1), "unified copy gave %g", host[n - 1]);
    for (int d = 0; d < n_dev; d++) {
        CHECK(cudaSetDevice(d));
        CHECK(cudaFree(data[d]));
        CHECK(cudaFree(copy[d]));
        CHECK(cudaFree(result[d]));
        CHECK(cudaStreamDestroy(streams[d]));
        CHECK(cudaEventDestroy(filled[d]));
    }
    printf("devices %d\n", n_dev);
    return finish("multi_device");
}
