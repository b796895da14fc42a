//! rgpu-server owns the server side: the QUIC listener and handshake, client sessions with their
//! resource ledgers, the device backends (the CPU device first), and the `rgpu` command line
//! (server, run, devices). It must never trust a client: every handle and device pointer is
//! checked against the calling session, and no client input may crash the process.

pub mod device;
pub mod exec;
pub mod placement;
pub mod pool;
pub(crate) mod resume;
pub mod server;
pub mod session;
pub mod worker;
