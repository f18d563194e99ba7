//! [`Rate`]: so many events per so much time, and its text form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::LimitError;

/// A rate: `count` events per `per`. The emission interval (the time one
/// token takes to come back) is `floor(per / count)` nanoseconds, exactly as
/// `governor` computes it, so decisions match it to the nanosecond.
///
/// ```
/// use sysblocks_ratelimit::Rate;
///
/// let rate: Rate = "100/s".parse()?;
/// assert_eq!(rate.interval_nanos(), 10_000_000);
/// assert_eq!(Rate::per_second(3)?.interval_nanos(), 333_333_333);
/// assert!("0/s".parse::<Rate>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u64,
    per: Duration,
}

impl Rate {
    /// `count` events per `per`.
    ///
    /// # Errors
    /// [`LimitError::ZeroRate`] for 0 events or a zero duration,
    /// [`LimitError::RateTooFast`] for more than one event per nanosecond.
    pub fn new(count: u64, per: Duration) -> Result<Rate, LimitError> {
        if count == 0 || per.is_zero() {
            return Err(LimitError::ZeroRate);
        }
        if per.as_nanos() / u128::from(count) == 0 {
            return Err(LimitError::RateTooFast { count, per_nanos: per.as_nanos() });
        }
        Ok(Rate { count, per })
    }

    /// `count` events per second.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn per_second(count: u64) -> Result<Rate, LimitError> {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` events per minute.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn per_minute(count: u64) -> Result<Rate, LimitError> {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` events per hour.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn per_hour(count: u64) -> Result<Rate, LimitError> {
        Self::new(count, Duration::from_secs(3600))
    }

    /// Events per period.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The period.
    pub fn per(&self) -> Duration {
        self.per
    }

    /// Nanoseconds for one token to come back: `floor(per / count)`, at least 1.
    pub fn interval_nanos(&self) -> u64 {
        let nanos = self.per.as_nanos() / u128::from(self.count);
        u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
    }
}

impl FromStr for Rate {
    type Err = LimitError;

    /// Parses `COUNT/UNIT` or `COUNT/NUMBERUNIT`, where the unit is one of
    /// `ns`, `us`, `ms`, `s`, `m` (minute), `h`, `d`: `"100/s"`, `"5000/h"`,
    /// `"10/500ms"`.
    fn from_str(text: &str) -> Result<Rate, LimitError> {
        let bad = || LimitError::BadRate { text: text.to_string() };
        let (count, period) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let digits = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let amount: u64 =
            if digits == 0 { 1 } else { period[..digits].parse().map_err(|_| bad())? };
        let unit_nanos: u128 = match &period[digits..] {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" | "sec" => 1_000_000_000,
            "m" | "min" => 60_000_000_000,
            "h" | "hour" => 3_600_000_000_000,
            "d" | "day" => 86_400_000_000_000,
            _ => return Err(bad()),
        };
        let nanos = unit_nanos.checked_mul(u128::from(amount)).ok_or_else(bad)?;
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
        let per = Duration::new(secs, (nanos % 1_000_000_000) as u32);
        Rate::new(count, per)
    }
}

impl fmt::Display for Rate {
    /// The text form that [`FromStr`] reads back: the largest unit that
    /// divides the period, as in `"100/s"`, `"5000/h"`, `"10/500ms"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u128); 7] = [
            ("d", 86_400_000_000_000),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ];
        let nanos = self.per.as_nanos();
        for (unit, size) in UNITS {
            let amount = nanos / size;
            if nanos.is_multiple_of(size) {
                return match amount {
                    1 => write!(f, "{}/{unit}", self.count),
                    _ => write!(f, "{}/{amount}{unit}", self.count),
                };
            }
        }
        write!(f, "{}/{nanos}ns", self.count)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
