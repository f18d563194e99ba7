//! [`RedisLimiter`]: the five algorithms on Redis, so that many servers
//! share one limit. Each decision is one `EVALSHA` of a Lua script that
//! mirrors the algorithm's pure step, atomically, on Redis's own clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionLike;

use crate::config::{Algorithm, Limit};
use crate::error::LimitError;
use crate::token_bucket::{Decision, check_cost};

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

static GCRA: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/gcra.lua")));
static FIXED: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/fixed.lua")));
static LOG: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/log.lua")));
static COUNTER: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/counter.lua")));

/// Lua numbers are doubles: integers are exact up to 2^53.
const EXACT: u128 = 1 << 53;

/// What to do when Redis cannot be reached or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Admit the request (availability first). Logged at `warn`.
    Open,
    /// Deny the request, with a retry hint of one second (protection
    /// first). Logged at `warn`.
    Closed,
    /// Return [`LimitError::Backend`] and let the caller decide.
    Error,
}

/// A rate limit kept in Redis, shared by every process that uses the same
/// key prefix: token bucket, leaky bucket, fixed window, sliding log or
/// sliding counter, with the same decisions as the in-process types.
///
/// * **One round trip, atomic**: each decision is one `EVALSHA` (the redis
///   crate falls back to `EVAL` after a restart empties the script cache).
/// * **Redis's clock**: the scripts read `TIME`, so client clock skew does
///   not matter. Times are microseconds ([`check_n_at`](Self::check_n_at)
///   takes the time from the caller, for tests and replays).
/// * **Idle keys vanish**: every write sets a TTL that ends when the state
///   is back to that of a fresh limiter.
/// * **Cluster**: a limiter key's Redis keys share one hash tag
///   (`prefix{key}`), so each decision runs on one slot. Pass a
///   `redis::cluster_async::ClusterConnection`.
/// * **Failures**: a [`FailurePolicy`] decides; fail-open and fail-closed
///   decisions are logged and counted ([`fallbacks`](Self::fallbacks)). The
///   connection (a `ConnectionManager` or a cluster connection) reconnects
///   by itself, so the limiter works again when Redis returns.
/// * **Local shortcut**: a key denied until time `T` for cost `c` is denied
///   locally, without a round trip, for any cost `>= c` until `T` (exact: no
///   other request can make room earlier). It is off for the sliding window
///   counter, whose estimate shrinks continuously.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sysblocks_ratelimit::{Algorithm, Limit, RedisLimiter};
///
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let connection = client.get_connection_manager().await?;
/// let limit = Limit::new(Algorithm::TokenBucket, "100/s".parse()?).with_burst(20);
/// let limiter = RedisLimiter::new(connection, limit, "api:")?;
/// let decision = limiter.check("user:42").await?;
/// println!("allowed: {}, remaining: {}", decision.allowed, decision.remaining);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisLimiter<C> {
    connection: C,
    algorithm: Algorithm,
    limit: u64,
    /// Microseconds per unit (buckets) or per window (windows).
    period: u64,
    /// The GCRA tolerance in microseconds.
    tau: u64,
    prefix: String,
    policy: FailurePolicy,
    shortcut: Option<Shortcut>,
    fallbacks: AtomicU64,
}

/// Keys known to be denied until an instant, for costs at or above a cost.
#[derive(Debug)]
struct Shortcut {
    denied: Mutex<HashMap<String, (Instant, u64)>>,
    max_keys: usize,
}

impl Shortcut {
    /// The wait left when `key` is known to deny `cost`.
    fn denied(&self, key: &str, cost: u64) -> Option<Duration> {
        let denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        let &(until, at) = denied.get(key)?;
        let left = until.checked_duration_since(Instant::now())?;
        (cost >= at && !left.is_zero()).then_some(left)
    }

    fn remember(&self, key: &str, cost: u64, wait: Duration) {
        let now = Instant::now();
        let mut denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        if denied.len() >= self.max_keys {
            denied.retain(|_, &mut (until, _)| until > now);
            if denied.len() >= self.max_keys {
                return;
            }
        }
        denied.insert(key.to_string(), (now + wait, cost));
    }
}

