//! [`RedisLimiter`]: the five algorithms on Redis, so that many servers
//! share one limit. Each decision is one `EVALSHA` of a Lua script that
//! reads and writes the algorithm's state atomically, on Redis's own clock,
//! and returns the state it decided on; the decision itself (remaining,
//! reset, retry) is made here by the algorithm's pure step, the same
//! function the in-process limiter runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::{RedisResult, Script};
pub use sysblocks_core::RedisConnection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::{Algorithm, Limit};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::token_bucket::{check_cost, gcra_step};
use crate::window::{
    FixedWindowState, SlidingCounterState, SlidingLogState, fixed_window_step,
    sliding_counter_step, sliding_log_step,
};

const PRELUDE: &str = include_str!("prelude.lua");
const EPILOGUE: &str = include_str!("epilogue.lua");

/// An algorithm's script: the shared prelude (arguments, clock), its
/// `decide` function, and the loop over the batch.
fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}\n{EPILOGUE}"))
}

/// The most decisions one script call makes.
const MAX_BATCH: usize = 64;
/// Batches in flight at once per limiter.
const MAX_IN_FLIGHT: usize = 2;

static GCRA: LazyLock<Script> = LazyLock::new(|| script(include_str!("../token_bucket.lua")));
static FIXED: LazyLock<Script> = LazyLock::new(|| script(include_str!("../window/fixed.lua")));
static LOG: LazyLock<Script> = LazyLock::new(|| script(include_str!("../window/log.lua")));
static COUNTER: LazyLock<Script> = LazyLock::new(|| script(include_str!("../window/counter.lua")));

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

/// What the batching task needs.
#[derive(Debug)]
struct Shared {
    connection: RedisConnection,
    algorithm: Algorithm,
    limit: u64,
    /// Microseconds per unit (buckets) or per window (windows).
    period: u64,
    /// The GCRA tolerance in microseconds.
    tau: u64,
    prefix: String,
    /// The policy window ([`Limit::policy_window`]).
    window: Duration,
    /// The bound on one script call (and on a caller's wait), in
    /// microseconds.
    timeout_us: AtomicU64,
}

/// One decision to make.
#[derive(Debug, Clone)]
struct Request {
    /// The Redis key of the state (`prefix{key}`).
    state: String,
    mode: &'static str,
    cost: u64,
}

/// A request waiting in the queue for its batch.
#[derive(Debug)]
struct Queued {
    request: Request,
    reply: oneshot::Sender<RedisResult<Decision>>,
}

impl Shared {
    /// `prefix{key}`: the key is the hash tag, so all of a key's Redis keys
    /// share a slot. The encoding is injective: a key that is empty,
    /// contains `}` (which would end the tag) or starts with the escape
    /// byte `0x01` is written as `0x01` followed by its bytes in hex.
    fn redis_key(&self, key: &str) -> String {
        if key.is_empty() || key.contains('}') || key.starts_with(ESCAPE) {
            let mut out = format!("{}{{{ESCAPE}", self.prefix);
            for b in key.bytes() {
                out.push_str(&format!("{b:02x}"));
            }
            out.push('}');
            out
        } else {
            format!("{}{{{key}}}", self.prefix)
        }
    }

