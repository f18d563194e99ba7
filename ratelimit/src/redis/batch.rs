//! The batching side of [`RedisLimiter`](super::RedisLimiter): requests
//! queue up, a task per limiter sends what is queued as one script call
//! per slot group, and each decision is made from the state its script
//! returns by the algorithm's own pure step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{RedisResult, Script};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::RedisConnection;
use super::slot::hash_slot;
use crate::config::Algorithm;
use crate::decision::Decision;
use crate::token_bucket::gcra_step;
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
pub(super) const MAX_BATCH: usize = 64;
/// Batches in flight at once per limiter.
const MAX_IN_FLIGHT: usize = 2;

static GCRA: LazyLock<Script> = LazyLock::new(|| script(include_str!("../token_bucket.lua")));
static FIXED: LazyLock<Script> = LazyLock::new(|| script(include_str!("../window/fixed.lua")));
static LOG: LazyLock<Script> = LazyLock::new(|| script(include_str!("../window/log.lua")));
static COUNTER: LazyLock<Script> = LazyLock::new(|| script(include_str!("../window/counter.lua")));

/// What the batching task needs.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) connection: RedisConnection,
    pub(super) algorithm: Algorithm,
    pub(super) limit: u64,
    /// Microseconds per unit (buckets) or per window (windows).
    pub(super) period: u64,
    /// The GCRA tolerance in microseconds.
    pub(super) tau: u64,
    pub(super) prefix: String,
    /// The policy window ([`Limit::policy_window`]).
    pub(super) window: Duration,
    /// The bound on one script call (and on a caller's wait), in
    /// microseconds.
    pub(super) timeout_us: AtomicU64,
}

/// One decision to make.
#[derive(Debug, Clone)]
pub(super) struct Request {
    /// The Redis key of the state (`prefix{key}`).
    pub(super) state: String,
    pub(super) mode: Mode,
    pub(super) cost: u64,
}

/// What a request asks of the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Decide, and take the cost when admitted.
    Check,
    /// Decide, changing nothing.
    Peek,
    /// Give the cost back.
    Refund,
}

impl Mode {
    /// The mode's letter in the script's argument of modes.
    fn letter(self) -> char {
        match self {
            Mode::Check => 'c',
            Mode::Peek => 'p',
            Mode::Refund => 'r',
        }
    }
}

/// A request waiting in the queue for its batch.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) request: Request,
    pub(super) reply: oneshot::Sender<RedisResult<Decision>>,
    /// When the caller's wait ends: its batch's call is bounded by the
    /// earliest deadline in it (one timer per batch, none per decision).
    pub(super) deadline: Instant,
}

