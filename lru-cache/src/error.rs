//! The error type of this crate.

use std::fmt;

/// What was wrong with a cache's configuration or an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// A capacity (or maximum weight) of 0, or none given.
    ZeroCapacity,
    /// More entries than the slab's `u32` indices can address.
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
    },
    /// A weigher was given for a cache bounded by entry count; bound it with
    /// `max_weight` instead.
    WeigherWithoutMaxWeight,
    /// An entry weighs more than the whole cache may hold.
    EntryTooHeavy {
        /// The entry's weight.
        weight: u64,
        /// The cache's maximum weight.
        max_weight: u64,
    },
    /// A concurrent cache needs at least one shard.
    ZeroShards,
    /// More shards than a concurrent cache allows.
    TooManyShards {
        /// The shard count asked for.
        requested: usize,
        /// The most allowed.
        max: usize,
    },
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::ZeroCapacity => write!(f, "capacity must be at least 1 (got 0)"),
            CacheError::CapacityTooLarge { requested } => {
                write!(f, "capacity must be below {} entries (got {requested})", u32::MAX)
            }
            CacheError::WeigherWithoutMaxWeight => {
                write!(f, "a weigher needs a weight bound: use max_weight instead of capacity")
            }
            CacheError::EntryTooHeavy { weight, max_weight } => write!(
                f,
                "entry weighs {weight}, more than the cache's maximum weight of {max_weight}"
            ),
            CacheError::ZeroShards => write!(f, "shard count must be at least 1 (got 0)"),
            CacheError::TooManyShards { requested, max } => {
                write!(f, "shard count must be at most {max} (got {requested})")
            }
        }
    }
}

impl std::error::Error for CacheError {}
