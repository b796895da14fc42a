//! rgpu-server owns the server side: the QUIC listener and the local Unix socket, the handshake,
//! client sessions with their resource ledgers (resumable over QUIC), the device backends (the
//! CPU device and NVIDIA GPUs), membership of a pool on etcd (registration, allocation, fencing),
//! and the `rgpu` command line (server, run, devices, status, release, quota). It must never
//! trust a client: every handle and device pointer is checked against the calling session, and
//! no client input may crash the process; a pool server serves pool allocations only.

pub mod device;
pub mod exec;
pub mod placement;
pub mod pool;
pub(crate) mod resume;
pub mod server;
pub mod session;
pub mod worker;