impl Shared {
    /// `prefix{key}`: the key is the hash tag, so all of a key's Redis keys
    /// share a slot. The encoding is injective: a key that is empty,
    /// contains `}` (which would end the tag) or starts with the escape
    /// byte `0x01` is written as `0x01` followed by its bytes in hex.
    pub(super) fn redis_key(&self, key: &str) -> String {
        // Built by pushes, not format!: this runs once per decision, and
        // the formatting machinery costs ten times as much.
        let escaped = key.is_empty() || key.contains('}') || key.starts_with(ESCAPE);
        let body = if escaped { 1 + 2 * key.len() } else { key.len() };
        let mut out = String::with_capacity(self.prefix.len() + body + 2);
        out.push_str(&self.prefix);
        out.push('{');
        if escaped {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(ESCAPE);
            for b in key.bytes() {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        } else {
            out.push_str(key);
        }
        out.push('}');
        out
    }

    /// Makes `requests` in one script call, in order, within `bound`. The
    /// call fails as a whole (connection, timeout) or each decision
    /// succeeds or fails on its own.
    pub(super) async fn invoke(
        &self,
        now: Option<u64>,
        requests: &[&Request],
        bound: Duration,
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
        // The EVALSHA is built as one command (the redis crate's
        // ScriptInvocation keeps each argument in an allocation of its own,
        // then copies them all into a command like this one).
        let with_sequence = self.algorithm == Algorithm::SlidingWindowLog;
        let stride = if with_sequence { 2 } else { 1 };
        let mut command = redis::cmd("EVALSHA");
        command.arg(script.get_hash()).arg(requests.len() * stride);
        for request in requests {
            command.arg(&request.state);
            if with_sequence {
                command.arg(format!("{}:seq", request.state));
            }
        }
        match now {
            Some(now) => command.arg(now),
            None => command.arg(""),
        };
        command.arg(self.limit).arg(self.period).arg(min_ttl_ms).arg(self.tau).arg(stride);
        // The modes as one letter each, and the cost once when all the
        // requests have the same (the usual case): Redis pays for every
        // argument, in parsing and again in the script's tables.
        let modes: String = requests.iter().map(|r| r.mode.letter()).collect();
        command.arg(modes);
        let cost = requests.first().map_or(0, |r| r.cost);
        if requests.iter().all(|r| r.cost == cost) {
            command.arg(cost);
        } else {
            command.arg("");
            for request in requests {
                command.arg(request.cost);
            }
        }
        let mut connection = self.connection.clone();
        let call = async {
            match command.query_async::<Vec<redis::Value>>(&mut connection).await {
                // A server that has not seen the script yet (or has
                // restarted): load it, then send the call again.
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.load_async(&mut connection).await?;
                    command.query_async(&mut connection).await
                }
                reply => reply,
            }
        };
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
        // The packed numbers, then the failed decisions' error texts.
        let (packed, texts) = flat.split_first().ok_or_else(wrong)?;
        let redis::Value::BulkString(packed) = packed else { return Err(wrong()) };
        if packed.len() % 8 != 0 {
            return Err(wrong());
        }
        let numbers: Vec<i64> = packed
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        let (&now, mut rest) = numbers.split_first().ok_or_else(wrong)?;
        let now = u64::try_from(now).map_err(|_| wrong())?;
        let mut texts = texts.iter();
        // The bucket's scripts reply with one value per decision, the TAT;
        // the windows' with a count of values and then the values.
        let counted = !matches!(self.algorithm, Algorithm::TokenBucket | Algorithm::LeakyBucket);
        let mut decisions = Vec::with_capacity(requests.len());
        for request in requests {
            // Each request's part: its first value (the TAT or the count),
            // or -1 for a decision that failed, whose text comes in order.
            let (&head, tail) = rest.split_first().ok_or_else(wrong)?;
            if head < 0 {
                let why = texts.next().ok_or_else(wrong)?;
                decisions.push(Err(redis::RedisError::from((
                    redis::ErrorKind::Extension,
                    "rate limit decision failed",
                    text(why),
                ))));
                rest = tail;
                continue;
            }
            let (values, tail) = if counted {
                let count = usize::try_from(head).map_err(|_| wrong())?;
                tail.split_at_checked(count).ok_or_else(wrong)?
            } else {
                rest.split_at(1)
            };
            rest = tail;
            decisions.push(self.decision(now, request, values).ok_or_else(wrong));
        }
        if !rest.is_empty() || texts.next().is_some() {
            return Err(wrong());
        }
        Ok(decisions)
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_micros(self.timeout_us.load(Ordering::Relaxed))
    }

    /// The decision for one request, from the state its script decided on
    /// (`values`), made by the algorithm's own pure step: the same function
    /// as in process, here on microseconds (so its durations are scaled by
    /// 1000 into real ones). A refund's decision is not used. `None` for
    /// values that are not what the script sends.
    fn decision(&self, now: u64, request: &Request, values: &[i64]) -> Option<Decision> {
        let (limit, period, cost) = (self.limit, self.period, request.cost);
        if request.mode == Mode::Refund {
            return Some(Decision::admit(limit, 0, Duration::ZERO));
        }
        let number = |i: usize| values.get(i).copied();
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
                d.with_wait(wait)
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
                    // A denial: the oldest entries up to the one whose
                    // leaving makes room, then the newest time at no cost
                    // (what the retry time and the reset need).
                    for pair in values[2..].chunks_exact(2) {
                        let time = u64::try_from(pair[0]).ok()?;
                        let cost = u64::try_from(pair[1]).ok()?;
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

/// The text of a script reply value (a failed decision's error).
fn text(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

pub(super) fn timed_out(bound: Duration) -> redis::RedisError {
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
pub(super) async fn batch_loop(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let Some(first) = queue.recv().await else { return };
        // Callers woken by the batch that just came back are about to
        // queue their next requests: letting them run first (a yield, for
        // as long as the queue grows, at most four) makes one batch of what
        // would go out as a small one and a large one.
        let mut queued = queue.len();
        for _ in 0..4 {
            tokio::task::yield_now().await;
            if queue.len() == queued {
                break;
            }
            queued = queue.len();
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Requests whose caller has given up are dropped; one whose wait
        // is over (it queued while both batches in flight straggled) gets
        // its timeout now; the rest are sent.
        let now = Instant::now();
        let (batch, late): (Vec<Queued>, Vec<Queued>) =
            batch.into_iter().filter(|q| !q.reply.is_closed()).partition(|q| q.deadline > now);
        for queued in late {
            let _ = queued.reply.send(Err(timed_out(shared.timeout())));
        }
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
                    let earliest = group.iter().map(|q| q.deadline).min().unwrap_or(now);
                    let bound = earliest.saturating_duration_since(Instant::now());
                    match shared.invoke(None, &requests, bound).await {
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
