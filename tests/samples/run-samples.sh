#!/usr/bin/env bash
# Build NVIDIA cuda-samples unmodified and run them through `rgpu run` (CPU device by default),
# then write a markdown table of the results.
#
#   tests/samples/run-samples.sh SAMPLES_CHECKOUT OUT.md [SAMPLE_NAME...]
#
# SAMPLES_CHECKOUT is an extracted https://github.com/NVIDIA/cuda-samples checkout (the directory
# holding Samples/ and Common/); this script never downloads anything. With SAMPLE_NAMEs, only
# those samples of the list below are built and run. Samples are built and run one at a time.
#
# Environment (all optional):
#   NVCC          nvcc to use        (default: .cuda/venv/.../nvidia/cu13/bin/nvcc of this repo)
#   RGPU          rgpu binary        (default: target/debug/rgpu of this repo)
#   RGPU_DEVICE   device backend     (default: cpu)
#   WORK          build/run folder   (default: a new temporary folder; kept, logs are in it)
#   SAMPLE_TIMEOUT  seconds per run  (default: 180)
#   BUILD_TIMEOUT   seconds per build (default: 600)
#
# A sample passes when it exits 0, its output matches the sample's success marker (an
# extended regular expression: its "Test passed" line, or for samples that report success only
# through their exit status, their last regular line), and rgpu logged no kernel fault for it.
# Exit status 2 (EXIT_WAIVED), or exit 0 after a line saying the device lacks a feature, is
# reported as "waived". The table's note says what a failure printed: functions rgpu does not
# implement ("X is not supported yet"), PTX rejected at load, kernel faults, the failing call.
# Each sample runs in WORK/NAME/, which holds the executable, any fatbin/PTX file it loads, and
# links to the sample directory's files (so `sdkFindFilePath` finds data files in "./").
# Logs: WORK/NAME/build.log, WORK/NAME/run.log.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ $# -lt 2 ]; then
    sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 64
fi
SAMPLES=$(cd "$1" && pwd) || exit 66
OUT=$2
shift 2
ONLY=("$@")

