//! The error type of this crate.

use std::fmt;

/// What went wrong with a counter.
#[derive(Debug)]
#[non_exhaustive]
pub enum CounterError {
    /// A sharded counter needs at least one shard.
    ZeroShards,
    /// More shards than allowed.
    TooManyShards {
        /// The shard count asked for.
        requested: u32,
        /// The maximum.
        max: u32,
    },
    /// `get_approx` must sample between 1 and the shard count.
    BadSample {
        /// The sample size asked for.
        sample: u32,
        /// The number of shards.
        shards: u32,
    },
    /// The counter name contains a Redis hash tag (`{...}`), which would put
    /// every shard into one cluster slot and defeat sharding.
    HashTagInName {
        /// The name given.
        name: String,
    },
    /// An empty counter name.
    EmptyName,
    /// A negative increment on a counter that only counts up (build it with
    /// `allow_decrements` to decrement).
    NegativeIncrement {
        /// The increment given.
        by: i64,
    },
    /// A batch flush interval or threshold of zero.
    ZeroFlushInterval,
    /// A batcher needs at least one counter.
    NoCounters,
    /// A keyed batcher already holds unflushed adds for its maximum number
    /// of names; an add to a new name is refused (nothing was added) until a
    /// flush lands and frees names.
    TooManyKeys {
        /// The bound (`KeyedBatchConfig::max_keys`).
        max: usize,
    },
    /// An increment would take a shard past the range of a 64-bit signed
    /// integer (Redis refuses it, and applies nothing). A batched delta that
    /// meets this stays pending.
    Overflow {
        /// The shard key.
        key: String,
    },
    /// A shard key holds something other than an integer (another program
    /// wrote to it); nothing was applied.
    NotAnInteger {
        /// The shard key.
        key: String,
    },
    /// Redis failed; the operation may be retried.
    #[cfg(feature = "redis")]
    Redis(redis::RedisError),
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterError::ZeroShards => write!(f, "shard count must be at least 1 (got 0)"),
            CounterError::TooManyShards { requested, max } => {
                write!(f, "shard count must be at most {max} (got {requested})")
            }
            CounterError::BadSample { sample, shards } => {
                write!(f, "sample must be between 1 and the shard count {shards} (got {sample})")
            }
            CounterError::HashTagInName { name } => write!(
                f,
                "counter name {name:?} contains a Redis hash tag; shards would share one cluster slot"
            ),
            CounterError::EmptyName => write!(f, "counter name must not be empty"),
            CounterError::NegativeIncrement { by } => write!(
                f,
                "increment must not be negative on a count-up counter (got {by}); enable allow_decrements"
            ),
            CounterError::ZeroFlushInterval => {
                write!(f, "flush interval and threshold must be greater than zero")
            }
            CounterError::NoCounters => {
                write!(f, "a batcher needs at least one counter (got none)")
            }
            CounterError::TooManyKeys { max } => write!(
                f,
                "{max} names already wait for a flush; the add to a new name was refused (flush, or raise max_keys)"
            ),
            CounterError::Overflow { key } => {
                write!(f, "increment would overflow the 64-bit count of shard {key}")
            }
            CounterError::NotAnInteger { key } => {
                write!(f, "shard {key} holds a value that is not an integer")
            }
            #[cfg(feature = "redis")]
            CounterError::Redis(e) => write!(f, "redis: {e}"),
        }
    }
}

impl std::error::Error for CounterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "redis")]
            CounterError::Redis(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for CounterError {
    fn from(e: redis::RedisError) -> Self {
        CounterError::Redis(e)
    }
}

#[cfg(feature = "redis")]
impl CounterError {
    /// A Redis error from an increment of `key`, typed where Redis said
    /// why it refused (overflow, not an integer).
    pub(crate) fn from_increment(e: redis::RedisError, key: &str) -> Self {
        let text = e.to_string();
        if text.contains("overflow") {
            CounterError::Overflow { key: key.to_string() }
        } else if text.contains("not an integer") {
            CounterError::NotAnInteger { key: key.to_string() }
        } else {
            CounterError::Redis(e)
        }
    }
}