    /// Makes `requests` in one script call, in order. The call fails as a
    /// whole (connection, timeout) or each decision succeeds or fails on
    /// its own.
    async fn invoke(
        &self,
        now: Option<u64>,
        requests: &[&Request],
    ) -> RedisResult<Vec<RedisResult<Decision>>> {
        let script = match self.algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => &*GCRA,
            Algorithm::FixedWindow => &*FIXED,
            Algorithm::SlidingWindowLog => &*LOG,
            Algorithm::SlidingWindowCounter => &*COUNTER,
        };
        // Caller-supplied times need not track real time, so their keys
        // live at least an hour rather than vanishing early.
        let min_ttl_ms: u64 = if now.is_some() { 3_600_000 } else { 0 };
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(now.map(|n| n.to_string()).unwrap_or_default())
            .arg(self.limit)
            .arg(self.period)
            .arg(min_ttl_ms)
            .arg(self.tau);
        let with_sequence = self.algorithm == Algorithm::SlidingWindowLog;
        invocation.arg(if with_sequence { 2 } else { 1 });
        for request in requests {
            let state = &request.state;
            let sequence = with_sequence.then(|| format!("{state}:seq"));
            invocation.key(state);
            if let Some(sequence) = sequence {
                invocation.key(sequence);
            }
            invocation.arg(request.mode).arg(request.cost);
        }
        let mut connection = self.connection.clone();
        let call = invocation.invoke_async::<Vec<redis::Value>>(&mut connection);
        let bound = self.timeout();
        let flat = match tokio::time::timeout(bound, call).await {
            Ok(reply) => reply?,
            Err(_) => return Err(timed_out(bound)),
        };
        let wrong = || {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "rate limit script returned a malformed reply",
            ))
        };
        let (now, mut rest) = flat.split_first().ok_or_else(wrong)?;
        let now = integer(now).and_then(|n| u64::try_from(n).ok()).ok_or_else(wrong)?;
        let mut decisions = Vec::with_capacity(requests.len());
        for request in requests {
            // Each request's part: the count of its values and the values,
            // or -1 and the text of the error its decision failed with.
            let (count, tail) = rest.split_first().ok_or_else(wrong)?;
            let count = integer(count).ok_or_else(wrong)?;
            if count < 0 {
                let (why, tail) = tail.split_first().ok_or_else(wrong)?;
                decisions.push(Err(redis::RedisError::from((
                    redis::ErrorKind::Extension,
                    "rate limit decision failed",
                    text(why),
                ))));
                rest = tail;
                continue;
            }
            let count = usize::try_from(count).map_err(|_| wrong())?;
            if tail.len() < count {
                return Err(wrong());
            }
            let (values, tail) = tail.split_at(count);
            decisions.push(self.decision(now, request, values).ok_or_else(wrong));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(wrong());
        }
        Ok(decisions)
    }

    fn timeout(&self) -> Duration {
        Duration::from_micros(self.timeout_us.load(Ordering::Relaxed))
    }

    /// The decision for one request, from the state its script decided on
    /// (`values`), made by the algorithm's own pure step: the same function
    /// as in process, here on microseconds (so its durations are scaled by
    /// 1000 into real ones). A refund's decision is not used. `None` for
    /// values that are not what the script sends.
    fn decision(&self, now: u64, request: &Request, values: &[redis::Value]) -> Option<Decision> {
        let (limit, period, cost) = (self.limit, self.period, request.cost);
        if request.mode == "refund" {
            return Some(Decision::admit(limit, 0, Duration::ZERO));
        }
        let number = |i: usize| values.get(i).and_then(integer);
        let unsigned = |i: usize| number(i).and_then(|n| u64::try_from(n).ok());
        let decision = match self.algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                // The TAT the script decided on.
                let tat = unsigned(0);
                let (d, _) = gcra_step(tat, now, period, self.tau, limit, cost);
                // The leaky bucket's departure: when the meter's TAT says.
                let wait = if self.algorithm == Algorithm::LeakyBucket && d.allowed {
                    Duration::from_nanos(tat.unwrap_or(now).saturating_sub(now))
                } else {
                    Duration::ZERO
                };
                Decision { wait, ..d }
            }
            Algorithm::FixedWindow => {
                let state = FixedWindowState { window: unsigned(0)?, count: unsigned(1)? };
                fixed_window_step(state, now, period, limit, cost).0
            }
            Algorithm::SlidingWindowCounter => {
                let state = SlidingCounterState {
                    window: unsigned(0)?,
                    current: unsigned(1)?,
                    previous: unsigned(2)?,
                };
                sliding_counter_step(state, now, period, limit, cost).0
            }
            Algorithm::SlidingWindowLog => {
                let (used, newest) = (unsigned(0)?, number(1)?);
                let mut log = SlidingLogState::default();
                if values.len() > 2 {
                    // A denial: every entry in the window, oldest first.
                    for pair in values[2..].chunks_exact(2) {
                        let time = integer(&pair[0]).and_then(|n| u64::try_from(n).ok())?;
                        let cost = integer(&pair[1]).and_then(|n| u64::try_from(n).ok())?;
                        log.entries.push_back((time, cost));
                    }
                    log.used = used;
                } else if let Ok(newest) = u64::try_from(newest) {
                    // An admission reads only the cost in the window and the
                    // newest time: the log summarised as one entry carrying
                    // all of it decides the same.
                    log.entries.push_back((newest, used));
                    log.used = used;
                }
                sliding_log_step(&mut log, now, period, limit, cost)
            }
        };
        Some(decision.scaled(1000))
    }
}

/// The escape byte of [`Shared::redis_key`].
const ESCAPE: char = '\u{1}';

