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
            LimitError::BadRate { text } => write!(
                f,
                "cannot parse rate {text:?}: expected COUNT/UNIT such as \"100/s\", \"5000/h\" or \"10/500ms\""
            ),
        }
    }
}

impl std::error::Error for LimitError {}
