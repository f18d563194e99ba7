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
    /// A sync message that is not valid wire format.
    Malformed {
        /// Where in the message the problem was found.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A sync message of another wire version.
    WireVersion {
        /// The version byte found.
        found: u8,
    },
    /// The transport failed (the connection broke, or the peer went away).
    Io {
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// Its message.
        message: String,
    },
    /// A summary node that does not exist: a level beyond
    /// [`MAX_LEVEL`](crate::wire::MAX_LEVEL), or a node id with more nibbles
    /// than its level.
    InvalidNode {
        /// The level asked for.
        level: usize,
        /// The node asked for.
        node: u64,
    },
    /// A [`SyncConfig`](crate::SyncConfig) that cannot work.
    BadConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// A sync message (or one entry) larger than the configured cap.
    MessageTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The storage behind a [`SyncStore`](crate::SyncStore) failed to read
    /// or write an entry.
    Store {
        /// What the storage said.
        message: String,
    },
}

impl fmt::Display for MerkleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MerkleError::TooLong { what, len } => {
                write!(f, "{what} is {len} bytes long; at most {} bytes are allowed", u32::MAX)
            }
            MerkleError::Malformed { offset, reason } => {
                write!(f, "malformed sync message at byte {offset}: {reason}")
            }
            MerkleError::WireVersion { found } => write!(
                f,
                "sync message has wire version {found}; this crate speaks version {}",
                crate::wire::WIRE_VERSION
            ),
            MerkleError::Io { kind, message } => {
                write!(f, "sync transport failed ({kind:?}): {message}")
            }
            MerkleError::InvalidNode { level, node } => write!(
                f,
                "no summary node {node} at level {level}: levels go to {}, and a node at level \
                 l has at most l nibbles",
                crate::wire::MAX_LEVEL
            ),
            MerkleError::BadConfig { reason } => write!(f, "bad sync configuration: {reason}"),
            MerkleError::MessageTooLarge { len, max } => {
                write!(f, "sync message of {len} bytes exceeds the cap of {max} bytes")
            }
            MerkleError::Store { message } => write!(f, "the store failed: {message}"),
        }
    }
}

impl std::error::Error for MerkleError {}

impl From<std::io::Error> for MerkleError {
    fn from(e: std::io::Error) -> Self {
        MerkleError::Io { kind: e.kind(), message: e.to_string() }
    }
}
