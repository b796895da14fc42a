//! CUDA error codes as a Rust type, and the errors of decoding untrusted bytes.

use std::num::NonZeroU32;

/// A CUDA driver error: a non-zero `CUresult`. `Result<T, CuError>` is how every layer of rgpu
/// reports failure; on the wire it is the raw `CUresult` number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct CuError(NonZeroU32);

/// `Result` with a CUDA error.
pub type CuResult<T> = Result<T, CuError>;

impl CuError {
    /// Builds a constant; `v` must not be 0 (`CUDA_SUCCESS`).
    pub const fn new_const(v: u32) -> CuError {
        match NonZeroU32::new(v) {
            Some(n) => CuError(n),
            None => panic!("CUDA_SUCCESS is not an error"),
        }
    }

    /// The error for a raw `CUresult`, or `None` for `CUDA_SUCCESS`.
    pub fn from_raw(v: u32) -> Option<CuError> {
        NonZeroU32::new(v).map(CuError)
    }

    /// The raw `CUresult`.
    pub fn raw(self) -> u32 {
        self.0.get()
    }

    /// Converts a result into the C `CUresult`.
    pub fn to_raw(r: CuResult<()>) -> u32 {
        match r {
            Ok(()) => 0,
            Err(e) => e.raw(),
        }
    }

    /// `CUDA_ERROR_…` name of a raw code, as `cuGetErrorName` reports it.
    pub fn name_of(v: u32) -> Option<&'static str> {
        crate::messages::CU_RESULTS
            .iter()
            .find(|(c, _)| *c == v)
            .map(|(_, n)| *n)
    }

    /// The driver's description of a raw code, as `cuGetErrorString` reports it.
    pub fn description_of(v: u32) -> Option<&'static str> {
        Self::name_of(v)?;
        Some(match v {
            0 => "no error",
            1 => "invalid argument",
            2 => "out of memory",
            3 => "initialization error",
            4 => "driver shutting down",
            5 => "profiler disabled while using a system-wide profiling tool",
            6 => "profiler not initialized: call cudaProfilerInitialize()",
            7 => "profiler already started",
            8 => "profiler already stopped",
            34 => "CUDA driver is a stub library",
            35 => "CUDA driver version is insufficient for CUDA runtime version",
            46 => "CUDA-capable device(s) is/are busy or unavailable",
            100 => "no CUDA-capable device is detected",
            101 => "invalid device ordinal",
            102 => "device doesn't have valid Grid license",
            200 => "device kernel image is invalid",
            201 => "invalid device context",
            202 => "context already current",
            205 => "mapping of buffer object failed",
            206 => "unmapping of buffer object failed",
            207 => "array is mapped",
            208 => "resource already mapped",
            209 => "no kernel image is available for execution on the device",
            210 => "resource already acquired",
            211 => "resource not mapped",
            212 => "resource not mapped as array",
            213 => "resource not mapped as pointer",
            214 => "uncorrectable ECC error encountered",
            215 => "limit is not supported on this architecture",
            216 => "exclusive-thread device already in use by a different thread",
            217 => "peer access is not supported between these two devices",
            218 => "a PTX JIT compilation failed",
            219 => "invalid OpenGL or DirectX context",
            220 => "uncorrectable NVLink error detected during the execution",
            221 => "PTX JIT compiler library not found",
            222 => "the provided PTX was compiled with an unsupported toolchain.",
            300 => "invalid source",
            301 => "file not found",
            302 => "link to a shared object failed to resolve",
            303 => "shared object initialization failed",
            304 => "OS call failed or operation not supported on this OS",
            400 => "invalid resource handle",
            401 => "the operation cannot be performed in the present state",
            500 => "named symbol not found",
            600 => "device not ready",
            700 => "an illegal memory access was encountered",
            701 => "too many resources requested for launch",
            702 => "the launch timed out and was terminated",
            703 => "launch uses incompatible texturing mode",
            704 => "peer access is already enabled",
            705 => "peer access has not been enabled",
            708 => "primary context active",
            709 => "context is destroyed",
            710 => "device-side assert triggered",
            711 => "peer mapping resources exhausted",
            712 => "part or all of the requested memory range is already mapped",
            713 => "pointer does not correspond to a registered memory region",
            714 => "hardware stack error",
            715 => "an illegal instruction was encountered",
            716 => "misaligned address",
            717 => "operation not supported on global/shared address space",
            718 => "invalid program counter",
            719 => "unspecified launch failure",
            720 => "too many blocks in cooperative launch",
            800 => "operation not permitted",
            801 => "operation not supported",
            802 => "system not yet initialized",
            803 => "system has unsupported display driver / cuda driver combination",
            900 => "operation not permitted when stream is capturing",
            901 => "operation failed due to a previous error during capture",
            902 => "operation would result in a merge of separate capture sequences",
            903 => "capture was not ended in the same stream as it began",
            904 => "capturing stream has unjoined work",
            905 => "operation would make the legacy stream depend on a capturing blocking stream",
            906 => "operation not permitted on an event last recorded in a capturing stream",
            907 => "attempt to terminate a thread-local capture sequence from another thread",
            908 => "wait operation on a graph-captured event from a different capture",
            909 => "timeout waiting for an operation to complete",
            910 => "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update",
            999 => "unknown error",
            _ => return Some(generic_description(v)),
        })
    }
}

fn generic_description(v: u32) -> &'static str {
    // Codes without a hand-written text: derive one from the name once and keep it.
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<u32, &'static str>>> = OnceLock::new();
    let map = CACHE.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(v).or_insert_with(|| {
        let name = CuError::name_of(v).unwrap_or("CUDA_ERROR_UNKNOWN");
        let text = name
            .trim_start_matches("CUDA_ERROR_")
            .to_ascii_lowercase()
            .replace('_', " ");
        Box::leak(text.into_boxed_str())
    })
}

impl std::fmt::Debug for CuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Self::name_of(self.raw()) {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "CUresult({})", self.raw()),
        }
    }
}

impl std::fmt::Display for CuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}: {}",
            self,
            Self::description_of(self.raw()).unwrap_or("unrecognized error code")
        )
    }
}

impl std::error::Error for CuError {}

/// Why bytes from the network could not be decoded. Every decoder of untrusted input returns this
/// instead of panicking.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The opcode names no message of this protocol version.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u32),
    /// The body does not parse as the message the opcode names.
    #[error("malformed message body: {0}")]
    Body(#[from] postcard::Error),
    /// The body parsed but bytes were left over.
    #[error("{0} trailing bytes after message body")]
    TrailingBytes(usize),
    /// The frame is shorter than its fixed header.
    #[error("frame of {0} bytes is shorter than its header")]
    ShortFrame(usize),
    /// A length field exceeds the configured limit.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
    /// The frame kind byte is unknown.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The handshake did not start with the rgpu magic.
    #[error("not an rgpu peer (bad magic)")]
    BadMagic,
    /// A compressed body does not decompress to its declared size.
    #[error("corrupt {0}")]
    Corrupt(&'static str),
}
