//! Hand-written exports (`custom` in `protocol/api/driver.api`), by API area.

mod context;
mod host;
mod init;
mod memory;

pub use context::*;
pub use host::*;
pub use init::*;
pub use memory::*;
