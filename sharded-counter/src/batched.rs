//! [`BatchedCounter`]: write-behind increments, flushed exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use redis::Cmd;

use crate::error::CounterError;
use crate::sharded::{RedisShardedCounter, incr_once, shard_key};
use crate::striped::StripedCounter;
use sysblocks_core::RedisConnection;

/// How long Redis remembers a flush id, bounding how late a retry may come.
const DEDUPE_TTL_SECS: u64 = 24 * 3600;

/// A delta taken from local counting and not yet confirmed by Redis. It
/// keeps its id across retries, so a flush whose reply was lost is never
/// applied twice. `O` says which counter it belongs to (an index, a name).
#[derive(Debug, Clone)]
pub(crate) struct Pending<O> {
    pub(crate) owner: O,
    /// The shard key the delta goes to.
    pub(crate) key: String,
    pub(crate) delta: i64,
    pub(crate) id: u64,
}

/// Flush ids: a random per-process prefix and a sequence, so that ids of
/// two processes never collide.
#[derive(Debug)]
pub(crate) struct FlushIds {
    next: AtomicU64,
    prefix: u64,
}

impl FlushIds {
    pub(crate) fn new() -> Self {
        FlushIds { next: AtomicU64::new(0), prefix: rand::rng().random() }
    }

    pub(crate) fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Sends every pending delta once through the exactly-once script. Deltas
/// that failed stay in `pending` (with their ids, for the retry); returns
/// the owners of those that landed, and the first error.
pub(crate) async fn send<O>(
    conn: &RedisConnection,
    ids: &FlushIds,
    pending: &mut Vec<Pending<O>>,
) -> (Vec<O>, Result<(), CounterError>) {
    if pending.is_empty() {
        return (Vec::new(), Ok(()));
    }
    let cmds: Vec<Cmd> = pending
        .iter()
        .map(|p| {
            let dedupe = format!("{}:f:{:016x}-{}", p.key, ids.prefix, p.id);
            incr_once(&p.key, &dedupe, p.delta, DEDUPE_TTL_SECS)
        })
        .collect();
    let results = conn.run_each::<i64>(&cmds).await;
    let mut first_error = None;
    let mut landed = Vec::new();
    let mut kept = Vec::new();
    for (p, r) in pending.drain(..).zip(results) {
        match r {
            Ok(_) => landed.push(p.owner),
            Err(e) => {
                first_error.get_or_insert(CounterError::from_increment(e, &p.key));
                kept.push(p);
            }
        }
    }
    *pending = kept;
    (landed, first_error.map_or(Ok(()), Err))
}

/// What the background flusher drives.
pub(crate) trait Flush: Send + Sync + 'static {
    /// Notified when adds reach the threshold (or the key bound).
    fn wake(&self) -> &tokio::sync::Notify;
    /// Flushes what was added so far.
    fn flush(&self) -> impl std::future::Future<Output = Result<(), CounterError>> + Send;
    /// A name for the logs.
    fn label(&self) -> &str;
}

/// The background task of a batcher: flushes every `interval`, or when
/// woken, until stopped (at shutdown) or aborted (when the batcher is
/// dropped).
#[derive(Debug)]
pub(crate) struct Flusher {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Flusher {
    /// Starts flushing `inner`. Needs a tokio runtime.
    pub(crate) fn start<F: Flush>(inner: Arc<F>, interval: Duration) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(flush_loop(inner, interval, Arc::clone(&stop)));
        Flusher { task: Some(task), stop }
    }

    /// Stops the task and waits for it (a flush in progress completes).
    pub(crate) async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            self.stop.notify_one();
            let _ = task.await;
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A timer ticking every `period`, at once first, a late tick delaying the
/// next. A zero period is taken as a millisecond: tokio's timer refuses
/// zero (it panics, which would end the task without a word).
pub(crate) fn ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn flush_loop<F: Flush>(inner: Arc<F>, interval: Duration, stop: Arc<tokio::sync::Notify>) {
    let mut tick = ticker(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = inner.wake().notified() => {}
            () = stop.notified() => return,
        }
        if let Err(e) = inner.flush().await {
            tracing::warn!(counter = %inner.label(), error = %e, "flush failed; the deltas are kept and retried");
        }
    }
}

