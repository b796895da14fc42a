#!/usr/bin/env bash
# One-shot check of rgpu on a machine with an NVIDIA GPU, from prebuilt binaries (no Rust
# toolchain and no network needed): builds the CUDA test corpus with the local nvcc, runs every
# program natively and through `rgpu run` against a local `rgpu server --device gpu`, compares
# them, runs rgpu-bench and bench/programs/bandwidth.c, tries PyTorch through the shim, measures
# how fast a SIGKILLed client's GPU memory comes back, and writes OUTDIR/gpu-check.md.
#
#   bash bench/gpu-check.sh --bin DIR --out OUTDIR [options]
#
#   --bin DIR         rgpu, libcuda.so (the shim; `rgpu run` looks for it next to rgpu) and
#                     rgpu-bench, copied from target/release (required)
#   --out OUTDIR      report and logs (required; created; at most 7 logs beside the report)
#   --device KIND     the server's device: gpu (default), cpu or auto
#   --no-native       no GPU here: skip native runs, nvidia-smi and the GPU-memory measurement
#   --nvcc PATH       nvcc (default: $NVCC, nvcc on PATH, /usr/local/cuda/bin/nvcc, .cuda/venv)
#   --arch NN         build SASS + PTX for sm_NN as well (default: nvidia-smi's compute_cap;
#                     none with --no-native, i.e. nvcc's defaults as the Rust harness uses)
#   --timeout S       limit for each program run (default 30)
#   --budget S        time limit for the whole script (default 285)
#   --jobs N          programs run at once (default: 4, at most the CPU count)
#   --hold-mib N      memory held by the dead-client check (default 4096; 256 on --device cpu)
#   --work DIR        build/run folder, kept and reused by later runs (default: temporary)
#   --only REGEX      only the cases (bench/gpu-check/cases.txt) whose name matches
#   --server-arg ARG  one more argument for `rgpu server` (repeatable), e.g. --idle-timeout=1
#
# Exit status: 0 when the checks ran (failures are in the report), 2 for a usage error, 3 when
# the script cannot run (missing binaries, compilers, bash older than 4.4).

# Functions called only through pool_add or traps look unused to shellcheck.
# shellcheck disable=SC2329
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CASES_FILE=$HERE/gpu-check/cases.txt

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    printf '%s' "${s%"${s##*[![:space:]]}"}"
}
die() {
    echo "gpu-check: $*" >&2
    exit 3
}
log() { printf '[%3ds] %s\n' "$SECONDS" "$*"; }
now_ms() { date +%s%3N; }

if [ "${BASH_VERSINFO[0]}" -lt 4 ] || { [ "${BASH_VERSINFO[0]}" -eq 4 ] && [ "${BASH_VERSINFO[1]}" -lt 4 ]; }; then
    die "bash 4.4 or newer needed (this is $BASH_VERSION)"
fi

# --- options -----------------------------------------------------------------------------------
BIN="" OUT="" DEVICE=gpu NATIVE=1 NVCC=${NVCC:-} ARCH="" RUN_TIMEOUT=30 BUDGET=285 JOBS=""
HOLD_MIB="" WORK="" ONLY=""
SERVER_ARGS=()
need_value() { [ "$2" -ge 2 ] || { echo "gpu-check: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
    --bin) need_value "$1" $#; BIN=$2; shift 2 ;;
    --out) need_value "$1" $#; OUT=$2; shift 2 ;;
    --device) need_value "$1" $#; DEVICE=$2; shift 2 ;;
    --no-native) NATIVE=0; shift ;;
    --nvcc) need_value "$1" $#; NVCC=$2; shift 2 ;;
    --arch) need_value "$1" $#; ARCH=${2#sm_}; shift 2 ;;
    --timeout) need_value "$1" $#; RUN_TIMEOUT=$2; shift 2 ;;
    --budget) need_value "$1" $#; BUDGET=$2; shift 2 ;;
    --jobs) need_value "$1" $#; JOBS=$2; shift 2 ;;
    --hold-mib) need_value "$1" $#; HOLD_MIB=$2; shift 2 ;;
    --work) need_value "$1" $#; WORK=$2; shift 2 ;;
    --only) need_value "$1" $#; ONLY=$2; shift 2 ;;
    --server-arg) need_value "$1" $#; SERVER_ARGS+=("$2"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$BIN" ] && [ -n "$OUT" ] || { echo "gpu-check: --bin and --out are required (see --help)" >&2; exit 2; }
case $DEVICE in gpu | cpu | auto) ;; *) echo "gpu-check: --device must be gpu, cpu or auto" >&2; exit 2 ;; esac
for v in RUN_TIMEOUT BUDGET; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "gpu-check: --${v,,} wants whole seconds" >&2; exit 2; }
done
NPROC=$(nproc 2>/dev/null || echo 2)
[ -n "$JOBS" ] || JOBS=$((NPROC < 4 ? NPROC : 4))
[ -n "$HOLD_MIB" ] || { if [ "$DEVICE" = cpu ]; then HOLD_MIB=256; else HOLD_MIB=4096; fi; }
[[ $JOBS =~ ^[1-9][0-9]*$ && $HOLD_MIB =~ ^[1-9][0-9]*$ ]] || { echo "gpu-check: --jobs/--hold-mib want numbers" >&2; exit 2; }
[ -z "$ARCH" ] || [[ $ARCH =~ ^[0-9]+[af]?$ ]] || { echo "gpu-check: --arch wants e.g. 90" >&2; exit 2; }

# --- binaries and tools ------------------------------------------------------------------------
[ -d "$BIN" ] || die "--bin $BIN is not a directory"
BIN=$(cd "$BIN" && pwd)
RGPU=$BIN/rgpu
BENCH=$BIN/rgpu-bench
[ -x "$RGPU" ] || die "$RGPU missing (copy target/release/rgpu)"
[ -e "$BIN/libcuda.so" ] || die "$BIN/libcuda.so missing: \`rgpu run\` loads the shim from next to rgpu (copy target/release/libcuda.so)"
[ -f "$CASES_FILE" ] || die "$CASES_FILE missing"
for t in timeout date sed sort diff cmp; do command -v "$t" >/dev/null || die "$t not found"; done
CC=${CC:-cc}
command -v "$CC" >/dev/null || die "C compiler $CC not found (set CC)"
if [ -z "$NVCC" ]; then
    for c in "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc "$ROOT"/.cuda/venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc; do
        [ -n "$c" ] && [ -x "$c" ] && { NVCC=$c; break; }
    done
