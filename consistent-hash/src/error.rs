//! The error type of this crate.

use std::fmt;

/// What went wrong building, changing or querying a ring.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RingError {
    /// The operation needs at least one node.
    EmptyRing,
    /// A node's weight was 0; a node that should get no keys is removed instead.
    ZeroWeight {
        /// The node, as its id bytes (lossy UTF-8).
        node: String,
    },
    /// The number of virtual nodes per unit of weight was 0.
    ZeroVnodes,
    /// A node with the same id bytes is already on the ring.
    DuplicateNode {
        /// The node, as its id bytes (lossy UTF-8).
        node: String,
    },
    /// The node is not on the ring.
    UnknownNode {
        /// The node, as its id bytes (lossy UTF-8).
        node: String,
    },
    /// Weights times virtual nodes would exceed [`MAX_POINTS`](crate::MAX_POINTS).
    TooManyPoints {
        /// How many points the ring would have.
        requested: u64,
    },
    /// A node id longer than `u32::MAX` bytes.
    IdTooLong {
        /// The id's length in bytes.
        len: usize,
    },
    /// The bounded-load factor must be finite and greater than 1.
    InvalidBalanceFactor {
        /// The factor given.
        c: f64,
    },
    /// The load slice must have one entry per node, in [`HashRing::nodes`](crate::HashRing::nodes) order.
    LoadsLength {
        /// The number of nodes.
        expected: usize,
        /// The number of loads given.
        got: usize,
    },
    /// A serialized ring was written under another placement spec.
    PlacementVersion {
        /// The version in the serialized data.
        found: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::EmptyRing => write!(f, "the ring has no nodes"),
            RingError::ZeroWeight { node } => {
                write!(
                    f,
                    "weight must be at least 1 (got 0 for node {node:?}); remove the node instead"
                )
            }
            RingError::ZeroVnodes => {
                write!(f, "virtual nodes per unit of weight must be at least 1 (got 0)")
            }
            RingError::DuplicateNode { node } => write!(f, "node {node:?} is already on the ring"),
            RingError::UnknownNode { node } => write!(f, "node {node:?} is not on the ring"),
            RingError::TooManyPoints { requested } => write!(
                f,
                "the ring would have {requested} points, more than the maximum of {}",
                crate::MAX_POINTS
            ),
            RingError::IdTooLong { len } => {
                write!(f, "node id is {len} bytes long; at most {} bytes are allowed", u32::MAX)
            }
            RingError::InvalidBalanceFactor { c } => {
                write!(f, "balance factor must be finite and greater than 1 (got {c})")
            }
            RingError::LoadsLength { expected, got } => {
                write!(f, "expected one load per node ({expected}), got {got}")
            }
            RingError::PlacementVersion { found } => write!(
                f,
                "ring was serialized under placement version {found}; this crate implements version {}",
                crate::PLACEMENT_VERSION
            ),
        }
    }
}

impl std::error::Error for RingError {}