/// Write-behind counting: [`add`](Self::add) touches only a local
/// [`StripedCounter`] (nanoseconds, no I/O); a background task flushes the
/// accumulated delta into a [`RedisShardedCounter`] every `interval`, or
/// sooner once `threshold` adds have piled up. [`flush`](Self::flush) and
/// [`shutdown`](Self::shutdown) flush everything that was added before them.
///
/// One batcher can serve many counters ([`start_many`](Self::start_many),
/// then a [`BatchedHandle`] per counter): each flush sends the deltas of all
/// of them together, one pipeline on a standalone server (on a cluster, one
/// command per delta, sent concurrently to their nodes).
///
/// **Exactly once.** Each flush takes the local delta (an add is taken by
/// exactly one flush) and sends it with a fresh flush id through a Lua script
/// that increments only if the id is new. A failed flush keeps the delta and
/// its id and retries them, so a flush whose reply was lost (Redis applied
/// it, the connection dropped) is not counted twice. A flush that Redis
/// refuses (an overflow: [`CounterError::Overflow`]) leaves no id behind and
/// its delta stays pending. Ids are remembered for 24 hours: a delta whose
/// reply was lost and whose retries go on for longer than that (a day-long
/// outage of that shard) could be counted twice.
///
/// **Bounded retries.** While a counter has a delta pending, later adds
/// stay in the local striped counter instead of becoming new pending
/// deltas: each retry resends at most one delta per counter, however long
/// Redis is away, and memory does not grow with the outage.
///
/// **Loss window.** An add is in Redis once a flush after it succeeds. If the
/// process dies first, those adds are lost: at most the adds of one
/// `interval` (or `threshold` adds, whichever comes first), plus any deltas
/// whose flushes were failing at the time (during a Redis outage the window
/// grows with the outage, and the adds wait in memory). Call
/// [`shutdown`](Self::shutdown) on graceful exit to close the window.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn demo(con: redis::aio::ConnectionManager) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sysblocks_sharded_counter::{BatchedCounter, RedisShardedCounter};
///
/// let views = RedisShardedCounter::open(con, "video:123:views", 16).await?;
/// let mut batched = BatchedCounter::start(views, Duration::from_millis(100), 100_000)?;
/// for _ in 0..1_000_000 {
///     batched.add(1); // local, no I/O
/// }
/// batched.shutdown().await?; // everything flushed
/// assert!(batched.target().get().await? >= 1_000_000);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BatchedCounter {
    inner: Arc<Inner>,
    flusher: Flusher,
}

/// One batched counter: where it flushes to, and what it has gathered.
#[derive(Debug)]
struct Target {
    counter: RedisShardedCounter,
    local: StripedCounter,
}

#[derive(Debug)]
struct Inner {
    targets: Vec<Target>,
    /// Adds since the last flush began, to trigger the threshold.
    since_flush: AtomicUsize,
    threshold: usize,
    wake: tokio::sync::Notify,
    /// Deltas taken but not yet confirmed; the lock also serialises flushes.
    pending: tokio::sync::Mutex<Vec<Pending<usize>>>,
    ids: FlushIds,
    failures: AtomicU64,
}

impl BatchedCounter {
    /// Starts batching adds into `target`, flushing every `interval` or after
    /// `threshold` adds. Needs a tokio runtime.
    ///
    /// # Errors
    /// [`CounterError::ZeroFlushInterval`] for a zero interval or threshold.
    pub fn start(
        target: RedisShardedCounter,
        interval: Duration,
        threshold: usize,
    ) -> Result<Self, CounterError> {
        Self::start_many(vec![target], interval, threshold)
    }

    /// Starts batching adds into several counters, flushed together; add to
    /// them through [`handle`](Self::handle). All of them must live on the
    /// Redis (server or cluster) of the first, whose connection flushes.
    /// `threshold` counts adds over all of them.
    ///
    /// # Errors
    /// [`CounterError::NoCounters`] for an empty list,
    /// [`CounterError::ZeroFlushInterval`] for a zero interval or threshold.
    pub fn start_many(
        targets: Vec<RedisShardedCounter>,
        interval: Duration,
        threshold: usize,
    ) -> Result<Self, CounterError> {
        if targets.is_empty() {
            return Err(CounterError::NoCounters);
        }
        if interval.is_zero() || threshold == 0 {
            return Err(CounterError::ZeroFlushInterval);
        }
        let targets = targets
            .into_iter()
            .map(|counter| Target { counter, local: StripedCounter::new() })
            .collect();
        let inner = Arc::new(Inner {
            targets,
            since_flush: AtomicUsize::new(0),
            threshold,
            wake: tokio::sync::Notify::new(),
            pending: tokio::sync::Mutex::new(Vec::new()),
            ids: FlushIds::new(),
            failures: AtomicU64::new(0),
        });
        let flusher = Flusher::start(Arc::clone(&inner), interval);
        Ok(BatchedCounter { inner, flusher })
    }

