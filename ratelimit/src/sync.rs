//! Atomics: std's, or loom's under `--cfg sysblocks_loom` (see `tests/loom.rs`).

#[cfg(sysblocks_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(sysblocks_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