NVCC=${NVCC:-$repo/.cuda/venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc}
RGPU=${RGPU:-$repo/target/debug/rgpu}
export RGPU_DEVICE=${RGPU_DEVICE:-cpu}
SAMPLE_TIMEOUT=${SAMPLE_TIMEOUT:-180}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-600}
WORK=${WORK:-$(mktemp -d /tmp/rgpu-samples.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LIBDIR=$(dirname "$RGPU")

[ -d "$SAMPLES/Samples" ] && [ -d "$SAMPLES/Common" ] || {
    echo "error: $SAMPLES has no Samples/ and Common/ (not a cuda-samples checkout)" >&2
    exit 66
}
[ -x "$NVCC" ] || { echo "error: nvcc not found at $NVCC (set NVCC)" >&2; exit 69; }
[ -x "$RGPU" ] || { echo "error: rgpu not found at $RGPU (cargo build, or set RGPU)" >&2; exit 69; }
[ -e "$LIBDIR/libcuda.so" ] || { echo "error: no libcuda.so next to $RGPU" >&2; exit 69; }

# Stand-ins for two headers that some samples include and that the pinned CUDA wheels lack (they
# come from separate packages): cuda_profiler_api.h (the functions themselves are in
# libcudart_static) and NVTX 3 (header-only; its calls are no-ops without a profiler attached).
# Only used when nvcc's own include directory does not have them.
COMPAT="$WORK/.compat"
mkdir -p "$COMPAT"
NVCC_INC=$(cd "$(dirname "$NVCC")/../include" 2>/dev/null && pwd)
if [ ! -e "$NVCC_INC/cuda_profiler_api.h" ]; then
    cat >"$COMPAT/cuda_profiler_api.h" <<'H'
/* stand-in written by rgpu tests/samples/run-samples.sh */
#pragma once
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
extern __host__ cudaError_t CUDARTAPI cudaProfilerStart(void);
extern __host__ cudaError_t CUDARTAPI cudaProfilerStop(void);
#ifdef __cplusplus
}
#endif
H
fi
NVTX_FLAGS=""
if [ ! -e "$NVCC_INC/nvtx3/nvToolsExt.h" ]; then
    # Only for the samples that ask for it (@NVTX@ in their flags): CCCL uses the real NVTX when
    # it can include it, so this stand-in must not be on every include path.
    mkdir -p "$COMPAT/nvtx/nvtx3"
    NVTX_FLAGS="-I$COMPAT/nvtx"
    cat >"$COMPAT/nvtx/nvtx3/nvToolsExt.h" <<'H'
/* stand-in written by rgpu tests/samples/run-samples.sh: NVTX calls do nothing */
#pragma once
static inline int nvtxRangePushA(const char *message) { (void)message; return 0; }
static inline int nvtxRangePop(void) { return 0; }
static inline void nvtxMarkA(const char *message) { (void)message; }
H
fi
# Keep partial output of a sample that is killed at its timeout (stdout is a file).
STDBUF=()
command -v stdbuf >/dev/null && STDBUF=(stdbuf -oL -eL)

# ---------------------------------------------------------------------------------------------
# The samples. One entry per line, fields separated by '|':
#   name | directory under Samples/ | kind | extra nvcc flags | run arguments | success marker
# The marker is an extended regular expression and is the last field, so it may contain '|'.
# kind:
#   rt              all .cu/.cpp/.c of the directory into one executable (runtime API)
#   drv             as rt, plus -lcuda (driver API, linked against rgpu's libcuda.so)
#   fatbin:K.cu:F   K.cu is built separately with `nvcc -fatbin` (default arch, so SASS + PTX)
#                   into F next to the executable; the other sources as `drv`
#   ptx:K.cu:F      same with `nvcc -ptx`
#   skip:REASON     not built: REASON goes to the table
# In the flags, @NVTX@ stands for the include directory of the NVTX stand-in (see above).
# Arguments shrink the problem where a sample has a flag for it (the table shows them).
# ---------------------------------------------------------------------------------------------
SAMPLE_LIST='
vectorAdd|0_Introduction/vectorAdd|rt|||Test PASSED
vectorAddDrv|0_Introduction/vectorAddDrv|fatbin:vectorAdd_kernel.cu:vectorAdd_kernel64.fatbin|||Result = PASS
vectorAddMMAP|0_Introduction/vectorAddMMAP|fatbin:vectorAdd_kernel.cu:vectorAdd_kernel64.fatbin|||Result = PASS
asyncAPI|0_Introduction/asyncAPI|rt|||CPU executed [0-9]+ iterations
clock|0_Introduction/clock|rt|||Average clocks/block
fp16ScalarProduct|0_Introduction/fp16ScalarProduct|rt|||PASSED
matrixMul|0_Introduction/matrixMul|rt||-wA=64 -hA=64 -wB=64 -hB=64|Result = PASS
matrixMulDrv|0_Introduction/matrixMulDrv|fatbin:matrixMul_kernel.cu:matrixMul_kernel64.fatbin|||Result = PASS
matrixMulDynlinkJIT|0_Introduction/matrixMulDynlinkJIT|rt|-ldl||Test run success|PASS
mergeSort|0_Introduction/mergeSort|rt|||Shutting down
simpleAWBarrier|0_Introduction/simpleAWBarrier|rt|||PASSED
simpleAssert|0_Introduction/simpleAssert|rt|||completed, returned OK
simpleAtomicIntrinsics|0_Introduction/simpleAtomicIntrinsics|rt|||completed, returned OK
simpleAttributes|0_Introduction/simpleAttributes|rt|||Test PASSED|PASSED
simpleCallback|0_Introduction/simpleCallback|rt|||^Success
simpleCooperativeGroups|0_Introduction/simpleCooperativeGroups|rt|||Sum of all ranks 0..15 in this tiledPartition16 group is 120
simpleCubemapTexture|0_Introduction/simpleCubemapTexture|rt|||Test PASSED|PASSED
simpleDrvRuntime|0_Introduction/simpleDrvRuntime|fatbin:vectorAdd_kernel.cu:vectorAdd_kernel64.fatbin|||Result = PASS
simpleHyperQ|0_Introduction/simpleHyperQ|rt|||Measured time for sample
simpleLayeredTexture|0_Introduction/simpleLayeredTexture|rt|||Test PASSED|PASSED
simpleMultiCopy|0_Introduction/simpleMultiCopy|rt|||Overlapped using 4 streams
simpleMultiGPU|0_Introduction/simpleMultiGPU|rt|||Test PASSED|PASSED|Comparing
simpleOccupancy|0_Introduction/simpleOccupancy|rt|||Test PASSED
simplePitchLinearTexture|0_Introduction/simplePitchLinearTexture|rt|||PASSED
simplePrintf|0_Introduction/simplePrintf|rt|||Value is:
simpleStreams|0_Introduction/simpleStreams|rt|||4 streams:
simpleSurfaceWrite|0_Introduction/simpleSurfaceWrite|rt|||completed, returned OK
simpleTemplates|0_Introduction/simpleTemplates|rt|||Test Results: 0 Failures
simpleTexture|0_Introduction/simpleTexture|rt|||completed, returned OK
simpleTextureDrv|0_Introduction/simpleTextureDrv|fatbin:simpleTexture_kernel.cu:simpleTexture_kernel64.fatbin|||Test PASSED|PASSED
simpleVoteIntrinsics|0_Introduction/simpleVoteIntrinsics|rt|||Shutting down
simpleZeroCopy|0_Introduction/simpleZeroCopy|rt|||Test PASSED|PASSED
systemWideAtomics|0_Introduction/systemWideAtomics|rt|||completed, returned OK|PASSED
template|0_Introduction/template|rt|||Processing time
UnifiedMemoryStreams|0_Introduction/UnifiedMemoryStreams|skip:needs OpenMP and cuBLAS
clock_nvrtc|0_Introduction/clock_nvrtc|skip:NVRTC
cudaOpenMP|0_Introduction/cudaOpenMP|skip:OpenMP
matrixMul_nvrtc|0_Introduction/matrixMul_nvrtc|skip:NVRTC
simpleAssert_nvrtc|0_Introduction/simpleAssert_nvrtc|skip:NVRTC
simpleAtomicIntrinsics_nvrtc|0_Introduction/simpleAtomicIntrinsics_nvrtc|skip:NVRTC
vectorAdd_nvrtc|0_Introduction/vectorAdd_nvrtc|skip:NVRTC
simpleCUDA2GL|0_Introduction/simpleCUDA2GL|skip:OpenGL
simpleTexture3D|0_Introduction/simpleTexture3D|skip:OpenGL (freeglut)
simpleIPC|0_Introduction/simpleIPC|skip:CUDA IPC (multi-process)
simpleMPI|0_Introduction/simpleMPI|skip:MPI
simpleP2P|0_Introduction/simpleP2P|skip:peer-to-peer, needs 2 GPUs
deviceQuery|1_Utilities/deviceQuery|rt|||Result = PASS
deviceQueryDrv|1_Utilities/deviceQueryDrv|drv|||Result = PASS
topologyQuery|1_Utilities/topologyQuery|rt|||GPU0
bandwidthTest|1_Utilities/bandwidthTest|rt|||Result = PASS
convolutionSeparable|2_Concepts_and_Techniques/convolutionSeparable|rt|||Test passed
convolutionTexture|2_Concepts_and_Techniques/convolutionTexture|rt|||Test passed
dct8x8|2_Concepts_and_Techniques/dct8x8|rt|||Test passed
eigenvalues|2_Concepts_and_Techniques/eigenvalues|rt||-iters-timing=1|Test Succeeded
histogram|2_Concepts_and_Techniques/histogram|rt|||Test passed
inlinePTX|2_Concepts_and_Techniques/inlinePTX|rt|||Test Successful
interval|2_Concepts_and_Techniques/interval|rt|||Check against Host computation
radixSortThrust|2_Concepts_and_Techniques/radixSortThrust|rt|||Test passed
reduction|2_Concepts_and_Techniques/reduction|rt|||Test passed
reductionMultiBlockCG|2_Concepts_and_Techniques/reductionMultiBlockCG|rt|||Test passed|PASSED
scalarProd|2_Concepts_and_Techniques/scalarProd|rt|||Test passed
scan|2_Concepts_and_Techniques/scan|rt|||Shutting down
segmentationTreeThrust|2_Concepts_and_Techniques/segmentationTreeThrust|rt|||Test passed|PASSED|[Ss]uccess
shfl_scan|2_Concepts_and_Techniques/shfl_scan|rt|||CheckSum: 2073600,
sortingNetworks|2_Concepts_and_Techniques/sortingNetworks|rt|||Shutting down
streamOrderedAllocation|2_Concepts_and_Techniques/streamOrderedAllocation|rt|||streamOrderedAllocationPostSync PASSED
threadFenceReduction|2_Concepts_and_Techniques/threadFenceReduction|rt|||CPU result
threadMigration|2_Concepts_and_Techniques/threadMigration|fatbin:threadMigration_kernel.cu:threadMigration_kernel64.fatbin|-lpthread||ThreadProc\(\) Finished
EGLStream_CUDA_CrossGPU|2_Concepts_and_Techniques/EGLStream_CUDA_CrossGPU|skip:EGL, needs 2 GPUs
EGLStream_CUDA_Interop|2_Concepts_and_Techniques/EGLStream_CUDA_Interop|skip:EGL
FunctionPointers|2_Concepts_and_Techniques/FunctionPointers|skip:OpenGL (freeglut)
boxFilter|2_Concepts_and_Techniques/boxFilter|skip:OpenGL (freeglut)
imageDenoising|2_Concepts_and_Techniques/imageDenoising|skip:OpenGL (freeglut)
particles|2_Concepts_and_Techniques/particles|skip:OpenGL (freeglut)
MC_EstimatePiInlineP|2_Concepts_and_Techniques/MC_EstimatePiInlineP|skip:cuRAND
MC_EstimatePiInlineQ|2_Concepts_and_Techniques/MC_EstimatePiInlineQ|skip:cuRAND
MC_EstimatePiP|2_Concepts_and_Techniques/MC_EstimatePiP|skip:cuRAND
MC_EstimatePiQ|2_Concepts_and_Techniques/MC_EstimatePiQ|skip:cuRAND
MC_SingleAsianOptionP|2_Concepts_and_Techniques/MC_SingleAsianOptionP|skip:cuRAND
inlinePTX_nvrtc|2_Concepts_and_Techniques/inlinePTX_nvrtc|skip:NVRTC
streamOrderedAllocationIPC|2_Concepts_and_Techniques/streamOrderedAllocationIPC|skip:CUDA IPC (multi-process)
streamOrderedAllocationP2P|2_Concepts_and_Techniques/streamOrderedAllocationP2P|skip:peer-to-peer, needs 2 GPUs
StreamPriorities|3_CUDA_Features/StreamPriorities|rt|||HI  priority stream
bf16TensorCoreGemm|3_CUDA_Features/bf16TensorCoreGemm|rt|||Result = PASS|PASSED
binaryPartitionCG|3_CUDA_Features/binaryPartitionCG|rt|||Sum of Odds
bindlessTexture|3_CUDA_Features/bindlessTexture|skip:OpenGL (freeglut)
cdpSimplePrint|3_CUDA_Features/cdpSimplePrint|rt|-rdc=true -lcudadevrt||PASSED|Done
cdpSimpleQuicksort|3_CUDA_Features/cdpSimpleQuicksort|rt|-rdc=true -lcudadevrt||OK
cudaCompressibleMemory|3_CUDA_Features/cudaCompressibleMemory|drv|||PASSED|Done
cudaTensorCoreGemm|3_CUDA_Features/cudaTensorCoreGemm|rt|||Result = PASS|PASSED
dmmaTensorCoreGemm|3_CUDA_Features/dmmaTensorCoreGemm|rt|||Result = PASS|PASSED
globalToShmemAsyncCopy|3_CUDA_Features/globalToShmemAsyncCopy|rt||-wA=128 -hA=128 -wB=128 -hB=128|Result = PASS
graphConditionalNodes|3_CUDA_Features/graphConditionalNodes|rt|||PASSED|Complete
graphMemoryFootprint|3_CUDA_Features/graphMemoryFootprint|rt|||PASSED|Done
graphMemoryNodes|3_CUDA_Features/graphMemoryNodes|rt|||Validation PASSED
immaTensorCoreGemm|3_CUDA_Features/immaTensorCoreGemm|rt|||Result = PASS|PASSED
jacobiCudaGraphs|3_CUDA_Features/jacobiCudaGraphs|rt|||PASSED
newdelete|3_CUDA_Features/newdelete|rt|||^OK
ptxjit|3_CUDA_Features/ptxjit|ptx:ptxjit_kernel.cu:ptxjit_kernel64.ptx|||Test Successful|PASSED
simpleCudaGraphs|3_CUDA_Features/simpleCudaGraphs|rt|||PASSED|Successful|match
tf32TensorCoreGemm|3_CUDA_Features/tf32TensorCoreGemm|rt|||Result = PASS|PASSED
warpAggregatedAtomicsCG|3_CUDA_Features/warpAggregatedAtomicsCG|rt|||PASSED
cdpAdvancedQuicksort|3_CUDA_Features/cdpAdvancedQuicksort|skip:dynamic parallelism (covered by cdpSimplePrint, cdpSimpleQuicksort)
cdpBezierTessellation|3_CUDA_Features/cdpBezierTessellation|skip:dynamic parallelism (covered by cdpSimplePrint, cdpSimpleQuicksort)
cdpQuadtree|3_CUDA_Features/cdpQuadtree|skip:dynamic parallelism (covered by cdpSimplePrint, cdpSimpleQuicksort)
memMapIPCDrv|3_CUDA_Features/memMapIPCDrv|skip:CUDA IPC (multi-process)
LargeKernelParameter|6_Performance/LargeKernelParameter|rt|||Test passed
UnifiedMemoryPerf|6_Performance/UnifiedMemoryPerf|rt|||PASSED|Done
alignedTypes|6_Performance/alignedTypes|rt|||Test passed
cudaGraphsPerfScaling|6_Performance/cudaGraphsPerfScaling|rt|@NVTX@||Test passed
transpose|6_Performance/transpose|rt|||Test passed
'

# Samples whose success is a kernel fault (a device-side assert).
EXPECTED_FAULT="simpleAssert"

# A sample that exits 0 or 2 after printing one of these checked a device property and did
# nothing: reported as "waived" with that line.
WAIVE_RE='waiv|does not support|doesn.t support|not supported on this device|skipping execution'

# One markdown row per sample; details in the logs.
rows=()
npass=0; nfail=0; nskip=0; nbuild=0; nwaived=0

md_escape() { sed -e 's/|/\\|/g' -e 's/`/'"'"'/g' <<<"$1" | tr '\n' ' ' | sed 's/ *$//'; }

# A short hint for a failure, from the run log: rgpu's own log lines first (unsupported
# functions, PTX rejected at load, illegal address), else the last error-looking line.
failure_hint() {
    local log=$1 hint
    hint=$(grep -oE '[A-Za-z0-9_]+ is not supported yet|unsupported instruction `[^`]*`|unknown symbol [A-Za-z0-9_]+|unsupported module image: [^:]*|kernel [^ ]+ failed: [^(]*|Failed to find required function "[^"]*"|code=[0-9]+\([A-Za-z_]+\) "[^"]{0,80}"?|Driver API error = [0-9]+ "[^"]*"' "$log" 2>/dev/null |
        sed 's/ *$//' | awk '!seen[$0]++' | head -3 | paste -sd ';' -)
    [ -n "$hint" ] || hint=$(grep -iE 'error|fail|abort|illegal|assert' "$log" 2>/dev/null | tail -1)
    [ -n "$hint" ] || hint=$(grep -v '^\s*$' "$log" 2>/dev/null | tail -1)
    printf '%s' "${hint:0:200}"
}

selected() {
    [ ${#ONLY[@]} -eq 0 ] && return 0
    local n
    for n in "${ONLY[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

while IFS='|' read -r name dir kind flags args marker; do
    [ -n "$name" ] || continue
    selected "$name" || continue
    src="$SAMPLES/Samples/$dir"
    note=""
    [ -n "$args" ] && note="args: \`$args\`"

    case "$kind" in
    skip:*)
        nskip=$((nskip + 1))
        rows+=("| $name | no | skipped | | $(md_escape "${kind#skip:}") |")
        echo "== $name: skipped (${kind#skip:})"
        continue
        ;;
    esac

    if [ ! -d "$src" ]; then
        nskip=$((nskip + 1))
        rows+=("| $name | no | skipped | | not in this checkout |")
        echo "== $name: not in this checkout"
        continue
    fi

    w="$WORK/$name"
    rm -rf "$w"
    mkdir -p "$w"
    # The sample's own files (data/, reference outputs, kernels) reachable from "./".
    for f in "$src"/* "$src"/.[!.]*; do
        [ -e "$f" ] && ln -s "$f" "$w/$(basename "$f")"
    done

    # Build.
    echo "== $name: building"
    kfile=""
    link=()
    case "$kind" in
    drv) link=(-L"$LIBDIR" -lcuda) ;;
    fatbin:* | ptx:*)
        IFS=: read -r kmode kfile kout <<<"$kind"
        link=(-L"$LIBDIR" -lcuda)
        ;;
    esac
    sources=()
    for f in "$src"/*.cu "$src"/*.cpp "$src"/*.c; do
        [ -e "$f" ] || continue
        [ -n "$kfile" ] && [ "$(basename "$f")" = "$kfile" ] && continue
        sources+=("$f")
    done
    flags=${flags//@NVTX@/$NVTX_FLAGS}
    built=yes
    (
        set -x
        if [ -n "$kfile" ]; then
            timeout "$BUILD_TIMEOUT" "$NVCC" -O2 -I "$SAMPLES/Common" -I "$src" -I "$COMPAT" "-$kmode" \
                "$src/$kfile" -o "$w/$kout" || exit 1
        fi
        # shellcheck disable=SC2086 # flags are a word list on purpose
        timeout "$BUILD_TIMEOUT" "$NVCC" -O2 -I "$SAMPLES/Common" -I "$src" -I "$COMPAT" "${sources[@]}" \
            -o "$w/$name.exe" $flags "${link[@]}"
    ) >"$w/build.log" 2>&1 || built=no
    # (the executable is NAME.exe so that it never clashes with a linked sample file)

    if [ "$built" = no ]; then
        nbuild=$((nbuild + 1))
        hint=$(grep -m1 -E 'error' "$w/build.log")
        rows+=("| $name | no | build failed | | $(md_escape "${note:+$note; }${hint:0:200}") |")
        echo "   build failed: $hint"
        continue
    fi

    # Run.
    echo "== $name: running ${args:+($args)}"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    (cd "$w" && timeout -k 10 "$SAMPLE_TIMEOUT" "${STDBUF[@]}" "$RGPU" run -- "./$name.exe" $args) \
        </dev/null >"$w/run.log.raw" 2>&1
    rc=$?
    sed 's/\x1b\[[0-9;]*m//g' "$w/run.log.raw" >"$w/run.log" && rm -f "$w/run.log.raw"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

    # rgpu logs every kernel fault ("rgpu: kernel NAME failed: ...") and every call of a function
    # it does not implement ("NAME is not supported yet"). A fault fails the sample even when it
    # prints its marker (some samples print "Test passed" unconditionally); unsupported calls
    # a sample survived are noted.
    fault=""
    case " $EXPECTED_FAULT " in
    *" $name "*) ;;
    *) fault=$(grep -m1 -oE 'rgpu: kernel [^ ]+ failed: [^(]*' "$w/run.log") ;;
    esac
    unsup=$(grep -oE '[A-Za-z0-9_]+ is not supported yet' "$w/run.log" | awk '{print $1}' |
        awk '!seen[$0]++' | paste -sd ',' -)

    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        result="FAIL (timeout)"
        note="${note:+$note; }no result after ${SAMPLE_TIMEOUT}s"
    elif [ $rc -eq 0 ] && [ -n "$fault" ]; then
        result="FAIL (kernel fault)"
        note="${note:+$note; }${fault#rgpu: }"
    elif [ $rc -eq 0 ] && grep -qE "$marker" "$w/run.log"; then
        result=pass
        [ -n "$unsup" ] && note="${note:+$note; }survived unsupported calls: $unsup"
    elif [ $rc -eq 2 ] || { [ $rc -eq 0 ] && grep -qiE "$WAIVE_RE" "$w/run.log"; }; then
        result=waived
        note="${note:+$note; }$(grep -iE "$WAIVE_RE|requires|need" "$w/run.log" | tail -1)"
    elif [ $rc -eq 0 ]; then
        result="FAIL (no success marker)"
        note="${note:+$note; }$(failure_hint "$w/run.log")"
    else
        result="FAIL (exit $rc)"
        note="${note:+$note; }$(failure_hint "$w/run.log")"
    fi
    case "$result" in
    pass) npass=$((npass + 1)) ;;
    waived) nwaived=$((nwaived + 1)) ;;
    *) nfail=$((nfail + 1)) ;;
    esac
    rows+=("| $name | yes | $result | $secs | $(md_escape "$note") |")
    echo "   $result in ${secs}s ${note:+- $note}"
done <<<"$SAMPLE_LIST"

{
    echo "| sample | built? | result | seconds | note |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "pass: $npass, fail: $nfail, waived: $nwaived, build failed: $nbuild, skipped: $nskip" \
        "(device: $RGPU_DEVICE, timeout ${SAMPLE_TIMEOUT}s per sample; logs in $WORK)"
} >"$OUT"
echo "wrote $OUT (pass $npass, fail $nfail, waived $nwaived, build failed $nbuild, skipped $nskip)"