    /// Adds `n` locally to the (first) counter. Never blocks and never
    /// fails; Redis sees it at the next flush.
    #[inline]
    pub fn add(&self, n: i64) {
        self.inner.add(0, n);
    }

    /// A handle that adds to counter `index` (in the order given to
    /// [`start_many`](Self::start_many)), or `None` past the end.
    pub fn handle(&self, index: usize) -> Option<BatchedHandle> {
        (index < self.inner.targets.len())
            .then(|| BatchedHandle { inner: Arc::clone(&self.inner), index })
    }

    /// Adds that are local or unconfirmed (not yet known to be in Redis),
    /// over all counters.
    pub async fn unflushed(&self) -> i64 {
        let pending: i64 = self.inner.pending.lock().await.iter().map(|p| p.delta).sum();
        pending + self.inner.targets.iter().map(|t| t.local.sum()).sum::<i64>()
    }

    /// How many flush attempts have failed so far.
    pub fn failed_flushes(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// The (first) counter the adds go to.
    pub fn target(&self) -> &RedisShardedCounter {
        &self.inner.targets[0].counter
    }

    /// Every counter the adds go to, in order.
    pub fn targets(&self) -> impl ExactSizeIterator<Item = &RedisShardedCounter> + '_ {
        self.inner.targets.iter().map(|t| &t.counter)
    }

    /// Flushes every add made before this call.
    ///
    /// # Errors
    /// The first Redis error; the unflushed deltas are kept for the next
    /// attempt.
    pub async fn flush(&self) -> Result<(), CounterError> {
        self.inner.flush().await
    }

    /// Stops background flushing and flushes everything added so far.
    /// Adds made afterwards stay local until the next [`flush`](Self::flush).
    ///
    /// # Errors
    /// A Redis error on the final flush. The deltas are kept: call
    /// `shutdown` or `flush` again (dropping the counter instead loses them).
    pub async fn shutdown(&mut self) -> Result<(), CounterError> {
        self.flusher.stop().await;
        self.inner.flush().await
    }
}

impl Inner {
    #[inline]
    fn add(&self, index: usize, n: i64) {
        self.targets[index].local.add(n);
        if self.since_flush.fetch_add(1, Ordering::Relaxed) + 1 == self.threshold {
            self.wake.notify_one();
        }
    }
}

impl Flush for Inner {
    fn wake(&self) -> &tokio::sync::Notify {
        &self.wake
    }

    /// Takes what was added, sends it (with the deltas still pending)
    /// exactly once, and keeps what failed for the next attempt.
    async fn flush(&self) -> Result<(), CounterError> {
        let mut pending = self.pending.lock().await;
        self.since_flush.store(0, Ordering::Relaxed);
        for (index, target) in self.targets.iter().enumerate() {
            // A counter with a delta still pending retries that one first;
            // what was added since waits locally (one pending delta each).
            if pending.iter().any(|p| p.owner == index) {
                continue;
            }
            let delta = target.local.take();
            if delta != 0 {
                let shard = rand::rng().random_range(0..target.counter.shard_count());
                pending.push(Pending {
                    owner: index,
                    key: shard_key(target.counter.name(), shard),
                    delta,
                    id: self.ids.next(),
                });
            }
        }
        let (_, result) = send(self.targets[0].counter.connection(), &self.ids, &mut pending).await;
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn label(&self) -> &str {
        self.targets[0].counter.name()
    }
}

/// Adds to one counter of a [`BatchedCounter`] started with
/// [`start_many`](BatchedCounter::start_many). Cheap to clone; adds stay local
/// until the batcher flushes.
#[derive(Debug, Clone)]
pub struct BatchedHandle {
    inner: Arc<Inner>,
    index: usize,
}

impl BatchedHandle {
    /// Adds `n` locally; never blocks, never fails.
    #[inline]
    pub fn add(&self, n: i64) {
        self.inner.add(self.index, n);
    }

    /// The counter this handle adds to.
    pub fn target(&self) -> &RedisShardedCounter {
        &self.inner.targets[self.index].counter
    }
}
