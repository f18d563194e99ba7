//! Shared helpers for the sysblocks tour and example services.
//!
//! The tour (`cargo run --release -p sysblocks-examples --bin tour`) runs
//! every building block end to end and prints what happened. Each crate adds
//! its own section in [`sections`] when it joins the workspace. With
//! `--report DIR` the sections also draw what they measured ([`charts`]):
//! one SVG per chart and an `index.html` that shows them.

pub mod charts;
pub mod report;
pub mod sections;
pub mod traces;
