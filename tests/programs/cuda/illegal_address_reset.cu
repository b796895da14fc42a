// Recovery from a sticky error: a kernel writes through a bogus pointer, cudaDeviceSynchronize
// reports cudaErrorIllegalAddress, then cudaDeviceReset clears it and the program goes on with
// new allocations and a working kernel.
#include "fault_common.h"

int main() {
    int* keep = fault();
    cudaError_t e;

    int h = 0;
    e = cudaMemcpy(&h, keep, sizeof h, cudaMemcpyDeviceToHost);
    EXPECT(e == cudaErrorIllegalAddress, "cudaMemcpy after the fault: %s", cudaGetErrorName(e));

    // Reset: the error is gone, fresh allocations and kernels work.
    CHECK(cudaDeviceReset());
    (void)cudaGetLastError();  // whatever the failed calls above left
    EXPECT(works("after reset"), "%s", "kernel after cudaDeviceReset");
    return finish("illegal_address_reset");
}
