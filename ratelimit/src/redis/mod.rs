//! [`RedisLimiter`]: the five algorithms on Redis, so that many servers
//! share one limit. Each decision is made by a Lua script (one `EVALSHA`
//! per batch of decisions) that reads and writes the algorithm's state
//! atomically, on Redis's own clock,
//! and returns the state it decided on; the decision itself (remaining,
//! reset, retry) is made here by the algorithm's pure step, the same
//! function the in-process limiter runs.

mod batch;
mod shortcut;
mod slot;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::RedisResult;
pub use sysblocks_core::RedisConnection;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Algorithm, Limit};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::token_bucket::check_cost;
use batch::{Mode, Queued, Request, Shared, batch_loop};
use shortcut::Shortcut;

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
/// * **Atomic, one round trip**: a decision is made by a Lua script (run by
///   `EVALSHA`; the redis crate falls back to `EVAL` after a restart empties
///   the script cache). Decisions that arrive while others are in flight
///   are sent together, up to 64 per script call, each call making its
///   decisions in the order they were queued: under load, the per-call
///   cost of Lua is shared (group commit), and an idle limiter sends each
///   decision at once. (Concurrent requests have no order between them:
///   two batches in flight may reach Redis either way round.)
/// * **Redis's clock**: the scripts read `TIME`, so client clock skew does
///   not matter. Redis keeps microseconds; [`check_n_at`](Self::check_n_at)
///   takes the time from the caller, for tests and replays, in nanoseconds
///   like every `*_at` method of the crate.
/// * **Idle keys vanish**: every write sets a TTL that ends when the state
///   is back to that of a fresh limiter.
/// * **Cluster**: a limiter key's Redis keys share one hash tag
///   (`prefix{key}`), so each decision runs on one slot; batches are
///   grouped by slot. Pass a `redis::cluster_async::ClusterConnection`.
/// * **Failures**: a [`FailurePolicy`] decides; fail-open and fail-closed
///   decisions are logged and counted ([`fallbacks`](Self::fallbacks)). The
///   connection (a `ConnectionManager` or a cluster connection) reconnects
///   by itself, so the limiter works again when Redis returns. Each
///   decision in a batch succeeds or fails on its own (a key of the wrong
///   type fails alone), and only a failed one gets the policy.
/// * **Bounded time**: a decision not answered within the limiter's
///   timeout ([`with_timeout`](Self::with_timeout), default 250 ms) gets
///   the policy, whether Redis is down, a Cluster node hangs or the
///   connection is reconnecting. A batch's slot groups go out concurrently,
///   so a hung node delays only the keys it owns. The connection is a
///   [`RedisConnection`] (any `ConnectionManager`, `MultiplexedConnection`
///   or `ClusterConnection` converts into one), which bounds every command
///   on its own too (one second by default).
/// * **Retries**: the Cluster client resends a command after an I/O error,
///   so a decision whose reply was lost may be made twice. That can only
///   over-count (deny a little sooner), never admit more than the limit.
///   A refund is sent once.
/// * **Local shortcut**: a key denied until time `T` for cost `c` is denied
///   locally, without a round trip, for any cost `>= c` until `T` (exact:
///   every algorithm's retry time is the first moment the request fits, and
///   other requests can only push it later).
///
/// A check whose future is dropped after it was sent may still be counted.
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
pub struct RedisLimiter {
    shared: Arc<Shared>,
    policy: FailurePolicy,
    shortcut: Option<Shortcut>,
    fallbacks: AtomicU64,
    /// The queue to the batching task, started on first use (it needs a
    /// tokio runtime).
    queue: OnceLock<mpsc::UnboundedSender<Queued>>,
}

/// The default bound on one decision: past it the failure policy decides.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

