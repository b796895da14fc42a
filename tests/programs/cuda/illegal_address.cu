// A kernel writing through a bogus pointer: cudaDeviceSynchronize reports
// cudaErrorIllegalAddress and the error is sticky (later synchronisation, copies, allocations and
// launches keep failing with it). Recovery with cudaDeviceReset is illegal_address_reset.cu.
#include "fault_common.h"

int main() {
    int* keep = fault();
    cudaError_t e;

    // Sticky: every later call keeps failing with it.
    e = cudaPeekAtLastError();
    EXPECT(e == cudaErrorIllegalAddress, "cudaPeekAtLastError: %s", cudaGetErrorName(e));
    e = cudaGetLastError();
    EXPECT(e == cudaErrorIllegalAddress, "cudaGetLastError: %s", cudaGetErrorName(e));
    e = cudaDeviceSynchronize();
    EXPECT(e == cudaErrorIllegalAddress, "second cudaDeviceSynchronize: %s", cudaGetErrorName(e));
    int h = 0;
    e = cudaMemcpy(&h, keep, sizeof h, cudaMemcpyDeviceToHost);
    EXPECT(e == cudaErrorIllegalAddress, "cudaMemcpy: %s", cudaGetErrorName(e));
    int* more = nullptr;
    e = cudaMalloc(&more, 64);
    EXPECT(e == cudaErrorIllegalAddress, "cudaMalloc: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    inc<<<1, 32>>>(keep, 16);
    // The launch reports the error itself or (rgpu queues launches) by the next synchronisation.
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    EXPECT(e == cudaErrorIllegalAddress, "launch after the fault: %s", cudaGetErrorName(e));
    e = cudaStreamSynchronize(0);
    EXPECT(e == cudaErrorIllegalAddress, "cudaStreamSynchronize: %s", cudaGetErrorName(e));

    return finish("illegal_address");
}
