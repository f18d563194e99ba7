//! Atomics, locks and thread-locals: std's, or loom's under `--cfg
//! sysblocks_loom` so that `tests/loom.rs` explores every interleaving.

#[cfg(sysblocks_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(sysblocks_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
#[cfg(sysblocks_loom)]
pub(crate) use loom::thread_local;
#[cfg(not(sysblocks_loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(sysblocks_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
#[cfg(not(sysblocks_loom))]
pub(crate) use std::thread_local;
