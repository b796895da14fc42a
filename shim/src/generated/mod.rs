//! Code generated from `protocol/api/driver.api`; see `cargo xtask codegen`.
#[allow(dead_code)]
pub mod exports;