impl RedisLimiter {
    /// A limiter on `connection` (a [`RedisConnection`], or anything that
    /// converts into one: a `redis::aio::ConnectionManager`, a
    /// `MultiplexedConnection`, a `redis::cluster_async::ClusterConnection`)
    /// whose Redis keys start
    /// with `prefix`. Fail-open, with the local shortcut on (up to 10,000
    /// keys).
    ///
    /// # Errors
    /// As [`Limit::validate`], [`LimitError::RedisRange`] for a rate
    /// faster than one unit per microsecond or a limit and period whose
    /// arithmetic would exceed 2^53, and [`LimitError::BadPrefix`] for a
    /// prefix with `{` or `}` in it.
    pub fn new(
        connection: impl Into<RedisConnection>,
        limit: Limit,
        prefix: &str,
    ) -> Result<Self, LimitError> {
        limit.validate()?;
        if prefix.contains(['{', '}']) {
            // A brace in the prefix would move the hash tag off the key,
            // splitting a key's Redis keys over slots on a Cluster.
            return Err(LimitError::BadPrefix { prefix: prefix.to_string() });
        }
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
        let shared = Shared {
            connection: connection.into(),
            algorithm: limit.algorithm,
            limit: capacity,
            period: to_u64(period),
            tau: to_u64(tau),
            prefix: prefix.to_string(),
            window: limit.policy_window(),
            timeout_us: AtomicU64::new(DEFAULT_TIMEOUT.as_micros() as u64),
        };
        Ok(RedisLimiter {
            shared: Arc::new(shared),
            policy: FailurePolicy::Open,
            shortcut: Some(Shortcut { denied: Mutex::default(), max_keys: 10_000 }),
            fallbacks: AtomicU64::new(0),
            queue: OnceLock::new(),
        })
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn with_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bounds the time of each decision (default [`DEFAULT_TIMEOUT`], 250
    /// ms): a decision that Redis has not answered by then, a hung node or
    /// a connection that is reconnecting, gets the failure policy instead.
    /// The connection's own timeouts (`ConnectionManagerConfig::
    /// set_response_timeout`, `ClusterClientBuilder::response_timeout`)
    /// should be no shorter, or they decide first. The bound is kept
    /// between one millisecond and one hour.
    ///
    /// A batch's script call is bounded by the earliest deadline among its
    /// decisions, so a decision batched with one that waited for a slot
    /// (at most an eighth of the bound) may get its policy that much early.
    #[must_use]
    pub fn with_timeout(self, bound: Duration) -> Self {
        let bound = bound.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        self.shared.timeout_us.store(bound.as_micros() as u64, Ordering::Relaxed);
        self
    }

    /// The bound on each decision.
    pub fn timeout(&self) -> Duration {
        self.shared.timeout()
    }

    /// Remembers up to `max_keys` denied keys locally (0 turns it off).
    #[must_use]
    pub fn with_shortcut(mut self, max_keys: usize) -> Self {
        self.shortcut = (max_keys > 0).then(|| Shortcut { denied: Mutex::default(), max_keys });
        self
    }

    /// The limit that decisions report.
    pub fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// The policy window ([`Limit::policy_window`]).
    pub fn window(&self) -> Duration {
        self.shared.window
    }

    /// How many decisions the failure policy made because Redis failed.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The Redis key holding `key`'s state (for inspection and tests).
    pub fn redis_key(&self, key: &str) -> String {
        self.shared.redis_key(key)
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
        check_cost(cost, self.shared.limit)?;
        if let Some(denial) =
            self.shortcut.as_ref().and_then(|s| s.denied(key, cost, self.shared.limit))
        {
            return Ok(denial);
        }
        let decision = match self.attempt(key, None, Mode::Check, cost).await {
            Ok(decision) => decision,
            // A fallback denial is not remembered: Redis may be back at once.
            Err(error) => return self.on_failure(key, &error),
        };
        if let Some(shortcut) = &self.shortcut {
            if decision.allowed {
                shortcut.refresh(key, &decision);
            } else {
                shortcut.remember(key, cost, &decision);
            }
        }
        Ok(decision)
    }

    /// As [`check_n`](Self::check_n), at a time the caller supplies, in
    /// nanoseconds (as every `*_at` method of the crate) on any clock that
    /// never goes backwards; all callers of one key must use the same clock.
    /// Redis keeps microseconds, so the time is rounded down to one. For
    /// tests and replays; bypasses the local shortcut and the batching.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn check_n_at(
        &self,
        key: &str,
        now_nanos: u64,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        self.checked_run(key, Some(now_nanos / 1000), Mode::Check, cost).await
    }

    /// What [`check_n`](Self::check_n) would decide, changing nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn peek_n(&self, key: &str, cost: u64) -> Result<Decision, LimitError> {
        self.checked_run(key, None, Mode::Peek, cost).await
    }

    /// As [`peek_n`](Self::peek_n), at a caller-supplied time (see
    /// [`check_n_at`](Self::check_n_at)).
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn peek_n_at(
        &self,
        key: &str,
        now_nanos: u64,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        self.checked_run(key, Some(now_nanos / 1000), Mode::Peek, cost).await
    }

