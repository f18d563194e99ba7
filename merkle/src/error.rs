//! The error type of this crate.

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MerkleError {
    /// A key or value longer than the encoding's `u32` length allows.
    TooLong {
        /// "key" or "value".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

impl fmt::Display for MerkleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MerkleError::TooLong { what, len } => {
                write!(f, "{what} is {len} bytes long; at most {} bytes are allowed", u32::MAX)
            }
        }
    }
}

impl std::error::Error for MerkleError {}
