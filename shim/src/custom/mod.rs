//! Hand-written exports (`custom` in `protocol/api/driver.api`), by API area.

mod capture;
mod context;
pub(crate) mod copy;
mod dark;
mod device;
mod host;
mod init;
mod launch;
mod memory;
mod module;
mod pipeline;
mod pointer;

pub use capture::*;
pub use context::*;
pub use copy::*;
pub use dark::*;
pub use device::*;
pub use host::*;
pub use init::*;
pub use launch::*;
pub use memory::*;
pub use module::*;
pub use pipeline::precheck;
pub use pointer::*;