fi
[ -n "$NVCC" ] && [ -x "$NVCC" ] || die "nvcc not found (pass --nvcc PATH)"
CUDA_HOME=$(cd "$(dirname "$NVCC")/.." && pwd)
CUDA_INC=$CUDA_HOME/include
[ -e "$CUDA_INC/cuda.h" ] || die "no cuda.h in $CUDA_INC (next to $NVCC)"
# Link-time libcuda for the C programs: the toolkit's stub (the real driver is found at run time);
# else rgpu's shim, which has the same soname (libcuda.so.1), so a native run still gets the driver.
LINK_DIR=$BIN
for d in "$CUDA_HOME/lib64/stubs" "$CUDA_HOME/lib/stubs" "$CUDA_HOME"/targets/*/lib/stubs; do
    [ -e "$d/libcuda.so" ] && { LINK_DIR=$d; break; }
done

mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "$WORK" ]; then
    mkdir -p "$WORK" || die "cannot create $WORK"
    W=$(cd "$WORK" && pwd)
    KEEP_WORK=1
else
    W=$(mktemp -d "${TMPDIR:-/tmp}/rgpu-gpu-check.XXXXXX") || die "mktemp failed"
    KEEP_WORK=0
fi
rm -rf "$W/res" "$W/run" "$W/server-state"
mkdir -p "$W/bin/c" "$W/bin/cuda" "$W/bin/kernels" "$W/build" "$W/res" "$W/run"
CONN=$W/connection.json
for f in env build server programs bench torch memory; do : >"$OUT/$f.log"; done
rm -f "$OUT/gpu-check.md"

# --- results so far: the report is written from these, also when the run is cut short ----------
GPU_NAME="n/a" DRIVER="n/a" GPU_MEM="n/a" GPU_CC="" NVCC_VER="" PY_VER="n/a" TORCH_VER="n/a"
RGPU_VER="" GIT_REV="n/a"
C_NAME=() C_PROG=() C_ARGS=() C_EXP=() C_FLAGS=() C_NOTE=() UNLISTED=() BUILD_FAILED=()
SERVER_OK=0 SERVER_STARTS=0 SERVER_EVENTS=() DEVICES_TEXT=""
MEM_RESULT="not run" MEM_NATIVE="" MEM_SERVER=""
BENCH_STATUS="not run" BENCH_TABLE="" BW_NATIVE="" BW_RGPU=""
TORCH_NATIVE="not run" TORCH_RGPU="not run" TORCH_TAIL=""
MULTI_RESULT="not run" PEER_RESULT="not run" SERVER2_PID=""
SUMMARY_NOTE=""
declare -A COUNT=()
server_state() {
    if [ "$SERVER_OK" = 1 ]; then echo "started"
    elif [ "$SERVER_STARTS" = 0 ]; then echo "not started"
    else echo "**did not start**"; fi
}
# COUNT[verdict] = number of cases, from the result files (a case without one was not run).
count_results() {
    local i v
    COUNT=()
    for i in "${!C_NAME[@]}"; do
        v=SKIP
        [ -f "$W/res/${C_NAME[i]}.tsv" ] && v=$(cut -f7 "$W/res/${C_NAME[i]}.tsv")
        COUNT[$v]=$((${COUNT[$v]:-0} + 1))
    done
}

# --- the report (OUTDIR/gpu-check.md) ----------------------------------------------------------
write_report() {
    local r=$OUT/gpu-check.md i n nrc nms rrc rms match verdict detail ratio
    count_results
    {
        echo "# rgpu GPU check"
        echo
        echo "| | |"
        echo "|---|---|"
        echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
        echo "| host | $(uname -n), $NPROC CPUs |"
        echo "| GPU | $(cell "$GPU_NAME"), $(cell "$GPU_MEM"), compute capability ${GPU_CC:-n/a} |"
        echo "| driver | $(cell "$DRIVER") |"
        echo "| nvcc | $(cell "${NVCC_VER:-?}") ($(cell "$NVCC")); corpus built for ${ARCH:+sm_$ARCH SASS+PTX and }sm_75 SASS+PTX |"
        echo "| python / torch | $(cell "$PY_VER") / $(cell "${TORCH_VER:-n/a}") |"
        echo "| rgpu | $(cell "$RGPU_VER"), commit $GIT_REV, binaries from \`$BIN\` |"
        echo "| server | \`$(trim "rgpu server --device $DEVICE ${SERVER_ARGS[*]}")\`: $(server_state)$( ((SERVER_STARTS > 1)) && echo ", $SERVER_STARTS starts") |"
        echo "| mode | native runs: $( ((NATIVE)) && echo yes || echo "no (--no-native)"); $JOBS cases at once; ${RUN_TIMEOUT}s per run; took ${SECONDS}s |"
        echo
        [ -n "$SUMMARY_NOTE" ] && { echo "**$SUMMARY_NOTE**"; echo; }
        echo "## Summary"
        echo
        echo "* programs: **${COUNT[PASS]:-0} pass**, ${COUNT[FAIL]:-0} fail, ${COUNT[SAME]:-0} fail natively as well (rgpu agrees), ${COUNT[NATIVE-DIFFERS]:-0} pass through rgpu but not natively, ${COUNT[BUILD-FAIL]:-0} did not build, $((${COUNT[SKIP]:-0} + ${COUNT[NO-SERVER]:-0})) not run — of ${#C_NAME[@]} cases"
        echo "* dead-client memory release: $MEM_RESULT"
        echo "* rgpu-bench: $BENCH_STATUS"
        echo "* PyTorch through rgpu: $TORCH_RGPU (native: $TORCH_NATIVE)"
        echo "* one process, two servers on this machine's GPU (\`multi_device 2\`): $MULTI_RESULT"
        echo "* cuMemcpyPeer between the two servers (\`peer_copy 64\`, staged through the client): $PEER_RESULT"
        local e
        for e in "${SERVER_EVENTS[@]}"; do echo "* server: $(cell "$e")"; done
        [ ${#BUILD_FAILED[@]} -gt 0 ] && echo "* not built: ${BUILD_FAILED[*]} (build.log)"
        [ ${#UNLISTED[@]} -gt 0 ] && echo "* corpus programs not in bench/gpu-check/cases.txt (not run): ${UNLISTED[*]}"
        echo
        echo "## Programs"
        echo
        echo "PASS: native and rgpu both give the expected exit code (and success line) and the same stdout"
        echo "(pointers, free memory and timings masked; device-printf lines sorted). SAME: the program"
        echo "fails natively too and rgpu reproduces exactly that. NATIVE-DIFFERS: rgpu gives what the Rust"
        echo "harness expects, the real driver does not (the program's expectation does not hold on this GPU,"
        echo "or it passes invalid handles that crash the real driver). FAIL: anything else. With --no-native,"
        echo "PASS means rgpu gives the expected exit code and success line. Outputs: programs.log."
        echo
        echo "| program | native | rgpu | outputs match | native ms | rgpu ms | rgpu/native | verdict | detail |"
        echo "|---|---|---|---|---|---|---|---|---|"
        for i in "${!C_NAME[@]}"; do
            n=${C_NAME[i]}
            [ -f "$W/res/$n.tsv" ] || continue
            IFS=$'\t' read -r _ nrc nms rrc rms match verdict detail <"$W/res/$n.tsv"
            ratio=-
            [[ $nms =~ ^[0-9]+$ && $rms =~ ^[0-9]+$ && $nms -gt 0 ]] && ratio=$(awk "BEGIN{printf \"%.1fx\", $rms/$nms}")
            [ "$verdict" = PASS ] || verdict="**$verdict**"
            [ -z "$detail" ] && [ -n "${C_NOTE[i]}" ] && [ "$verdict" != PASS ] && detail=${C_NOTE[i]}
            echo "| $n | $(rc_text "$nrc") | $(rc_text "$rrc") | $match | $nms | $rms | $ratio | $verdict | $(cell "$detail") |"
        done
        echo
        echo "## Benchmarks"
        echo
        echo "\`rgpu-bench --connection-file\` against the server: $BENCH_STATUS"
        echo
        [ -n "$BENCH_TABLE" ] && { echo "$BENCH_TABLE"; echo; }
        echo "\`bench/programs/bandwidth.c 64\` (driver API, as a program sees it):"
        echo
        echo "| run | result |"
        echo "|---|---|"
        echo "| native | $(cell "${BW_NATIVE:-not run}") |"
        echo "| rgpu | $(cell "${BW_RGPU:-not run}") |"
        echo
        echo "## PyTorch smoke test"
        echo
        echo "\`rgpu run -- python3 -c 'import torch; x=torch.ones(1024,device=\"cuda\"); print((x*2).sum().item())'\`"
        echo "(the script's version also prints torch's version, is_available(), the device name and \"allocated\","
        echo "to show how far it gets). Native: $TORCH_NATIVE. Through rgpu: $TORCH_RGPU. Last lines:"
        echo
        echo '```'
        echo "${TORCH_TAIL:-(no output)}"
        echo '```'
        echo
        echo "## Dead-client memory release"
        echo
        echo "\`rgpu run -- hold_memory $HOLD_MIB\`, SIGKILL to the client after READY, nvidia-smi memory.used polled"
        echo "every 50 ms for up to 5 s. Acceptance: back to the baseline within 1 s. The server's own"
        echo "idle timeout (how long it waits for a silent client) is 3 s unless --server-arg=--idle-timeout=S."
        echo
        echo "* through rgpu: $MEM_RESULT"
        [ -n "$MEM_SERVER" ] && echo "* $MEM_SERVER"
        [ -n "$MEM_NATIVE" ] && echo "* native reference (the driver freeing a killed process's memory): $MEM_NATIVE"
        echo
        echo "## Logs"
        echo
        echo "env.log (versions, nvidia-smi), build.log, server.log, programs.log (each case's outputs and"
        echo "diff), bench.log, torch.log, memory.log (samples)."
    } >"$r"
    REPORT_DONE=1
}

print_summary() {
    echo
    echo "== programs: ${COUNT[PASS]:-0} pass, ${COUNT[FAIL]:-0} fail, ${COUNT[SAME]:-0} fail natively too, ${COUNT[NATIVE-DIFFERS]:-0} pass only through rgpu, ${COUNT[BUILD-FAIL]:-0} build failures, $((${COUNT[SKIP]:-0} + ${COUNT[NO-SERVER]:-0})) not run (of ${#C_NAME[@]})"
    echo "== server: $(server_state)${SERVER_EVENTS[0]:+; ${SERVER_EVENTS[*]}}"
    echo "== memory release: $MEM_RESULT"
    echo "== rgpu-bench: $BENCH_STATUS"
    echo "== torch through rgpu: $TORCH_RGPU"
    echo "== report: $OUT/gpu-check.md (${SECONDS}s)"
}

# --- cleanup: the server, a held client, and running jobs die with the script -------------------
SERVER_PID="" HOLD_RUN_PID="" HOLD_CHILD="" WATCHDOG_PID="" REPORT_DONE=0 STAGE=setup
POOL=() # background workers (builds, cases) still running
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    [ -n "$HOLD_CHILD" ] && kill -KILL "$HOLD_CHILD" 2>/dev/null
    [ -n "$HOLD_RUN_PID" ] && kill -KILL "$HOLD_RUN_PID" 2>/dev/null
    # Workers and their direct children (`timeout`, which passes the signal on to its program).
    for p in "${POOL[@]}"; do
        kill $(pgrep -P "$p" 2>/dev/null) "$p" 2>/dev/null
    done
    stop_server
    [ -n "$SERVER2_PID" ] && kill -KILL "$SERVER2_PID" 2>/dev/null
    if [ -n "$WATCHDOG_PID" ]; then
        if command -v pgrep >/dev/null; then
            for p in $(pgrep -P "$WATCHDOG_PID"); do kill "$p" 2>/dev/null; done
            wait "$WATCHDOG_PID" 2>/dev/null
        else
            kill "$WATCHDOG_PID" 2>/dev/null
        fi
    fi
    if [ "$REPORT_DONE" = 0 ] && [ "$STAGE" != setup ]; then
        [ -n "$SUMMARY_NOTE" ] || SUMMARY_NOTE="interrupted during: $STAGE"
        write_report
        print_summary
    fi
    [ "$KEEP_WORK" = 1 ] || rm -rf "$W"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "gpu-check: interrupted" >&2; exit 130' INT TERM
# Over the budget: stop, write what there is (the report says so), exit 0 like any failed check.
trap 'SUMMARY_NOTE="stopped: over the time budget (${BUDGET}s) during: $STAGE"; echo "gpu-check: $SUMMARY_NOTE" >&2; exit 0' USR1

# Watchdog: past the budget (plus a margin for the step then running), the script is stopped;
# the EXIT trap still writes what it has into the report.
# (Ending the script kills the sleep, so the watchdog exits without a signal and is reaped.)
(
    exec </dev/null >/dev/null 2>&1
    sleep $((BUDGET + 5)) && kill -USR1 $$
) &
WATCHDOG_PID=$!

# Seconds left of the budget, less `reserve`.
left() { echo $((BUDGET - SECONDS - ${1:-0})); }
# min(want, seconds left less reserve), at least `floor`.
cap() {
    local want=$1 reserve=$2 floor=${3:-5} l
    l=$(left "$reserve")
    ((l < want)) && want=$l
    ((want < floor)) && want=$floor
    echo "$want"
}
# The first telling line of a run's stderr or stdout (else the last line of its stderr).
why() {
    local re='error|fail|mismatch|expected|panick|not supported|unsupported|abort|assert|timed out'
    {
        grep -m1 -iE "$re" "$1.err" 2>/dev/null || grep -m1 -iE "$re" "$1.out" 2>/dev/null ||
            grep -v '^\s*$' "$1.err" 2>/dev/null | tail -1
    } | sed -E -e "s|$ROOT/||g" -e 's/^[0-9]{4}-[0-9-]+T[0-9:.]+Z +//'
}
# An exit status for the report: signals named.
rc_text() {
    case $1 in
    124) echo "timeout" ;;
    134) echo "134 (SIGABRT)" ;;
    137) echo "137 (SIGKILL)" ;;
    139) echo "139 (SIGSEGV)" ;;
    *) echo "$1" ;;
    esac
}
# Markdown table cell: one line, no pipes, at most 140 characters.
cell() {
    local s=${1//$'\n'/ }
    s=${s//|/\\|}
    ((${#s} > 140)) && s="${s:0:137}..."
    printf '%s' "$s"
}

# =================================================================================================
# 1. Environment facts
# =================================================================================================
STAGE=environment
RGPU_VER=$("$RGPU" --version 2>&1 | head -1)
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "n/a")
log "rgpu check: bin=$BIN out=$OUT device=$DEVICE native=$NATIVE work=$W"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(uname -n) $(uname -r), $NPROC CPUs"
    echo "repo: $ROOT (commit $GIT_REV)"
    echo "rgpu: $RGPU_VER"
    ls -l "$BIN"
    echo
    if ((NATIVE)); then
        echo "## nvidia-smi"
        timeout 20 nvidia-smi 2>&1
        echo "## libcuda.so.1 of the system"
        ldconfig -p 2>/dev/null | grep 'libcuda\.so' || echo "(ldconfig lists no libcuda)"
    fi
    echo "## nvcc ($NVCC)"
    timeout 20 "$NVCC" --version 2>&1
    echo "## $CC"
    "$CC" --version 2>&1 | head -1
    echo "## python3"
    timeout 30 python3 -c 'import sys; print(sys.version)
try:
    import torch; print("torch", torch.__version__, "built for CUDA", torch.version.cuda)
except Exception as e: print("torch not importable:", e)' 2>&1
} >>"$OUT/env.log" 2>&1
if ((NATIVE)); then
    q=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -1)
    if [ -n "$q" ]; then
        IFS=',' read -r GPU_NAME DRIVER GPU_MEM GPU_CC <<<"$q"
        GPU_NAME=$(trim "$GPU_NAME") DRIVER=$(trim "$DRIVER") GPU_MEM=$(trim "$GPU_MEM") GPU_CC=$(trim "$GPU_CC")
    else
        GPU_NAME="nvidia-smi failed (see env.log)"
        log "warning: nvidia-smi gave nothing; native runs will probably fail (--no-native?)"
    fi
    [ -z "$ARCH" ] && [[ $GPU_CC =~ ^[0-9]+\.[0-9]+$ ]] && ARCH=${GPU_CC/./}
fi
NVCC_VER=$(timeout 20 "$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\), \(V[0-9.]*\).*/\1 (\2)/p')
PY_VER=$(python3 --version 2>&1 | head -1)
TORCH_VER=$(sed -n 's/^torch \(.*\)/\1/p; s/^torch not importable: \(.*\)/not importable (\1)/p' "$OUT/env.log" | head -1)
log "GPU: $GPU_NAME | driver $DRIVER | $GPU_MEM | cc ${GPU_CC:-n/a}"
log "nvcc: ${NVCC_VER:-?} ($NVCC) | $PY_VER | torch: ${TORCH_VER:-n/a}"
log "rgpu: $RGPU_VER"

