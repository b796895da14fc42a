//! Code generated from `protocol/api/driver.api`; see `cargo xtask codegen`.
#[allow(missing_docs, clippy::all)]
pub mod messages;
