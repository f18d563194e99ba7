//! # Guide: at-least-once task scheduling
//!
//! (Written in full below the API; see the sections.)