# =================================================================================================
# 2. Build the corpus (as tests/tests/common/mod.rs does), in parallel
# =================================================================================================
STAGE=build
# nvcc flags of the runtime programs and fatbins: the harness's defaults (sm_75 SASS + PTX), plus
# SASS and PTX for this GPU when its architecture is known. rgpu's CPU device picks the newest PTX
# up to sm_75 from a fatbin, a GPU the SASS for itself.
CU_ARCH=() FATBIN_ARCH=(-arch=sm_75)
if [ -n "$ARCH" ]; then
    CU_ARCH=(-gencode "arch=compute_75,code=[sm_75,compute_75]" -gencode "arch=compute_$ARCH,code=[sm_$ARCH,compute_$ARCH]")
    FATBIN_ARCH=(-gencode "arch=compute_75,code=[sm_75,compute_75]" -gencode "arch=compute_$ARCH,code=sm_$ARCH")
fi

# The cases: name | program | arguments | expected exit | flags | note
while IFS='|' read -r n p a e f note; do
    n=$(trim "$n")
    [ -z "$n" ] || [ "${n:0:1}" = "#" ] && continue
    [ -n "$ONLY" ] && ! [[ $n =~ $ONLY ]] && continue
    C_NAME+=("$n") C_PROG+=("$(trim "$p")") C_ARGS+=("$(trim "$a")") C_EXP+=("$(trim "$e")")
    C_FLAGS+=("$(trim "$f")") C_NOTE+=("$(trim "$note")")
