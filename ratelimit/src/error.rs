//! The error type of this crate.

use std::fmt;

/// What was wrong with a limit or a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// A capacity (burst) of 0.
    ZeroCapacity,
    /// A rate of zero events, or over a zero duration.
    ZeroRate,
    /// A rate faster than one event per nanosecond.
    RateTooFast {
        /// Events per period, as given.
        count: u64,
        /// The period in nanoseconds, as given.
        per_nanos: u128,
    },
    /// A request for more tokens than the bucket can ever hold; it would be
    /// denied forever, so it is an error rather than a denial.
    CostAboveCapacity {
        /// The cost asked for.
        cost: u64,
        /// The capacity.
        capacity: u64,
    },
    /// A cost of 0.
    ZeroCost,
    /// A bucket whose full capacity takes longer than
    /// [`MAX_REFILL_NANOS`](crate::MAX_REFILL_NANOS) (about 292 years) to
    /// refill: its arithmetic could overflow, so it is refused rather than
    /// computed wrongly.
    BurstTooLong {
        /// The capacity (burst) asked for.
        capacity: u64,
        /// Nanoseconds per token.
        interval_nanos: u64,
    },
    /// A [`Keyed`](crate::Keyed) limiter is full of busy keys and cannot
    /// take a new one.
    TooManyKeys {
        /// The cap on keys.
        max: usize,
    },
    /// The Redis backend failed and the failure policy is to report it.
    Backend {
        /// What went wrong.
        message: String,
    },
    /// A limit outside what the Redis backend computes exactly: times are
    /// integer microseconds, and Lua numbers are doubles, exact up to 2^53.
    RedisRange {
        /// What is out of range.
        what: &'static str,
    },
    /// A burst given for a window algorithm, whose limit is the rate's
    /// count.
    BadBurst,
    /// A reconfiguration that names a different algorithm than the
    /// limiter's.
    AlgorithmChanged,
    /// A Redis key prefix containing `{` or `}`, which would take the hash
    /// tag away from the limiter key (on a Cluster, one key's Redis keys
    /// would land in different slots).
    BadPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// A network (`10.0.0.0/8`, `::1`) that does not parse, for
    /// `ClientIp::behind_proxies` (feature `tower`).
    BadNetwork {
        /// The text given.
        text: String,
    },
    /// A rate string that does not parse (`"100/s"`, `"5000/h"`, `"10/500ms"`).
    BadRate {
        /// The text given.
        text: String,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::ZeroCapacity => write!(f, "capacity must be at least 1 (got 0)"),
            LimitError::ZeroRate => {
                write!(f, "rate must be above zero events per non-zero duration")
            }
            LimitError::RateTooFast { count, per_nanos } => write!(
                f,
                "rate of {count} per {per_nanos} ns is faster than one event per nanosecond"
            ),
            LimitError::CostAboveCapacity { cost, capacity } => write!(
                f,
                "cost {cost} is above the capacity {capacity}; it could never be admitted"
            ),
            LimitError::ZeroCost => write!(f, "cost must be at least 1 (got 0)"),
            LimitError::BurstTooLong { capacity, interval_nanos } => write!(
                f,
                "a capacity of {capacity} at one token per {interval_nanos} ns takes more than \
                 2^63 ns (about 292 years) to refill; lower the capacity or raise the rate"
            ),
            LimitError::TooManyKeys { max } => {
                write!(f, "too many keys: all {max} slots hold busy limiters")
            }
            LimitError::Backend { message } => write!(f, "rate limit backend failed: {message}"),
            LimitError::RedisRange { what } => write!(
                f,
                "{what} is outside the Redis backend's exact range (integer microseconds, values below 2^53)"
            ),
            LimitError::BadBurst => write!(
                f,
                "burst applies to token_bucket and leaky_bucket only; a window's limit is the rate's count"
            ),
            LimitError::AlgorithmChanged => {
                write!(f, "cannot change a limiter's algorithm in place; build a new limiter")
            }
            LimitError::BadPrefix { prefix } => write!(
                f,
                "Redis key prefix {prefix:?} contains '{{' or '}}'; the limiter key must be the hash tag"
            ),
            LimitError::BadNetwork { text } => {
                write!(f, "cannot parse network {text:?}: expected an address or ADDRESS/PREFIX")
            }
            LimitError::BadRate { text } => write!(
                f,
                "cannot parse rate {text:?}: expected COUNT/UNIT such as \"100/s\", \"5000/h\" or \"10/500ms\""
            ),
        }
    }
}

impl std::error::Error for LimitError {}
