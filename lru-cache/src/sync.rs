//! Synchronisation primitives: std's, or loom's under `--cfg sysblocks_loom`
//! so that the loom models in `tests/loom.rs` explore every interleaving.

#[cfg(sysblocks_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(sysblocks_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