done <"$CASES_FILE"

# What to build: programs and kernel modules the cases name, plus the helpers of steps 5 and 7.
declare -A WANT=([c/hold_memory]=1 [bench/bandwidth]=1 [bench/peer_copy]=1 [cuda/multi_device]=1)
for i in "${!C_NAME[@]}"; do
    case ${C_PROG[i]} in c/* | cuda/*) WANT[${C_PROG[i]}]=1 ;; esac
    read -ra words <<<"${C_ARGS[i]}"
    for a in "${words[@]}"; do
        # SASS for this GPU only when its architecture is known (the case is skipped otherwise).
        [[ $a == *.native.cubin && -z $ARCH ]] && continue
        [ "${a:0:1}" = "@" ] && WANT[mod/${a:1}]=1
    done
done
# Corpus sources the cases file does not mention (so new programs get noticed).
for s in "$ROOT"/tests/programs/c/*.c "$ROOT"/tests/programs/cuda/*.cu; do
    k=$(basename "$(dirname "$s")")/$(basename "${s%.*}")
    case $k in c/hold_memory | c/wait_then_copy) continue ;; esac
    grep -q "| *$k *|" "$CASES_FILE" || UNLISTED+=("$k")
done

# Builds one item; skips it when the output is newer than its sources and was built the same way.
build_item() {
    local item=$1 kind=${1%%/*} name=${1#*/} out src deps=() cmd=() alt=()
    local blog="$W/build/${item//\//_}.log"
    case $kind in
    c | bench)
        if [ "$kind" = c ]; then src=$ROOT/tests/programs/c/$name.c; else src=$ROOT/bench/programs/$name.c; fi
        out=$W/bin/c/$name deps=("$src" "$ROOT"/tests/programs/c/*.h)
        cmd=("$CC" -O1 -Wall -Werror -I "$CUDA_INC" "$src" -o "$out" "-L$LINK_DIR" -lcuda -lpthread -lm)
        # Fallback: headers of another CUDA version may warn or lack what the stub exports.
        alt=("$CC" -O1 -Wall -I "$CUDA_INC" "$src" -o "$out" "-L$BIN" -lcuda -lpthread -lm)
        ;;
    cuda)
        src=$ROOT/tests/programs/cuda/$name.cu out=$W/bin/cuda/$name deps=("$src" "$ROOT"/tests/programs/cuda/*.h)
        cmd=("$NVCC" "${CU_ARCH[@]}" "$src" -o "$out")
        ;;
    mod)
        local base=${name%%.*} ext=${name#*.}
        src=$ROOT/tests/kernels/$base.cu out=$W/bin/kernels/$name deps=("$src")
        case $ext in
        ptx) cmd=("$NVCC" -ptx -O3 -arch=sm_75 "$src" -o "$out") ;;
        fatbin) cmd=("$NVCC" -fatbin -O3 "${FATBIN_ARCH[@]}" "$src" -o "$out") ;;
        cubin) cmd=("$NVCC" -cubin -O3 -arch=sm_75 "$src" -o "$out") ;;
        native.cubin)
            [ -n "$ARCH" ] || { echo "no GPU architecture known (--arch)" >"$blog"; return 1; }
            cmd=("$NVCC" -cubin -O3 "-arch=sm_$ARCH" "$src" -o "$out") ;;
        *) echo "unknown module kind $ext" >"$blog"; return 1 ;;
        esac
        ;;
    *) echo "unknown item $item" >"$blog"; return 1 ;;
    esac
    local stamp="${cmd[*]}" fresh=1 d
    if [ -x "$out" ] || [ -s "$out" ]; then
        for d in "${deps[@]}"; do [ "$d" -nt "$out" ] && fresh=0; done
        [ -f "$out.cmd" ] && [ "$(cat "$out.cmd")" = "$stamp" ] || fresh=0
        ((fresh)) && { echo "(up to date) $stamp" >"$blog"; return 0; }
    fi
    rm -f "$out" "$out.cmd"
    echo "+ $stamp" >"$blog"
    local lim
    lim=$(cap 180 100 10)
    if timeout -k 5 "$lim" "${cmd[@]}" >>"$blog" 2>&1; then
        echo "$stamp" >"$out.cmd"
        return 0
    fi
    [ ${#alt[@]} -gt 0 ] || return 1
    echo "+ (retry without -Werror, linked against the shim) ${alt[*]}" >>"$blog"
    timeout -k 5 "$lim" "${alt[@]}" >>"$blog" 2>&1 && echo "$stamp" >"$out.cmd"
}

# Runs "$@" in the background, keeping at most N of them running (like xargs -P N).
pool_add() {
    local n=$1 p alive
    shift
    while :; do
        alive=()
        for p in "${POOL[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
        POOL=("${alive[@]}")
        [ ${#POOL[@]} -lt "$n" ] && break
        wait -n 2>/dev/null || sleep 0.05
    done
    "$@" &
    POOL+=($!)
}
pool_wait() {
    local p
    for p in "${POOL[@]}"; do wait "$p" 2>/dev/null; done
    POOL=()
}

mapfile -t ITEMS < <(printf '%s\n' "${!WANT[@]}" | sort)
log "building ${#ITEMS[@]} items with $NVCC and $CC (${NPROC} at once; arch: ${ARCH:+sm_$ARCH + }sm_75 PTX)"
BUILD_T0=$SECONDS
for it in "${ITEMS[@]}"; do
    pool_add "$NPROC" build_item "$it"
done
pool_wait
for it in "${ITEMS[@]}"; do
    blog="$W/build/${it//\//_}.log"
    case $it in
    c/* | bench/*) out=$W/bin/c/${it#*/} ;;
    cuda/*) out=$W/bin/cuda/${it#*/} ;;
    mod/*) out=$W/bin/kernels/${it#*/} ;;
    esac
    if [ -f "$out.cmd" ] && [ -e "$out" ]; then st=ok; else st=FAILED; BUILD_FAILED+=("$it"); fi
    grep -q 'retry without -Werror' "$blog" 2>/dev/null && [ "$st" = ok ] && st="ok (without -Werror, linked against the shim)"
    { echo "=== $it: $st"; cat "$blog" 2>/dev/null; echo; } >>"$OUT/build.log"
done
BUILD_SECS=$((SECONDS - BUILD_T0))
log "build: $((${#ITEMS[@]} - ${#BUILD_FAILED[@]})) of ${#ITEMS[@]} built in ${BUILD_SECS}s${BUILD_FAILED[0]:+; failed: ${BUILD_FAILED[*]}}"

