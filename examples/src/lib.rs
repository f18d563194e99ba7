//! Shared helpers for the sysblocks tour and example services.
//!
//! The tour (`cargo run --release -p sysblocks-examples --bin tour`) runs
//! every building block end to end and prints what happened. Each crate adds
//! its own section in [`sections`] when it joins the workspace.

pub mod report;
pub mod sections;
pub mod traces;
