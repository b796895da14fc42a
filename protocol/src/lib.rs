//! rgpu-protocol owns everything client and server must agree on: the wire messages generated
//! from `api/driver.api`, their framing and handshake, CUDA error codes, the QUIC/TLS transport
//! with certificate pinning and tokens, connection files, and the blocking client used by the
//! shim and the tools. It must not know about devices or execute any CUDA call, and its decoders
//! must never panic on untrusted bytes.

pub mod client;
pub mod connfile;
pub mod error;
pub mod fuzzing;
mod generated;
pub mod image;
pub mod transport;
pub mod wire;

pub use generated::messages;

/// Software version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