# =================================================================================================
# 3. The server
# =================================================================================================
STAGE=server
start_server() {
    rm -f "$CONN"
    SERVER_STARTS=$((SERVER_STARTS + 1))
    echo "=== [$(date -u +%T)] start $SERVER_STARTS: rgpu server --device $DEVICE ${SERVER_ARGS[*]}" >>"$OUT/server.log"
    NO_COLOR=1 RGPU_LOG=${RGPU_SERVER_LOG:-info} "$RGPU" server --device "$DEVICE" --listen 127.0.0.1:0 \
        --state-dir "$W/server-state" --connection-file "$CONN" --shutdown-grace 1 "${SERVER_ARGS[@]}" \
        </dev/null >>"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    local t0=$SECONDS
    while ! [ -s "$CONN" ]; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID"
            SERVER_EVENTS+=("start $SERVER_STARTS: server exited with status $? before writing its connection file")
            SERVER_PID="" SERVER_OK=0
            return 1
        fi
        if ((SECONDS - t0 > 30)); then
            SERVER_EVENTS+=("start $SERVER_STARTS: no connection file after 30 s")
            stop_server
            SERVER_OK=0
            return 1
        fi
        sleep 0.1
    done
    # The connection file may still be being written: `rgpu devices` proves the server answers.
    local try
    for try in 1 2 3; do
        DEVICES_TEXT=$(timeout 15 "$RGPU" devices --connection-file "$CONN" 2>&1) && break
        sleep 0.5
    done
    if [ "$try" = 3 ] && ! grep -q INDEX <<<"$DEVICES_TEXT"; then
        SERVER_EVENTS+=("start $SERVER_STARTS: \`rgpu devices\` failed: $(tail -1 <<<"$DEVICES_TEXT")")
    fi
    SERVER_OK=1
}
# Restarts the server if it died (a crash is recorded, and the rest of the checks still run).
ensure_server() {
    [ "$SERVER_OK" = 1 ] || return 1
    kill -0 "$SERVER_PID" 2>/dev/null && return 0
    wait "$SERVER_PID"
    SERVER_EVENTS+=("server died (status $?) before \"$1\"; restarted")
    log "server died before $1: restarting"
    SERVER_PID=""
    ((SERVER_STARTS < 4)) && start_server
}
log "starting: rgpu server --device $DEVICE ${SERVER_ARGS[*]} (log: $OUT/server.log)"
if start_server; then
    log "server up (pid $SERVER_PID):"
    while IFS= read -r l; do echo "        $l"; done <<<"$DEVICES_TEXT"
else
    log "server did not start: ${SERVER_EVENTS[-1]} — rgpu runs are skipped; see server.log"
    tail -5 "$OUT/server.log" | sed 's/^/        /'
fi

# Runs a program natively or through rgpu with a time limit, stdout and stderr to OUTPREFIX.out
# and .err; prints "EXIT MILLISECONDS".
#   run_side native|rgpu LIMIT OUTPREFIX [VAR=VALUE...] -- PROGRAM ARGS...
run_side() {
    local side=$1 limit=$2 pre=$3 t0 rc envs=(RGPU_LOG=warn NO_COLOR=1)
    shift 3
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    t0=$(now_ms)
    if [ "$side" = native ]; then
        env -u LD_PRELOAD -u RGPU_CONNECTION_FILE "${envs[@]}" timeout -k 3 "$limit" "$@" </dev/null >"$pre.out" 2>"$pre.err"
    else
        env "${envs[@]}" timeout -k 3 "$limit" "$RGPU" run --connection-file "$CONN" -- "$@" </dev/null >"$pre.out" 2>"$pre.err"
    fi
    rc=$?
    echo "$rc $(($(now_ms) - t0))"
}