impl<C> RedisLimiter<C>
where
    C: ConnectionLike + Clone + Send + Sync,
{
    /// A limiter on `connection` (a `redis::aio::ConnectionManager` or a
    /// `redis::cluster_async::ClusterConnection`) whose Redis keys start
    /// with `prefix`. Fail-open, with the local shortcut on (up to 10,000
    /// keys).
    ///
    /// # Errors
    /// As [`Limit::validate`], and [`LimitError::RedisRange`] for a rate
    /// faster than one unit per microsecond or a limit and period whose
    /// arithmetic would exceed 2^53.
    pub fn new(connection: C, limit: Limit, prefix: &str) -> Result<Self, LimitError> {
        limit.validate()?;
        let capacity = limit.capacity();
        let per_us = limit.rate.per().as_micros();
        let (period, tau) = match limit.algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                let t = per_us / u128::from(limit.rate.count());
                if t == 0 {
                    return Err(LimitError::RedisRange {
                        what: "a rate above one per microsecond",
                    });
                }
                (t, t * u128::from(capacity - 1))
            }
            _ if per_us == 0 => {
                return Err(LimitError::RedisRange { what: "a window under one microsecond" });
            }
            _ => (per_us, 0),
        };
        // The largest intermediate values: a timestamp plus tau plus a full
        // bucket, and previous × window in the sliding counter.
        let now_bound = 1u128 << 52;
        let worst = now_bound + tau + period * u128::from(capacity) + period;
        if worst >= EXACT || period * u128::from(capacity) >= EXACT {
            return Err(LimitError::RedisRange { what: "limit × period" });
        }
        let to_u64 = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
        Ok(RedisLimiter {
            connection,
            algorithm: limit.algorithm,
            limit: capacity,
            period: to_u64(period),
            tau: to_u64(tau),
            prefix: prefix.to_string(),
            policy: FailurePolicy::Open,
            shortcut: Some(Shortcut { denied: Mutex::default(), max_keys: 10_000 }),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn with_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Remembers up to `max_keys` denied keys locally (0 turns it off).
    #[must_use]
    pub fn with_shortcut(mut self, max_keys: usize) -> Self {
        self.shortcut = (max_keys > 0).then(|| Shortcut { denied: Mutex::default(), max_keys });
        self
    }

    /// The limit that decisions report.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many decisions the failure policy made because Redis failed.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The Redis key holding `key`'s state (for inspection and tests).
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{{{key}}}", self.prefix)
    }

    /// One unit for `key`, on Redis's clock.
    ///
    /// # Errors
    /// [`LimitError::Backend`] when Redis fails and the policy is
    /// [`FailurePolicy::Error`].
    pub async fn check(&self, key: &str) -> Result<Decision, LimitError> {
        self.check_n(key, 1).await
    }

    /// `cost` units for `key`, on Redis's clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], [`LimitError::CostAboveCapacity`], and as
    /// [`check`](Self::check).
    pub async fn check_n(&self, key: &str, cost: u64) -> Result<Decision, LimitError> {
        check_cost(cost, self.limit)?;
        if let Some(left) = self.shortcut.as_ref().and_then(|s| s.denied(key, cost)) {
            return Ok(self.denial(left));
        }
        let decision = self.run(key, None, "check", cost).await?;
        if let (Some(shortcut), Some(wait)) = (&self.shortcut, decision.retry_after)
            && !decision.allowed
            && self.algorithm != Algorithm::SlidingWindowCounter
        {
            shortcut.remember(key, cost, wait);
        }
        Ok(decision)
    }

    /// As [`check_n`](Self::check_n), at a time the caller supplies (in
    /// microseconds on any clock that never goes backwards; all callers of
    /// one key must use the same clock). For tests and replays; bypasses
    /// the local shortcut.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn check_n_at(
        &self,
        key: &str,
        now_micros: u64,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        check_cost(cost, self.limit)?;
        self.run(key, Some(now_micros), "check", cost).await
    }

    /// What [`check_n`](Self::check_n) would decide, changing nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn peek_n(&self, key: &str, cost: u64) -> Result<Decision, LimitError> {
        check_cost(cost, self.limit)?;
        self.run(key, None, "peek", cost).await
    }

    /// As [`peek_n`](Self::peek_n), at a caller-supplied time (see
    /// [`check_n_at`](Self::check_n_at)).
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn peek_n_at(
        &self,
        key: &str,
        now_micros: u64,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        check_cost(cost, self.limit)?;
        self.run(key, Some(now_micros), "peek", cost).await
    }

    /// As [`refund`](Self::refund), at a caller-supplied time (see
    /// [`check_n_at`](Self::check_n_at)).
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub async fn refund_at(&self, key: &str, now_micros: u64, cost: u64) -> Result<(), LimitError> {
        self.run(key, Some(now_micros), "refund", cost).await.map(drop)
    }

    /// Gives back `cost` units admitted earlier to `key`.
    ///
    /// # Errors
    /// As [`check`](Self::check) (a failed refund is not retried).
    pub async fn refund(&self, key: &str, cost: u64) -> Result<(), LimitError> {
        if let Some(shortcut) = &self.shortcut {
            shortcut.denied.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        }
        self.run(key, None, "refund", cost).await.map(drop)
    }

    async fn run(
        &self,
        key: &str,
        now: Option<u64>,
        mode: &str,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        let state = self.redis_key(key);
        let script = match self.algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => &*GCRA,
            Algorithm::FixedWindow => &*FIXED,
            Algorithm::SlidingWindowLog => &*LOG,
            Algorithm::SlidingWindowCounter => &*COUNTER,
        };
        let mut invocation = script.key(&state);
        if self.algorithm == Algorithm::SlidingWindowLog {
            invocation.key(format!("{state}:seq"));
        }
        // Caller-supplied times need not track real time, so their keys
        // live at least an hour rather than vanishing early.
        let min_ttl_ms: u64 = if now.is_some() { 3_600_000 } else { 0 };
        invocation
            .arg(now.map(|n| n.to_string()).unwrap_or_default())
            .arg(mode)
            .arg(cost)
            .arg(self.limit)
            .arg(self.period)
            .arg(min_ttl_ms)
            .arg(self.tau);
        let mut connection = self.connection.clone();
        let reply: redis::RedisResult<(u8, i64, i64, i64, i64)> =
            invocation.invoke_async(&mut connection).await;
        match reply {
            Ok((allowed, remaining, reset_after, retry_after, wait)) => {
                let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
                Ok(Decision {
                    allowed: allowed == 1,
                    limit: self.limit,
                    remaining: u64::try_from(remaining).unwrap_or(0),
                    reset_after: micros(reset_after),
                    retry_after: (retry_after >= 0).then(|| micros(retry_after)),
                    wait: if self.algorithm == Algorithm::LeakyBucket {
                        micros(wait)
                    } else {
                        Duration::ZERO
                    },
                })
            }
            Err(error) => self.on_failure(key, &error),
        }
    }

    fn on_failure(&self, key: &str, error: &redis::RedisError) -> Result<Decision, LimitError> {
        match self.policy {
            FailurePolicy::Error => Err(LimitError::Backend { message: error.to_string() }),
            FailurePolicy::Open => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, %error, "rate limit store unavailable; failing open (admitting)");
                Ok(Decision {
                    allowed: true,
                    limit: self.limit,
                    remaining: 0,
                    reset_after: Duration::ZERO,
                    retry_after: None,
                    wait: Duration::ZERO,
                })
            }
            FailurePolicy::Closed => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, %error, "rate limit store unavailable; failing closed (denying)");
                Ok(self.denial(Duration::from_secs(1)))
            }
        }
    }

    fn denial(&self, retry_after: Duration) -> Decision {
        Decision {
            allowed: false,
            limit: self.limit,
            remaining: 0,
            reset_after: retry_after,
            retry_after: Some(retry_after),
            wait: Duration::ZERO,
        }
    }
}