    /// Gives back `cost` units admitted earlier to `key`. A cost of 0 is a
    /// no-op; a cost above the limit gives back the whole limit (as in
    /// process, a bucket never holds more than its capacity).
    ///
    /// # Errors
    /// As [`check`](Self::check) (a failed refund is not retried).
    pub async fn refund(&self, key: &str, cost: u64) -> Result<(), LimitError> {
        self.refund_inner(key, None, cost).await
    }

    /// As [`refund`](Self::refund), at a caller-supplied time (see
    /// [`check_n_at`](Self::check_n_at)).
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub async fn refund_at(&self, key: &str, now_nanos: u64, cost: u64) -> Result<(), LimitError> {
        self.refund_inner(key, Some(now_nanos / 1000), cost).await
    }

    async fn refund_inner(&self, key: &str, now: Option<u64>, cost: u64) -> Result<(), LimitError> {
        if cost == 0 {
            return Ok(());
        }
        if let Some(shortcut) = &self.shortcut {
            shortcut.forget(key);
        }
        self.run(key, now, Mode::Refund, cost.min(self.shared.limit)).await.map(drop)
    }

    /// [`run`](Self::run) after the cost checks every public entry makes.
    async fn checked_run(
        &self,
        key: &str,
        now: Option<u64>,
        mode: Mode,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        check_cost(cost, self.shared.limit)?;
        self.run(key, now, mode, cost).await
    }

    async fn run(
        &self,
        key: &str,
        now: Option<u64>,
        mode: Mode,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        let reply = self.attempt(key, now, mode, cost).await;
        reply.or_else(|error| self.on_failure(key, &error))
    }

    /// One decision from Redis, or why there is none.
    async fn attempt(
        &self,
        key: &str,
        now: Option<u64>,
        mode: Mode,
        cost: u64,
    ) -> RedisResult<Decision> {
        let request = Request { state: self.shared.redis_key(key), mode, cost };
        let bound = self.shared.timeout();
        match now {
            // Server time: through the batching queue, the whole wait
            // bounded (a request still queued when its caller gives up is
            // not sent).
            None => self.enqueue(request, bound).await,
            Some(_) => {
                self.shared.invoke(now, &[&request], bound).await.and_then(|mut d| d.remove(0))
            }
        }
    }

    /// Queues `request` for the batching task and waits for its decision,
    /// at most `bound`: the batch's call is bounded by the earliest
    /// deadline in it, and a batch waits for a slot at most an eighth of
    /// the bound (see [`batch_loop`]), so one timer per batch keeps every
    /// caller's wait bounded.
    async fn enqueue(&self, request: Request, bound: Duration) -> RedisResult<Decision> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(batch_loop(self.shared.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + bound;
        let queued = Queued { request, reply, deadline };
        if let Err(mpsc::error::SendError(queued)) = queue.send(queued) {
            // The batching task is gone (its runtime shut down): go direct.
            return self
                .shared
                .invoke(None, &[&queued.request], bound)
                .await
                .and_then(|mut d| d.remove(0));
        }
        answer.await.unwrap_or_else(|_| {
            Err(redis::RedisError::from((redis::ErrorKind::Io, "the batching task stopped")))
        })
    }

    fn on_failure(&self, key: &str, error: &redis::RedisError) -> Result<Decision, LimitError> {
        match self.policy {
            FailurePolicy::Error => Err(LimitError::backend(error.clone())),
            FailurePolicy::Open => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, %error, "rate limit store unavailable; failing open (admitting)");
                Ok(Decision::admit(self.shared.limit, 0, Duration::ZERO))
            }
            FailurePolicy::Closed => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, %error, "rate limit store unavailable; failing closed (denying)");
                Ok(self.denial(Duration::from_secs(1)))
            }
        }
    }

    fn denial(&self, retry_after: Duration) -> Decision {
        Decision::deny(self.shared.limit, 0, retry_after, retry_after)
    }
}

/// Keys by anything that reads as a string (`str`, `String`, ...).
impl<K> crate::KeyedLimiter<K> for RedisLimiter
where
    K: AsRef<str> + ?Sized + Sync,
{
    fn limit(&self) -> u64 {
        self.shared.limit
    }

    fn window(&self) -> Duration {
        RedisLimiter::window(self)
    }

    fn check_n(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        RedisLimiter::check_n(self, key.as_ref(), cost)
    }

    fn refund(&self, key: &K, cost: u64) -> impl Future<Output = Result<(), LimitError>> + Send {
        RedisLimiter::refund(self, key.as_ref(), cost)
    }
}