# =================================================================================================
# 7. (run early, on a quiet GPU) dead-client memory check
# =================================================================================================
STAGE="memory check"
# When the server ended the session of client PID, in ms after KILL_MS (epoch ms), from its log.
session_end_ms() {
    local sid line ms
    sid=$(sed -n "s/.*session \([0-9]*\): client pid $1 .*/\1/p" "$OUT/server.log" | tail -1)
    [ -n "$sid" ] || return 1
    line=$(grep -m1 "session $sid ended" "$OUT/server.log") || return 1
    ms=$(date -d "${line%% *}" +%s%3N 2>/dev/null) || return 1
    echo $((ms - $2))
}
mem_used() { # MiB in use on all GPUs together
    timeout 5 nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null |
        awk '{s += $1} END {if (NR) print s}'
}
# Waits until memory.used is stable (two equal samples), at most 3 s; prints it.
stable_mem() {
    local v prev=""
    for _ in $(seq 15); do
        v=$(mem_used)
        [ -n "$v" ] && [ "$v" = "$prev" ] && break
        prev=$v
        sleep 0.2
    done
    echo "$v"
}
# Starts hold_memory HOLD_MIB natively or through rgpu, waits for READY, SIGKILLs the client (the
# process holding the memory: for rgpu, `rgpu run`'s child, the one with the shim) and, if
# MEASURE (the second argument) is 1, polls memory.used every 50 ms until it is back within 64 MiB of the baseline (5 s at
# most). Sets HK_RESULT (a sentence), HK_MS (release time in ms, or empty), HK_KILL_MS (epoch ms
# of the kill) and HK_CHILD.
hold_and_kill() {
    local side=$1 MEASURE=$2 hold=$W/bin/c/hold_memory mlog=$OUT/memory.log base="" during="" v="" t=0 t0 now
    local runner child="" released="" half="" samples=0 held
    HK_RESULT="" HK_MS="" HK_KILL_MS="" HK_CHILD=""
    ((MEASURE)) && base=$(stable_mem)
    echo "=== $side: hold_memory $HOLD_MIB; baseline memory.used: ${base:-n/a} MiB" >>"$mlog"
    if [ "$side" = native ]; then
        env -u LD_PRELOAD -u RGPU_CONNECTION_FILE "$hold" "$HOLD_MIB" </dev/null >"$W/run/hold.out" 2>"$W/run/hold.err" &
    else
        NO_COLOR=1 "$RGPU" run --connection-file "$CONN" -- "$hold" "$HOLD_MIB" </dev/null >"$W/run/hold.out" 2>"$W/run/hold.err" &
    fi
    runner=$!
    HOLD_RUN_PID=$runner
    t0=$SECONDS
    until grep -q READY "$W/run/hold.out" 2>/dev/null; do
        if ! kill -0 "$runner" 2>/dev/null || ((SECONDS - t0 > 20)); then
            kill -KILL "$runner" 2>/dev/null
            wait "$runner" 2>/dev/null
            HOLD_RUN_PID=""
            HK_RESULT="FAILED: hold_memory never printed READY ($(why "$W/run/hold"))"
            cat "$W/run/hold.err" >>"$mlog"
            return 1
        fi
        sleep 0.05
    done
    if [ "$side" = native ]; then
        child=$runner
    elif command -v pgrep >/dev/null; then
        child=$(pgrep -P "$runner" | head -1)
    else
        child=$(cut -d' ' -f1 "/proc/$runner/task/$runner/children" 2>/dev/null)
    fi
    if [ -z "$child" ]; then
        kill -KILL "$runner" 2>/dev/null
        wait "$runner" 2>/dev/null
        HOLD_RUN_PID=""
        HK_RESULT="FAILED: cannot find rgpu run's child"
        return 1
    fi
    HOLD_CHILD=$child HK_CHILD=$child
    echo "client pid $child ($(readlink "/proc/$child/exe" 2>/dev/null))" >>"$mlog"
    ((MEASURE)) && { during=$(mem_used); echo "while held: ${during:-?} MiB" >>"$mlog"; }
    kill -KILL "$child"
    t0=$(now_ms)
    HK_KILL_MS=$t0
    if ((MEASURE)) && [ -n "$base" ] && [ -n "$during" ]; then
        held=$((during - base))
        ((held < HOLD_MIB * 9 / 10)) && echo "warning: only $held MiB above the baseline while held" >>"$mlog"
        echo "SIGKILL sent; samples (ms after the kill, MiB):" >>"$mlog"
        local start
        while :; do
            start=$(now_ms)
            v=$(mem_used)
            now=$(now_ms)
            t=$((now - t0)) samples=$((samples + 1))
            echo "$t ${v:-?}" >>"$mlog"
            if [ -n "$v" ]; then
                [ -z "$half" ] && ((v <= base + held / 2)) && half=$t
                ((v <= base + 64)) && { released=$t; break; }
            fi
            ((t > 5000)) && break
            # One sample per 50 ms: nvidia-smi itself takes part of that.
            ((now - start < 50)) && sleep "0.0$((50 - (now - start)))"
        done
        HK_MS=$released
        if [ -n "$released" ]; then
            HK_RESULT="released after $(awk "BEGIN{printf \"%.2f\", $released/1000}") s"
        else
            HK_RESULT="not back to the baseline within 5 s (last sample ${v:-?} MiB)"
        fi
        HK_RESULT+=" (baseline $base MiB, held $during MiB, +$held${half:+; half of it back after $half ms}; $samples samples, one per ~$((t / samples)) ms)"
    else
        HK_RESULT="client SIGKILLed after READY (memory not measured)"
    fi
    # The runner must notice (rgpu run exits 137 when its child is killed).
    for _ in $(seq 50); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$runner" 2>/dev/null
    wait "$runner" 2>/dev/null
    echo "$side: $HK_RESULT; runner exit status $?" >>"$mlog"
    HOLD_RUN_PID="" HOLD_CHILD=""
    return 0
}
memory_check() {
    local smi=0 MEASURE=0
    ((NATIVE)) && command -v nvidia-smi >/dev/null && smi=1
    ((smi)) && [ "$DEVICE" != cpu ] && MEASURE=1
    [ -x "$W/bin/c/hold_memory" ] || { MEM_RESULT="skipped: hold_memory did not build"; return; }
    # The real driver's own figure first: how fast a killed process's memory comes back natively.
    if ((smi)); then
        hold_and_kill native 1
        MEM_NATIVE=$HK_RESULT
    fi
    [ "$SERVER_OK" = 1 ] || { MEM_RESULT="skipped: no server"; return; }
    # A first client creates whatever the server keeps for its device (e.g. a context), so that
    # the baseline is the idle server's, not the fresh one's.
    [ -x "$W/bin/c/demo_driver_api" ] && run_side rgpu 20 "$W/run/warmup" -- "$W/bin/c/demo_driver_api" >/dev/null
    hold_and_kill rgpu "$MEASURE" || { MEM_RESULT=$HK_RESULT; return; }
    if ((MEASURE)); then
        if [ -z "$HK_MS" ]; then MEM_RESULT="FAIL: $HK_RESULT"
        elif ((HK_MS <= 1000)); then MEM_RESULT="PASS (within 1 s): $HK_RESULT"
        else MEM_RESULT="FAIL (over 1 s): $HK_RESULT"; fi
    else
        MEM_RESULT="not measured (server device: $DEVICE"
        ((NATIVE)) || MEM_RESULT+=", --no-native"
        MEM_RESULT+="): client SIGKILLed after READY"
    fi
    # The server's side: when it ended the killed client's session (waits up to 6 s for it).
    local ended=""
    while ! ended=$(session_end_ms "$HK_CHILD" "$HK_KILL_MS") && (($(now_ms) - HK_KILL_MS < 6000)); do sleep 0.05; done
    MEM_SERVER="the server ended the session ${ended:-(not within 6 s)}${ended:+ ms} after the SIGKILL (server.log)"
    echo "server.log: session ended ${ended:-(not within 6 s)} ms after the SIGKILL" >>"$OUT/memory.log"
}
log "dead-client check: hold_memory $HOLD_MIB MiB, SIGKILL, memory.used polled every 50 ms (when there is a GPU)"
memory_check 2>>"$OUT/memory.log" # (also catches bash's "Killed" notices)
[ -n "$MEM_NATIVE" ] && log "memory, native reference: $MEM_NATIVE"
log "memory, rgpu: $MEM_RESULT"
[ -n "$MEM_SERVER" ] && log "memory, rgpu: $MEM_SERVER"

# =================================================================================================
# 5. Benchmarks: rgpu-bench against the server; bandwidth.c natively and through rgpu
# =================================================================================================
STAGE=bench
bw=$W/bin/c/bandwidth
BENCH_ARGS=(--connection-file "$CONN" --chart "$OUT/bench.png" --rgpu "$BIN/rgpu" --lanes 4 --sweep-max 64M --iters 1000)
[ -x "$bw" ] && BENCH_ARGS+=(--program "$bw")
[ -x "$bw" ] && ((NATIVE)) && BENCH_ARGS+=(--native)
if ! ensure_server bench; then
    BENCH_STATUS="skipped: no server"
elif ! [ -x "$BENCH" ]; then
    BENCH_STATUS="skipped: $BENCH missing"
else
    lim=$(cap 90 150 10)
    log "rgpu-bench --connection-file (limit ${lim}s)"
    echo "+ rgpu-bench ${BENCH_ARGS[*]}" >>"$OUT/bench.log"
    timeout -k 3 "$lim" "$BENCH" "${BENCH_ARGS[@]}" </dev/null >"$W/run/bench.out" 2>"$W/run/bench.err"
    rc=$?
    cat "$W/run/bench.out" "$W/run/bench.err" >>"$OUT/bench.log"
    BENCH_TABLE=$(cat "$W/run/bench.out")
    case $rc in
    0) BENCH_STATUS=ok ;;
    124 | 137) BENCH_STATUS="timed out after ${lim}s" ;;
    *) BENCH_STATUS="failed (exit $rc): $(grep -v '^\s*$' "$W/run/bench.err" | tail -1)" ;;
    esac
fi
if [ -x "$bw" ]; then
    if ((NATIVE)); then
        read -r rc _ < <(run_side native "$(cap 20 140)" "$W/run/bw-native" -- "$bw" 64)
        { echo "+ bandwidth 64 (native): exit $rc"; cat "$W/run/bw-native.out" "$W/run/bw-native.err"; } >>"$OUT/bench.log"
        BW_NATIVE=$(paste -sd';' "$W/run/bw-native.out")
        [ "$rc" = 0 ] || BW_NATIVE+=" (exit $rc: $(tail -1 "$W/run/bw-native.err"))"
    fi
    if ensure_server bandwidth; then
        read -r rc _ < <(run_side rgpu "$(cap 30 140)" "$W/run/bw-rgpu" -- "$bw" 64)
        { echo "+ bandwidth 64 (rgpu): exit $rc"; cat "$W/run/bw-rgpu.out" "$W/run/bw-rgpu.err"; } >>"$OUT/bench.log"
        BW_RGPU=$(paste -sd';' "$W/run/bw-rgpu.out")
        [ "$rc" = 0 ] || BW_RGPU+=" (exit $rc: $(tail -1 "$W/run/bw-rgpu.err"))"
    fi
fi
log "bench: $BENCH_STATUS"
[ -n "$BW_NATIVE" ] && log "bandwidth.c native: $BW_NATIVE"
[ -n "$BW_RGPU" ] && log "bandwidth.c rgpu:   $BW_RGPU"