/// The default bound on one decision: past it the failure policy decides.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// An integer value of a script reply.
fn integer(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// The text of a script reply value (a failed decision's error).
fn text(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn timed_out(bound: Duration) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Io,
        "rate limit decision timed out",
        format!("no reply within {bound:?}"),
    ))
}

/// Takes what is queued, up to [`MAX_BATCH`] (grouped by slot on a
/// Cluster), and sends it as one script call, with at most
/// [`MAX_IN_FLIGHT`] batches outstanding. A batch's slot groups go out
/// concurrently and each answers its callers as soon as it is back, so a
/// slow or hung node delays only its own keys (each call is bounded by the
/// limiter's timeout). Requests whose caller has given up are not sent.
/// Ends when the limiter is dropped.
async fn batch_loop(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let Some(first) = queue.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        batch.retain(|q| !q.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let groups =
            if shared.connection.is_cluster() { group_by_slot(batch) } else { vec![batch] };
        let shared = shared.clone();
        tokio::spawn(async move {
            let calls = groups.into_iter().map(|group| {
                let shared = shared.clone();
                async move {
                    let requests: Vec<&Request> = group.iter().map(|q| &q.request).collect();
                    match shared.invoke(None, &requests).await {
                        Ok(replies) => {
                            for (queued, reply) in group.into_iter().zip(replies) {
                                let _ = queued.reply.send(reply);
                            }
                        }
                        Err(error) => {
                            for queued in group {
                                let _ = queued.reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            });
            let calls: Vec<_> = calls.map(tokio::spawn).collect();
            // The permit keeps batches from overtaking each other while
            // Redis answers; a group that straggles (a hung node) gives it
            // up after a short while and finishes on its own within the
            // timeout, so the next batches are not held behind it.
            let straggler = (shared.timeout() / 8).min(Duration::from_millis(20));
            let all = async {
                for call in calls {
                    let _ = call.await;
                }
            };
            let _ = tokio::time::timeout(straggler, all).await;
            drop(permit);
        });
    }
}

fn group_by_slot(batch: Vec<Queued>) -> Vec<Vec<Queued>> {
    let mut groups: HashMap<u16, Vec<Queued>> = HashMap::new();
    for queued in batch {
        let slot = hash_slot(queued.request.state.as_bytes());
        groups.entry(slot).or_default().push(queued);
    }
    groups.into_values().collect()
}

/// The Redis Cluster slot of a key: the CRC16 of its hash tag (what lies
/// between the first `{` and the next `}`, when not empty), else of the
/// whole key.
fn hash_slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tag.unwrap_or(key)) % 16_384
}

/// CRC-16/XMODEM, the checksum of Redis Cluster's key slots.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Keys known to be denied until an instant, for costs at or above a cost.
#[derive(Debug)]
struct Shortcut {
    denied: Mutex<HashMap<String, Denied>>,
    max_keys: usize,
}

/// A denial Redis made, kept to answer the same way locally.
#[derive(Debug, Clone, Copy)]
struct Denied {
    /// When the denied cost fits again.
    until: Instant,
    /// When the key's state is fresh again (Redis's `reset_after`).
    reset: Instant,
    /// The smallest cost known to be denied.
    cost: u64,
    /// What Redis said was left.
    remaining: u64,
}

impl Shortcut {
    /// The denial Redis would give `key` for `cost` now, if it is known:
    /// the same retry, reset and remaining as Redis's own, counted down.
    fn denied(&self, key: &str, cost: u64, limit: u64) -> Option<Decision> {
        let denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        let known = *denied.get(key)?;
        let now = Instant::now();
        let left = known.until.checked_duration_since(now)?;
        if cost < known.cost || left.is_zero() {
            return None;
        }
        Some(Decision {
            allowed: false,
            limit,
            remaining: known.remaining,
            reset_after: known.reset.saturating_duration_since(now),
            retry_after: Some(left),
            wait: Duration::ZERO,
        })
    }

    fn remember(&self, key: &str, cost: u64, decision: &Decision) {
        let Some(wait) = decision.retry_after else { return };
        let now = Instant::now();
        let mut denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        if denied.len() >= self.max_keys {
            denied.retain(|_, d| d.until > now);
            if denied.len() >= self.max_keys {
                return;
            }
        }
        let entry = Denied {
            until: now + wait,
            reset: now + decision.reset_after,
            cost,
            remaining: decision.remaining,
        };
        denied.insert(key.to_string(), entry);
    }

    /// Keeps a remembered denial's `remaining` at what Redis said last (an
    /// admission of a smaller cost used some of it).
    fn refresh(&self, key: &str, decision: &Decision) {
        let mut denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = denied.get_mut(key) {
            known.remaining = decision.remaining;
        }
    }

    fn forget(&self, key: &str) {
        self.denied.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

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
        let decision = match self.attempt(key, None, "check", cost).await {
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
    /// Redis keeps microseconds, so the time is rounded down to one. For tests and replays; bypasses
    /// the local shortcut and the batching.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn check_n_at(
        &self,
        key: &str,
        now_nanos: u64,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        self.checked_run(key, Some(now_nanos / 1000), "check", cost).await
    }

    /// What [`check_n`](Self::check_n) would decide, changing nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub async fn peek_n(&self, key: &str, cost: u64) -> Result<Decision, LimitError> {
        self.checked_run(key, None, "peek", cost).await
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
        self.checked_run(key, Some(now_nanos / 1000), "peek", cost).await
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
        self.run(key, now, "refund", cost.min(self.shared.limit)).await.map(drop)
    }

    /// [`run`](Self::run) after the cost checks every public entry makes.
    async fn checked_run(
        &self,
        key: &str,
        now: Option<u64>,
        mode: &'static str,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        check_cost(cost, self.shared.limit)?;
        self.run(key, now, mode, cost).await
    }

    async fn run(
        &self,
        key: &str,
        now: Option<u64>,
        mode: &'static str,
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
        mode: &'static str,
        cost: u64,
    ) -> RedisResult<Decision> {
        let request = Request { state: self.shared.redis_key(key), mode, cost };
        match now {
            // Server time: through the batching queue, the whole wait
            // bounded (a request still queued when its caller gives up is
            // not sent).
            None => {
                let bound = self.shared.timeout();
                match tokio::time::timeout(bound, self.enqueue(request)).await {
                    Ok(reply) => reply,
                    Err(_) => Err(timed_out(bound)),
                }
            }
            Some(_) => self.shared.invoke(now, &[&request]).await.and_then(|mut d| d.remove(0)),
        }
    }

    async fn enqueue(&self, request: Request) -> RedisResult<Decision> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(batch_loop(self.shared.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        let queued = Queued { request, reply };
        if let Err(mpsc::error::SendError(queued)) = queue.send(queued) {
            // The batching task is gone (its runtime shut down): go direct.
            return self
                .shared
                .invoke(None, &[&queued.request])
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
                Ok(Decision {
                    allowed: true,
                    limit: self.shared.limit,
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
            limit: self.shared.limit,
            remaining: 0,
            reset_after: retry_after,
            retry_after: Some(retry_after),
            wait: Duration::ZERO,
        }
    }
}

impl crate::KeyedLimiter<str> for RedisLimiter {
    fn limit(&self) -> u64 {
        self.shared.limit
    }

    fn window(&self) -> Duration {
        RedisLimiter::window(self)
    }

    fn check_n(
        &self,
        key: &str,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        RedisLimiter::check_n(self, key, cost)
    }

    fn refund(&self, key: &str, cost: u64) -> impl Future<Output = Result<(), LimitError>> + Send {
        RedisLimiter::refund(self, key, cost)
    }
}

impl crate::KeyedLimiter<String> for RedisLimiter {
    fn limit(&self) -> u64 {
        self.shared.limit
    }

    fn window(&self) -> Duration {
        RedisLimiter::window(self)
    }

    fn check_n(
        &self,
        key: &String,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        RedisLimiter::check_n(self, key, cost)
    }

    fn refund(
        &self,
        key: &String,
        cost: u64,
    ) -> impl Future<Output = Result<(), LimitError>> + Send {
        RedisLimiter::refund(self, key, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::{crc16, hash_slot};

    #[test]
    fn slots_follow_redis_cluster() {
        // The reference value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        // Keys with the same tag share a slot, as CLUSTER KEYSLOT says.
        assert_eq!(hash_slot(b"rl:{user:1}"), hash_slot(b"rl:{user:1}:seq"));
        assert_eq!(hash_slot(b"rl:{user:1}"), hash_slot(b"user:1"));
        assert_eq!(hash_slot(b"foo"), 12_182);
        assert_eq!(hash_slot(b"{}foo"), crc16(b"{}foo") % 16_384, "an empty tag hashes it all");
    }
}
