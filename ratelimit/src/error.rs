//! The error type of this crate.

use std::fmt;

pub use sysblocks_core::BackendError;

/// Which kind of problem a [`LimitError`] is, for callers that handle them
/// differently (see [`LimitError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A limit, prefix, network or rate that can never work: building the
    /// limiter failed, and retrying will not help (fix the configuration).
    Config,
    /// This request can never pass this limiter (a zero cost, a cost above
    /// the capacity): the caller's bug, not the limiter's state.
    Request,
    /// The limiter could not decide now (the key table is full, the backend
    /// failed): a later attempt may succeed.
    Runtime,
}

/// What was wrong with a limit or a request, or why a decision could not
/// be made; [`kind`](Self::kind) tells configuration errors, bad requests
/// and runtime failures apart.
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
    /// The backend (Redis) failed and the failure policy is to report it;
    /// its own error is the `source()`.
    Backend(BackendError),
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
            LimitError::Backend(error) => write!(f, "rate limit backend failed: {error}"),
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

impl LimitError {
    /// A backend failure, keeping `error` as the source.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        LimitError::Backend(BackendError::new(error))
    }

    /// Whether this is a configuration error, a bad request, or a runtime
    /// failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LimitError::ZeroCost | LimitError::CostAboveCapacity { .. } => ErrorKind::Request,
            LimitError::TooManyKeys { .. } | LimitError::Backend(_) => ErrorKind::Runtime,
            LimitError::ZeroCapacity
            | LimitError::ZeroRate
            | LimitError::RateTooFast { .. }
            | LimitError::BurstTooLong { .. }
            | LimitError::RedisRange { .. }
            | LimitError::BadBurst
            | LimitError::AlgorithmChanged
            | LimitError::BadPrefix { .. }
            | LimitError::BadNetwork { .. }
            | LimitError::BadRate { .. } => ErrorKind::Config,
        }
    }
}

impl std::error::Error for LimitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LimitError::Backend(error) => Some(error.inner()),
            _ => None,
        }
    }
}