# =================================================================================================
# 4. The programs, natively and through rgpu
# =================================================================================================
STAGE=programs
TORCH_RESERVE=75 # seconds kept for the torch smoke test and the report
# stdout filters: values that legitimately differ between runs (pointers, free memory, timings);
# with the `sort` flag, line order too (device printf from many threads).
normalize() {
    sed -E -e 's/0x[0-9a-fA-F]{9,}/0x<ptr>/g' \
        -e 's/[0-9]+ MiB free/<n> MiB free/g' \
        -e 's/[0-9]+(\.[0-9]+)? ?(ms|us|µs|ns)\b/<time>/g' |
        if [ "$1" = yes ]; then LC_ALL=C sort; else cat; fi
}
run_case() {
    local i=$1
    local name=${C_NAME[i]} prog=${C_PROG[i]} exp=${C_EXP[i]} flags=${C_FLAGS[i]}
    local res=$W/res/$name exe sorted=no marker=": PASSED" envs=() args=() words=() a f
    local dir=$W/run/$name
    mkdir -p "$dir"
    emit() { # the result line: native exit, ms, rgpu exit, ms, match, verdict, detail
        local d=${7//$'\t'/ }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$1" "$2" "$3" "$4" "$5" "$6" "${d//$'\n'/ }" >"$res.tsv"
    }
    IFS=',' read -ra fl <<<"$flags"
    for f in "${fl[@]}"; do
        f=$(trim "$f")
        case $f in
        sort) sorted=yes ;;
        env:*) envs+=("${f#env:}") ;;
        marker:*) marker=${f#marker:} ;;
        needs-arch) [ -n "$ARCH" ] || { emit - - - - n/a SKIP "no GPU architecture (--no-native)"; return; } ;;
        esac
    done
    case $prog in
    c/*) exe=$W/bin/c/${prog#c/} ;;
    cuda/*) exe=$W/bin/cuda/${prog#cuda/} ;;
    bin/*) exe=$BIN/${prog#bin/}; [ -x "$exe" ] || { emit - - - - n/a SKIP "not in --bin"; return; } ;;
    esac
    [ -f "$exe.cmd" ] || [ "${prog%%/*}" = bin ] || { emit - - - - n/a BUILD-FAIL "see build.log"; return; }
    read -ra words <<<"${C_ARGS[i]}"
    for a in "${words[@]}"; do
        case $a in
        @*) [ -f "$W/bin/kernels/${a:1}.cmd" ] || { emit - - - - n/a BUILD-FAIL "${a:1}: see build.log"; return; }
            args+=("$W/bin/kernels/${a:1}") ;;
        %*) args+=("$ROOT/${a:1}") ;;
        *) args+=("$a") ;;
        esac
    done
    if (($(left "$TORCH_RESERVE") < 5)); then emit - - - - n/a SKIP "out of time"; return; fi
    local limit nrc=- nms=- rrc=- rms=- match=n/a verdict detail=""
    limit=$(cap "$RUN_TIMEOUT" "$TORCH_RESERVE")
    cd "$dir" || return
    if ((NATIVE)); then read -r nrc nms < <(run_side native "$limit" "$res.native" "${envs[@]}" -- "$exe" "${args[@]}"); fi
    if [ "$SERVER_OK" = 1 ]; then
        limit=$(cap "$RUN_TIMEOUT" "$TORCH_RESERVE")
        read -r rrc rms < <(run_side rgpu "$limit" "$res.rgpu" "${envs[@]}" -- "$exe" "${args[@]}")
    fi
    # ok = the expected exit code, and for exit 0 the success line.
    side_ok() { [ "$1" = "$exp" ] && { [ "$exp" != 0 ] || grep -qF -- "$marker" "$2.out"; }; }
    if [ "$rrc" = - ]; then
        verdict=NO-SERVER
        side_ok "$nrc" "$res.native" || detail="native: exit $(rc_text "$nrc") $(why "$res.native")"
    elif ((NATIVE)); then
        normalize "$sorted" <"$res.native.out" >"$res.native.norm"
        normalize "$sorted" <"$res.rgpu.out" >"$res.rgpu.norm"
        if cmp -s "$res.native.norm" "$res.rgpu.norm"; then match=yes; else match=no; fi
        local n_ok=0 r_ok=0
        side_ok "$nrc" "$res.native" && n_ok=1
        side_ok "$rrc" "$res.rgpu" && r_ok=1
        if [ "$match" = yes ] && ((n_ok && r_ok)); then
            verdict=PASS
        elif [ "$match" = yes ] && [ "$nrc" = "$rrc" ]; then
            verdict=SAME detail="fails natively too (exit $(rc_text "$nrc")): $(why "$res.native")"
        elif ((r_ok && !n_ok)); then
            verdict=NATIVE-DIFFERS detail="native exit $(rc_text "$nrc"): $(why "$res.native")"
        else
            verdict=FAIL
            if [ "$nrc" != "$rrc" ]; then
                detail="exit $(rc_text "$rrc") (native $(rc_text "$nrc")): $(why "$res.rgpu")"
            else
                detail="stdout differs: $(diff "$res.native.norm" "$res.rgpu.norm" | grep -m2 '^[<>]' | tr '\n' ' ')"
            fi
        fi
    else
        if side_ok "$rrc" "$res.rgpu"; then verdict=PASS; else verdict=FAIL detail="exit $(rc_text "$rrc"): $(why "$res.rgpu")"; fi
    fi
    case $nrc in 124 | 137) detail="native timed out ($limit s) $detail" ;; esac
    case $rrc in 124 | 137) detail="rgpu timed out ($limit s) $detail" ;; esac
    emit "$nrc" "$nms" "$rrc" "$rms" "$match" "$verdict" "$detail"
}

ensure_server programs
log "running ${#C_NAME[@]} cases, $JOBS at once (those flagged serial alone), ${RUN_TIMEOUT}s each (native: $( ((NATIVE)) && echo yes || echo no), rgpu: $([ "$SERVER_OK" = 1 ] && echo yes || echo no))"
# Waits (up to S seconds) until the server has ended every session it started (by its log), so
# that the memory other clients held is back before a `serial` case measures free memory.
wait_sessions_closed() {
    local t0=$SECONDS
    while ((SECONDS - t0 < $1)); do
        # Sessions the current server (after the last "=== start" line) started and ended.
        awk '/^=== \[/ {s = 0; e = 0} /: client pid / {s++} /session [0-9]+ ended/ {e++}
            END {exit !(e >= s)}' "$OUT/server.log" && return 0
        sleep 0.1
    done
    return 1
}
PROG_T0=$SECONDS
PARALLEL=() SERIAL=()
for i in "${!C_NAME[@]}"; do
    if [[ ,${C_FLAGS[i]// /}, == *,serial,* ]]; then SERIAL+=("$i"); else PARALLEL+=("$i"); fi
done
for i in "${PARALLEL[@]}"; do
    # A dead server is restarted between cases (recorded in the report).
    [ "$SERVER_OK" = 1 ] && ! kill -0 "$SERVER_PID" 2>/dev/null && { pool_wait; ensure_server "${C_NAME[i]}"; }
    pool_add "$JOBS" run_case "$i"
done
pool_wait
# Programs that check device-wide free memory run alone, on a server without other sessions.
for i in "${SERIAL[@]}"; do
    [ "$SERVER_OK" = 1 ] && ! kill -0 "$SERVER_PID" 2>/dev/null && ensure_server "${C_NAME[i]}"
    [ "$SERVER_OK" = 1 ] && wait_sessions_closed "$(cap 5 "$TORCH_RESERVE" 0)"
    (run_case "$i")
done
PROG_SECS=$((SECONDS - PROG_T0))
count_results
# programs.log: every case's command, exit codes, outputs and the diff of the compared stdout.
for i in "${!C_NAME[@]}"; do
    n=${C_NAME[i]} r=$W/res/${C_NAME[i]}
    [ -f "$r.tsv" ] || printf '%s\t-\t-\t-\t-\tn/a\tSKIP\tno result\n' "$n" >"$r.tsv"
    IFS=$'\t' read -r _ nrc nms rrc rms match verdict detail <"$r.tsv"
    printf '  %-26s %-10s native %-4s %6s ms | rgpu %-4s %6s ms | match %-3s %s\n' "$n" "$verdict" "$nrc" "$nms" "$rrc" "$rms" "$match" "$detail"
    {
        echo "=================== $n: $verdict  (${C_PROG[i]} ${C_ARGS[i]}; expected exit ${C_EXP[i]}${C_FLAGS[i]:+; ${C_FLAGS[i]}})"
        [ -n "$detail" ] && echo "detail: $detail"
        for side in native rgpu; do
            [ -f "$r.$side.out" ] || continue
            if [ "$side" = native ]; then echo "--- native: exit $nrc, $nms ms"; else echo "--- rgpu: exit $rrc, $rms ms"; fi
            echo "--- $side stdout (first 60 lines):"
            head -n 60 "$r.$side.out"
            echo "--- $side stderr (first 40 lines):"
            head -n 40 "$r.$side.err"
        done
        if [ "$match" = no ]; then
            echo "--- diff of the compared stdout (native < > rgpu):"
            diff "$r.native.norm" "$r.rgpu.norm" | head -n 40
        fi
        echo
    } >>"$OUT/programs.log"
done
log "programs: ${COUNT[PASS]:-0} pass, ${COUNT[SAME]:-0} fail natively too, ${COUNT[NATIVE-DIFFERS]:-0} pass only through rgpu, ${COUNT[FAIL]:-0} fail, ${COUNT[BUILD-FAIL]:-0} build failures, ${COUNT[SKIP]:-0} skipped, ${COUNT[NO-SERVER]:-0} without server (of ${#C_NAME[@]}; ${PROG_SECS}s)"

# =================================================================================================
# 6. PyTorch through the shim (expected to fail for now; it must not stop the script)
# =================================================================================================
STAGE=torch
TORCH_PY='import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, flush=True)
print("cuda available:", torch.cuda.is_available(), flush=True)
print("device:", torch.cuda.get_device_name(0), flush=True)
x = torch.ones(1024, device="cuda")
print("allocated", flush=True)
print((x * 2).sum().item(), flush=True)'
torch_verdict() { # exit code, output prefix
    local last err unsup
    last=$(grep -v '^\s*$' "$2.out" | tail -1)
    # The Python exception, and the first call rgpu said it does not support.
    err=$(grep -E '^[A-Za-z_.]+(Error|Exception)\b' "$2.err" | tail -1)
    unsup=$(grep -m1 -oE '[A-Za-z0-9_]+ is not supported yet' "$2.err")
    case $1 in
    0) if [ "$last" = 2048.0 ]; then echo "PASS (printed 2048.0)"; else echo "exit 0 but printed \"$last\""; fi ;;
    124 | 137) echo "timed out; got as far as: \"${last:-nothing printed}\"" ;;
    *) echo "exit $1; got as far as: \"${last:-nothing printed}\"${err:+; $err}${unsup:+ (rgpu: $unsup)}" ;;
    esac
}
if ! python3 -c 'import torch' >/dev/null 2>&1; then
    TORCH_NATIVE="skipped: python3 cannot import torch" TORCH_RGPU=$TORCH_NATIVE
else
    if ((NATIVE)); then
        read -r rc ms < <(run_side native "$(cap 30 40 5)" "$W/run/torch-native" -- python3 -u -c "$TORCH_PY")
        TORCH_NATIVE="$(torch_verdict "$rc" "$W/run/torch-native") in $ms ms"
        { echo "+ native python3 (exit $rc, $ms ms)"; cat "$W/run/torch-native.out" "$W/run/torch-native.err"; echo; } >>"$OUT/torch.log"
    fi
    if ensure_server torch; then
        read -r rc ms < <(run_side rgpu "$(cap 45 8 5)" "$W/run/torch-rgpu" -- python3 -u -c "$TORCH_PY")
        TORCH_RGPU="$(torch_verdict "$rc" "$W/run/torch-rgpu") in $ms ms"
        { echo "+ rgpu run -- python3 (exit $rc, $ms ms)"; cat "$W/run/torch-rgpu.out" "$W/run/torch-rgpu.err"; } >>"$OUT/torch.log"
        TORCH_TAIL=$(cat "$W/run/torch-rgpu.out" "$W/run/torch-rgpu.err" | grep -v '^\s*$' | tail -n 12)
        kill -0 "$SERVER_PID" 2>/dev/null || SERVER_EVENTS+=("server died during the torch smoke test")
    else
        TORCH_RGPU="skipped: no server"
    fi
fi
log "torch native: $TORCH_NATIVE"
log "torch rgpu:   $TORCH_RGPU"

# =================================================================================================
# 6b. Two servers on this machine's GPU, one program using a device of each (a server set)
# =================================================================================================
STAGE=multi
if [ "$SERVER_OK" = 1 ] && ensure_server multi && (($(left) > 40)); then
    CONN2=$W/server2.json SET=$W/servers.json
    rm -f "$CONN2"
    echo "=== [$(date -u +%T)] second server for the multi-server check" >>"$OUT/server.log"
    NO_COLOR=1 RGPU_LOG=${RGPU_SERVER_LOG:-info} "$RGPU" server --device "$DEVICE" --listen 127.0.0.1:0 \
        --state-dir "$W/server2-state" --connection-file "$CONN2" --shutdown-grace 1 "${SERVER_ARGS[@]}" \
        </dev/null >>"$OUT/server.log" 2>&1 &
    SERVER2_PID=$!
    for _ in $(seq 200); do [ -s "$CONN2" ] && break; sleep 0.1; done
    sleep 0.3
    if [ -s "$CONN2" ]; then
        # Device 0 of each server: the program sees two devices (the same GPU, two sessions).
        printf '{"servers": [%s, %s]}\n' "$(tr -d '\n' <"$CONN")" "$(tr -d '\n' <"$CONN2")" >"$SET"
        for prog in multi_device peer_copy; do
            case $prog in
            multi_device) exe=$W/bin/cuda/multi_device args=(2) ;;
            peer_copy) exe=$W/bin/c/peer_copy args=(64) ;;
            esac
            [ -x "$exe" ] || { printf -v "res_$prog" '%s' "not built"; continue; }
            t0=$(now_ms)
            env RGPU_LOG=warn NO_COLOR=1 timeout -k 3 "$(cap 60 10 5)" "$RGPU" run --connection-file "$SET" -- "$exe" "${args[@]}" \
                </dev/null >"$W/run/$prog-multi.out" 2>"$W/run/$prog-multi.err"
            rc=$? ms=$(($(now_ms) - t0))
            { echo "+ rgpu run --connection-file servers.json -- $prog ${args[*]}: exit $rc, $ms ms"; cat "$W/run/$prog-multi.out" "$W/run/$prog-multi.err"; echo; } >>"$OUT/bench.log"
            case $prog in
            multi_device)
                if [ "$rc" = 0 ] && grep -q PASSED "$W/run/$prog-multi.out"; then
                    MULTI_RESULT="PASS in $ms ms"
                else
                    MULTI_RESULT="exit $rc: $(cat "$W/run/$prog-multi.out" "$W/run/$prog-multi.err" | grep -v '^\s*$' | tail -2 | tr '\n' ' ')"
                fi ;;
            peer_copy)
                if [ "$rc" = 0 ]; then
                    PEER_RESULT=$(grep '^peer' "$W/run/$prog-multi.out" | awk -F'[ |]+' '{printf "%s KiB %s GB/s; ", $2, $4}')
                else
                    PEER_RESULT="exit $rc: $(tail -2 "$W/run/$prog-multi.err" | tr '\n' ' ')"
                fi ;;
            esac
        done
    else
        MULTI_RESULT="the second server did not start (server.log)" PEER_RESULT=$MULTI_RESULT
    fi
    kill -TERM "$SERVER2_PID" 2>/dev/null
    wait "$SERVER2_PID" 2>/dev/null
    SERVER2_PID=""
fi
log "multi-server: $MULTI_RESULT"
log "peer copies across servers: $PEER_RESULT"

# =================================================================================================
# 8. The report
# =================================================================================================
STAGE=report
write_report
STAGE=finished
print_summary
exit 0
