/* Stream-capture queries: capture is not supported, so every valid stream reports "not
 * capturing" (what PyTorch's allocator asks), an invalid stream is an error, beginning a capture
 * fails with CUDA_ERROR_NOT_SUPPORTED, and the capture mode is exchanged per thread. */
#include "common.h"

int main(void) {
    setup();
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUstream streams[] = {NULL, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD, s};
    for (int i = 0; i < 4; i++) {
        CUstreamCaptureStatus st = (CUstreamCaptureStatus)7;
        CHECK(cuStreamIsCapturing(streams[i], &st));
        EXPECT(st == CU_STREAM_CAPTURE_STATUS_NONE);
        st = (CUstreamCaptureStatus)7;
        cuuint64_t id = 99;
        CUgraph g = (CUgraph)1;
        const CUgraphNode *deps = (const CUgraphNode *)1;
        const CUgraphEdgeData *edges = (const CUgraphEdgeData *)1;
        size_t n = 5;
        CHECK(cuStreamGetCaptureInfo(streams[i], &st, &id, &g, &deps, &edges, &n));
        EXPECT(st == CU_STREAM_CAPTURE_STATUS_NONE && g == NULL && deps == NULL && edges == NULL &&
               n == 0);
        /* Optional outputs may be NULL. */
        CHECK(cuStreamGetCaptureInfo(streams[i], &st, NULL, NULL, NULL, NULL, NULL));
    }
    CUstreamCaptureStatus st;
    EXPECT_ERR(cuStreamIsCapturing(s, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuStreamIsCapturing((CUstream)0xbad0, &st), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_NOT_SUPPORTED);
    /* The exchange returns the previous mode and keeps the new one for this thread. */
    CUstreamCaptureMode m = CU_STREAM_CAPTURE_MODE_RELAXED;
    CHECK(cuThreadExchangeStreamCaptureMode(&m));
    EXPECT(m == CU_STREAM_CAPTURE_MODE_GLOBAL);
    m = CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
    CHECK(cuThreadExchangeStreamCaptureMode(&m));
    EXPECT(m == CU_STREAM_CAPTURE_MODE_RELAXED);
    m = (CUstreamCaptureMode)9;
    EXPECT_ERR(cuThreadExchangeStreamCaptureMode(&m), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuStreamDestroy(s));
    return finish("capture_queries");
}
